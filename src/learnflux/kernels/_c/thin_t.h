/* The micro-kernels of the thin convolution (thinconv.c), over one float type T and one instruction
 * set. Included by thinconv.c once per (type, target) with:
 *   T      float or double
 *   SFX    name suffix, e.g. f32_avx512
 *   TGT    the target attribute (empty for the baseline)
 *   VB     vector bytes (64: AVX-512, 32: AVX2, 16: SSE2)
 *   MR, NV forward tile: MR output channels × NV vectors of output positions
 *   WO, WT weight-gradient tile: WO output channels × WT taps
 *
 * Layout (see thinconv.c): per sample, X[c·k_w + j][y·W_out + b] = x[c, y − p_t, b + d_w·j − p_l]
 * (0 outside the input), y < H_out + d_h·(k_h − 1). Output position p = a·W_out + b (the NCHW
 * plane itself) of tap t = (c, i, j) reads X[c·k_w + j][p + d_h·i·W_out]: one contiguous run per
 * tap, over whole output planes (no padded width, no wrapped-around columns, no crop pass). */

#define VL (VB / (int)sizeof(T))
#define V_T CAT(tv_, SFX)
#define V_I CAT(ti_, SFX)
#define V_B CAT(tb_, SFX)
#define FN(name) CAT3(name, _, SFX)
/* unaligned, may alias T: `*(const V_T *)p` is one unaligned vector load (a memcpy of 32 bytes
 * became two 16-byte moves through the stack in the AVX2 code, a store-forwarding stall) */
typedef T V_T __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));
typedef __typeof__((V_T){0} < (V_T){0}) V_I; /* the lanes of a comparison: 0 or −1 */
typedef signed char V_B __attribute__((vector_size(VL), aligned(1), may_alias));
#define LD(p) (*(const V_T *)(p))

/* one vector of sums z + bias written at out[at…]: plain, or ReLU'd (max(z, 0) as `z < 0 ? 0 : z`,
 * so −0 and NaN pass as relu_fwd passes them) with the mask [z ≥ 0] as bytes 0/1 at mask[at…] */
static inline TGT void FN(thin_store)(V_T z, T b, T *restrict out, unsigned char *restrict mask, idx_t at,
                                      int relu) {
    z += b;
    if (relu) {
        if (mask) { /* from z itself, before the ReLU */
            V_B m = __builtin_convertvector(z >= (V_T){0}, V_B) & 1; /* NaN: 0, as z ≥ 0 */
            *(V_B *)(mask + at) = m;
        }
        z = (V_T)((V_I)z & ~(z < (V_T){0})); /* lanes with z < 0 → +0; −0 and NaN kept */
    }
    *(V_T *)(out + at) = z;
}

/* ReLU and its mask over n values of z in place, as relu_fwd: the pass that follows the sums of a
 * block of planes where a vector's compare cannot be stored as bytes cheaply (AVX2 and SSE2 pack
 * the lanes of one vector at a time; a loop over a plane packs four vectors at once) */
static TGT void FN(thin_relu_mask)(T *restrict out, unsigned char *restrict mask, idx_t n) {
    for (idx_t i = 0; i < n; i++) {
        T v = out[i];
        mask[i] = v >= 0;
        out[i] = v < 0 ? (T)0 : v;
    }
}

/* out[o, p] (+ bias, ReLU, mask) for the O output planes of one sample, P = H_out·W_out positions.
 * wpk holds the weights packed per block of MR channels, wpk[ob][t][r] (zero rows past O), bias
 * padded with zeros to whole blocks. The MR·NV sums stay in registers over all K taps: each input
 * vector loaded feeds MR multiply-adds, the weights are broadcast from L1. Positions past the last
 * whole vector run in scalar code. */
static TGT void FN(thin_fwd)(const T *restrict X, const T *restrict wpk, const T *restrict bias,
                             T *restrict out, unsigned char *restrict mask, const idx_t *restrict shift, idx_t K,
                             idx_t O, idx_t P, int relu) {
    const idx_t Pt = P / (NV * VL) * (NV * VL), Pv = P / VL * VL;
    /* with AVX-512 the mask is written from the registers (a compare into a mask register, then
     * bytes); elsewhere the ReLU and its mask follow in a pass over the block's planes (in L1) */
    const int fused = relu && (VB == 64 || !mask);
    unsigned char *fmask = fused ? mask : NULL;
    for (idx_t o0 = 0; o0 < O; o0 += MR) {
        const T *w = wpk + o0 * K;
        const int rows = O - o0 < MR ? (int)(O - o0) : MR;
        idx_t q = 0;
        for (; q < Pt; q += NV * VL) {
            V_T s[MR][NV];
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) s[r][v] = (V_T){0};
            for (idx_t t = 0; t < K; t++) {
                const T *xt = X + shift[t] + q;
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
            for (int r = 0; r < MR; r++) {
                if (r >= rows) break;
                idx_t plane = (o0 + r) * P;
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++)
                    FN(thin_store)(s[r][v], bias[o0 + r], out, fmask, plane + q + v * VL, fused);
            }
        }
        for (; q < Pv; q += VL) { /* single vectors */
            V_T s[MR];
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++) s[r] = (V_T){0};
            for (idx_t t = 0; t < K; t++) {
                V_T xv = LD(X + shift[t] + q);
                const T *wt = w + t * MR;
#pragma GCC unroll 16
                for (int r = 0; r < MR; r++) s[r] += wt[r] * xv;
            }
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++) {
                if (r >= rows) break;
                FN(thin_store)(s[r], bias[o0 + r], out, fmask, (o0 + r) * P + q, fused);
            }
        }
        for (; q < P; q++) /* the last positions, one at a time (the same sum order per lane) */
            for (int r = 0; r < rows; r++) {
                T z = 0;
                for (idx_t t = 0; t < K; t++) z += w[t * MR + r] * X[shift[t] + q];
                z += bias[o0 + r];
                idx_t at = (o0 + r) * P + q;
                if (fused) {
                    if (fmask) fmask[at] = z >= 0;
                    z = z < 0 ? (T)0 : z;
                }
                out[at] = z;
            }
        if (relu && !fused)
            FN(thin_relu_mask)(out + o0 * P, mask + o0 * P, rows * P);
    }
}

/* lane sums for one sample (δ: its O planes of P values): acc[(o·Kp + t)·VL + l] gets lane l of
 * Σ_p δ[o, p]·X[p + s_t] for the K taps (δb's tap of ones included; the caller adds the lanes up,
 * in double, every few samples: no horizontal sum per sample). Channels past O read `zero` (P
 * zeros) and taps past K have shift 0: their sums are computed and never read. Positions past
 * the last whole vector go into lane 0. */
static TGT void FN(thin_wgrad)(const T *restrict X, const T *restrict d, const T *restrict zero,
                               T *restrict acc, const idx_t *restrict shift, idx_t K, idx_t Kp, idx_t O,
                               idx_t P) {
    const idx_t Pv = P / VL * VL;
    for (idx_t o0 = 0; o0 < O; o0 += WO) {
        const T *dr[WO];
#pragma GCC unroll 16
        for (int r = 0; r < WO; r++) dr[r] = o0 + r < O ? d + (o0 + r) * P : zero;
        for (idx_t t0 = 0; t0 < Kp; t0 += WT) {
            const T *xt[WT];
#pragma GCC unroll 8
            for (int c = 0; c < WT; c++) xt[c] = X + shift[t0 + c];
            V_T s[WO][WT];
#pragma GCC unroll 16
            for (int r = 0; r < WO; r++)
#pragma GCC unroll 8
                for (int c = 0; c < WT; c++) s[r][c] = (V_T){0};
            for (idx_t q = 0; q < Pv; q += VL) {
                V_T dv[WO];
#pragma GCC unroll 16
                for (int r = 0; r < WO; r++) dv[r] = LD(dr[r] + q);
#pragma GCC unroll 8
                for (int c = 0; c < WT; c++) {
                    V_T xv = LD(xt[c] + q);
#pragma GCC unroll 16
                    for (int r = 0; r < WO; r++) s[r][c] += dv[r] * xv;
                }
            }
#pragma GCC unroll 16
            for (int r = 0; r < WO; r++) {
                if (o0 + r >= O) break;
#pragma GCC unroll 8
                for (int c = 0; c < WT; c++) {
                    for (idx_t q = Pv; q < P; q++) s[r][c][0] += dr[r][q] * xt[c][q];
                    T *a = acc + ((o0 + r) * Kp + t0 + c) * VL;
                    *(V_T *)a = LD(a) + s[r][c];
                }
            }
        }
    }
}

static const struct thin_impl FN(thin_impl) = {(thin_fwd_fn)FN(thin_fwd), (thin_wgrad_fn)FN(thin_wgrad), MR, WT, VL,
                                               STR(SFX)};

#undef VL
#undef V_T
#undef V_I
#undef V_B
#undef LD
#undef FN
