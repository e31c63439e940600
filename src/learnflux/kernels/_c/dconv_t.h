/* The register-blocked micro-kernels of the direct convolution (dconv.c), over one float type T and
 * one instruction set. Included by dconv.c once per (type, target) with:
 *   T      float or double
 *   SFX    name suffix, e.g. f32_avx512
 *   TGT    the target attribute (empty for the baseline)
 *   VB     vector bytes (64: AVX-512, 32: AVX2, 16: SSE2)
 *   MR, NV forward tile: MR output channels × NV vectors of positions (MR·NV accumulators)
 *   WO, WT weight-gradient tile: WO output channels × WT taps (WO·WT accumulators)
 *
 * Layout (see dconv.c): one sample's input planes zero-padded and flat, x̃[c·plane + y·W̃ + x];
 * output position q = a·W̃ + b; tap t = (c, i, j) reads x̃[q + s_t], s_t = c·plane + d_h·i·W̃ + d_w·j.
 * So every tap is one contiguous run: the columns of im2col are never built, they are read in
 * place by unaligned vector loads. */

#define VL (VB / (int)sizeof(T))
#define V_T CAT(v_, SFX)
#define FN(name) CAT3(name, _, SFX)
typedef T V_T __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));
/* Unaligned vector loads and stores through the may_alias type, not memcpy: GCC expands a
 * memcpy with the command line's widest move (16 bytes, SSE2), not the function's target, so the
 * AVX2 kernels' 32-byte loads went through the stack in two halves and stalled on store
 * forwarding (slower than the SSE2 baseline). */
#define LD(p) (*(const V_T *)(p))
#define ST(p, v) (*(V_T *)(p) = (v))

/* acc[o, q] = Σ_t W[o, t]·x̃[q + s_t] for o < Ob·MR and q < Lv (a multiple of NV·VL). wpk holds the
 * weights packed per block of MR channels, wpk[ob][t][r] (zero rows past the last channel): the MR
 * weights of a tap are adjacent and broadcast from memory. The MR·NV sums stay in registers over
 * all K taps; each loaded input vector feeds MR multiply-adds. */
static TGT void FN(dconv_fwd)(const T *restrict xp, const T *restrict wpk, T *restrict acc,
                              const idx_t *restrict shift, idx_t K, idx_t Ob, idx_t Lv) {
    for (idx_t ob = 0; ob < Ob; ob++) {
        const T *w = wpk + ob * K * MR;
        T *dst = acc + ob * MR * Lv;
        for (idx_t q = 0; q < Lv; q += NV * VL) {
            V_T s[MR][NV];
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) s[r][v] = (V_T){0};
            const T *xq = xp + q;
            for (idx_t t = 0; t < K; t++) {
                const T *xt = xq + shift[t];
                const T *wt = w + t * MR;
                V_T xv[NV];
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) xv[v] = LD(xt + v * VL);
#pragma GCC unroll 16
                for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
                    for (int v = 0; v < NV; v++) s[r][v] += wt[r] * xv[v];
            }
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) ST(dst + r * Lv + q + v * VL, s[r][v]);
        }
    }
}

/* gw[o, t] += Σ_n Σ_q δ̃_n[o, q]·x̃_n[q + s_t] over the S samples of a block, for o < Op (a multiple
 * of WO) and t < Kp (a multiple of WT; shift[] is padded with 0 past K). δ̃ is zero at the
 * positions that are not outputs, so the wrapped-around columns add nothing. The WO·WT sums run in
 * vector lanes over every position of every sample of the block, then are added up once. */
static TGT void FN(dconv_wgrad)(const T *restrict xp, idx_t xstride, const T *restrict dp, idx_t dstride,
                                T *restrict gw, const idx_t *restrict shift, idx_t Kp, idx_t Op, idx_t Lv,
                                idx_t S) {
    for (idx_t ob = 0; ob < Op; ob += WO) {
        for (idx_t tb = 0; tb < Kp; tb += WT) {
            V_T s[WO][WT];
#pragma GCC unroll 16
            for (int r = 0; r < WO; r++)
#pragma GCC unroll 8
                for (int c = 0; c < WT; c++) s[r][c] = (V_T){0};
            for (idx_t n = 0; n < S; n++) {
                const T *d = dp + n * dstride + ob * Lv;
                const T *x = xp + n * xstride;
                const T *xt[WT];
#pragma GCC unroll 8
                for (int c = 0; c < WT; c++) xt[c] = x + shift[tb + c];
                for (idx_t q = 0; q < Lv; q += VL) {
                    V_T dv[WO];
#pragma GCC unroll 16
                    for (int r = 0; r < WO; r++) dv[r] = LD(d + r * Lv + q);
#pragma GCC unroll 8
                    for (int c = 0; c < WT; c++) {
                        V_T xv = LD(xt[c] + q);
#pragma GCC unroll 16
                        for (int r = 0; r < WO; r++) s[r][c] += dv[r] * xv;
                    }
                }
            }
#pragma GCC unroll 16
            for (int r = 0; r < WO; r++)
#pragma GCC unroll 8
                for (int c = 0; c < WT; c++) {
                    T total = 0;
                    for (int l = 0; l < VL; l++) total += s[r][c][l];
                    gw[(ob + r) * Kp + tb + c] += total;
                }
        }
    }
}

static const struct dconv_impl FN(dconv_impl) = {
    (dconv_fwd_fn)FN(dconv_fwd), (dconv_wgrad_fn)FN(dconv_wgrad), MR, NV * VL, VL, WO, WT, STR(SFX)};

#undef VL
#undef V_T
#undef LD
#undef ST
#undef FN
