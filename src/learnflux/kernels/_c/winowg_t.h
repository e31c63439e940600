/* Winograd F(2×2, 3×3) weight gradient (winowg.c), float32, over one instruction set. Included by
 * winowg.c once per target with:
 *   SFX    name suffix, e.g. avx512
 *   TGT    the target attribute (empty for the baseline)
 *   VB     vector bytes (64: AVX-512, 32: AVX2, 16: SSE2)
 *   MR, NV micro-kernel tile: MR output channels × NV vectors of input channels
 *
 * Layout: unlike the forward (wino_t.h, tiles in the vector lanes), the reduction here runs over
 * tiles, so the lanes hold channels. Each sample is packed channels-last (NHWC) with the zero
 * border, x̃[(y + 1)·Wp + x + 1][c] (Cp channels, a multiple of NV·VL, the tail zero) and
 * δ̃[y·Wd + x][o] (Op channels, a multiple of MR; rows and columns past an odd map zero). For a
 * block of BT tiles of the flattened (n, ty, tx) order, one thread writes
 *   V[ξ][t][c] = (Bᵀ d_t B)[ξ]      (d_t the 4×4 input tile at padded rows 2ty …, columns 2tx …)
 *   D[ξ][t][o] = (A δ_t Aᵀ)[ξ]      (δ_t the 2×2 δ tile at rows 2ty …, columns 2tx …)
 * with whole-vector adds (no permutes), then for each ξ the product
 *   U[ξ][o][c] += Σ_t D[ξ][t][o]·V[ξ][t][c]
 * in MR·NV vector accumulators: each loaded vector of V feeds MR multiply-adds with broadcast
 * values of D. Σ_t δ_t over the tile is (A δ_t Aᵀ)[1][1] = D[5][t][·], so δb comes for free. */

#define VL (VB / (int)sizeof(float))
#define CB (NV * VL) /* input channels of one micro-kernel */
#define V_T CAT(vg_, SFX)
#define FN(name) CAT3(name, _, SFX)
typedef float V_T __attribute__((vector_size(VB), aligned(sizeof(float)), may_alias));
/* unaligned loads and stores through the may_alias type (see wino_t.h: not memcpy) */
#define LD(p) (*(const V_T *)(p))
#define ST(p, v) (*(V_T *)(p) = (v))

/* u[r·Cp + k·VL + ·] (+)= Σ_{t < bt} d[t·Op + r]·v[t·Cp + k·VL + ·], r < MR, k < NV (added to u when
 * add): FN(wino_mk)(v, Cp, d, Op, u, Cp, bt, add) */
#include "wino_mk_t.h"

/* V[ξ·vs + c] = (Bᵀ d B)[ξ] for the 4×4 tile whose top-left value is p[0] (rows Wp·Cp apart,
 * columns Cp apart), every channel vector c < Cp.
 *   Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]                          */
static TGT inline void FN(wg_in)(const float *restrict p, idx_t rs, idx_t Cp, float *restrict V, idx_t vs) {
    for (idx_t c = 0; c < Cp; c += VL) {
        V_T t[4][4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const V_T d0 = LD(p + j * Cp + c), d1 = LD(p + rs + j * Cp + c);
            const V_T d2 = LD(p + 2 * rs + j * Cp + c), d3 = LD(p + 3 * rs + j * Cp + c);
            t[0][j] = d0 - d2;
            t[1][j] = d1 + d2;
            t[2][j] = d2 - d1;
            t[3][j] = d1 - d3;
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            ST(V + (4 * i + 0) * vs + c, t[i][0] - t[i][2]);
            ST(V + (4 * i + 1) * vs + c, t[i][1] + t[i][2]);
            ST(V + (4 * i + 2) * vs + c, t[i][2] - t[i][1]);
            ST(V + (4 * i + 3) * vs + c, t[i][1] - t[i][3]);
        }
    }
}

/* D[ξ·ds + o] = (A δ Aᵀ)[ξ] for the 2×2 δ tile at p (rows rs apart, columns Op apart), every o.
 *   A = [[1, 0], [1, 1], [1, −1], [0, −1]]: rows (δ₀, δ₀ + δ₁, δ₀ − δ₁, −δ₁), the same over columns */
static TGT inline void FN(wg_dt)(const float *restrict p, idx_t rs, idx_t Op, float *restrict D, idx_t ds) {
    idx_t o = 0;
    for (; o + VL <= Op; o += VL) {
        const V_T a = LD(p + o), b = LD(p + Op + o), c = LD(p + rs + o), e = LD(p + rs + Op + o);
        V_T r[4][2] = {{a, b}, {a + c, b + e}, {a - c, b - e}, {-c, -e}};
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            ST(D + (4 * i + 0) * ds + o, r[i][0]);
            ST(D + (4 * i + 1) * ds + o, r[i][0] + r[i][1]);
            ST(D + (4 * i + 2) * ds + o, r[i][0] - r[i][1]);
            ST(D + (4 * i + 3) * ds + o, -r[i][1]);
        }
    }
    for (; o < Op; o++) {
        const float a = p[o], b = p[Op + o], c = p[rs + o], e = p[rs + Op + o];
        const float r[4][2] = {{a, b}, {a + c, b + e}, {a - c, b - e}, {-c, -e}};
        for (int i = 0; i < 4; i++) {
            D[(4 * i + 0) * ds + o] = r[i][0];
            D[(4 * i + 1) * ds + o] = r[i][0] + r[i][1];
            D[(4 * i + 2) * ds + o] = r[i][0] - r[i][1];
            D[(4 * i + 3) * ds + o] = -r[i][1];
        }
    }
}

/* dst[y·rs + x·cs + c] = src[(c·H + y)·W + x]: channel planes (C, H, W) to channels-last, 8
 * planes at a time, row after row (8 load streams, each running through its plane).
 * Blocks of 8 channels × 8 columns: 8 vector loads, an 8×8 transpose in registers (three rounds
 * of two-vector shuffles), 8 vector stores (scalar copies, one plane after another, stored with a
 * stride of cs and stalled on 4 KiB aliasing with the loads: a third of the time of a layer) */
typedef float CAT(v8_, SFX) __attribute__((vector_size(32), aligned(sizeof(float)), may_alias));
typedef int CAT(i8_, SFX) __attribute__((vector_size(32)));
#define V8 CAT(v8_, SFX)
#define I8 CAT(i8_, SFX)
#ifdef __clang__
#define SH8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SH8(a, b, ...) __builtin_shuffle(a, b, (I8){__VA_ARGS__})
#endif
static TGT void FN(wg_nhwc)(const float *restrict src, idx_t C, idx_t H, idx_t W, float *restrict dst, idx_t rs,
                            idx_t cs) {
    const idx_t ps = H * W;
    idx_t c0 = 0;
    for (; c0 + 8 <= C; c0 += 8)
        for (idx_t y = 0; y < H; y++) {
            const float *s = src + c0 * ps + y * W;
            float *d = dst + y * rs + c0;
            idx_t x = 0;
            for (; x + 8 <= W; x += 8) {
                V8 r[8], p[8], q[8];
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) r[k] = *(const V8 *)(s + k * ps + x);
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) { /* rows 2k, 2k + 1 interleaved: columns 0-3, 4-7 */
                    p[2 * k] = SH8(r[2 * k], r[2 * k + 1], 0, 8, 1, 9, 2, 10, 3, 11);
                    p[2 * k + 1] = SH8(r[2 * k], r[2 * k + 1], 4, 12, 5, 13, 6, 14, 7, 15);
                }
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) { /* rows 0-3 (4-7): q[4h + m] columns 2m, 2m + 1 of them */
                    q[4 * h + 0] = SH8(p[4 * h], p[4 * h + 2], 0, 1, 8, 9, 2, 3, 10, 11);
                    q[4 * h + 1] = SH8(p[4 * h], p[4 * h + 2], 4, 5, 12, 13, 6, 7, 14, 15);
                    q[4 * h + 2] = SH8(p[4 * h + 1], p[4 * h + 3], 0, 1, 8, 9, 2, 3, 10, 11);
                    q[4 * h + 3] = SH8(p[4 * h + 1], p[4 * h + 3], 4, 5, 12, 13, 6, 7, 14, 15);
                }
#pragma GCC unroll 4
                for (int m = 0; m < 4; m++) { /* column 2m, 2m + 1: rows 0-3 then 4-7 */
                    *(V8 *)(d + (x + 2 * m) * cs) = SH8(q[m], q[4 + m], 0, 1, 2, 3, 8, 9, 10, 11);
                    *(V8 *)(d + (x + 2 * m + 1) * cs) = SH8(q[m], q[4 + m], 4, 5, 6, 7, 12, 13, 14, 15);
                }
            }
            for (; x < W; x++)
                for (int k = 0; k < 8; k++) d[x * cs + k] = s[k * ps + x];
        }
    for (; c0 < C; c0++)
        for (idx_t y = 0; y < H; y++)
            for (idx_t x = 0; x < W; x++) dst[y * rs + x * cs + c0] = src[c0 * ps + y * W + x];
}
#undef SH8
#undef V8
#undef I8

static TGT void FN(wg_range)(void *p, idx_t first, idx_t end) {
    struct wg_args *a = p;
    const struct dconv_geom *g = a->g;
    const idx_t C = g->C, O = g->O, H = g->H, W = g->W, Cp = a->Cp, Op = a->Op, BT = a->BT;
    const idx_t th = (H + 1) / 2, tw = (W + 1) / 2, T = th * tw, total = g->N * T, blocks = a->blocks;
    const idx_t Wp = 2 * tw + 2, Hp = 2 * th + 2, Wd = 2 * tw, Hd = 2 * th;
    const idx_t vs = BT * Cp + 16, ds = BT * Op + 16; /* ξ strides: not multiples of 4 KiB */
    const idx_t us = Op * Cp;
    float *V = malloc((size_t)(16 * (vs + ds) + 16 * us) * sizeof(float));
    double *Ud = malloc((size_t)(16 * us + Op) * sizeof(double)); /* then δb */
    float *xp = calloc((size_t)(Hp * Wp * Cp + Hd * Wd * Op), sizeof(float));
    if (!V || !Ud || !xp) {
        free(V);
        free(Ud);
        free(xp);
        a->failed = 1;
        return;
    }
    float *D = V + 16 * vs, *U = D + 16 * ds, *dp = xp + Hp * Wp * Cp;
    double *db = Ud + 16 * us;
    for (idx_t slot = first; slot < end; slot++) {
        const idx_t b0 = blocks * slot / a->slots, b1 = blocks * (slot + 1) / a->slots;
        idx_t packed = -1, since = 0;
        int flushed = 0; /* Ud holds something */
        for (idx_t o = 0; o < Op; o++) db[o] = 0;
        for (idx_t blk = b0; blk < b1; blk++) {
            const idx_t g0 = blk * BT, gend = g0 + BT < total ? g0 + BT : total, bt = gend - g0;
            for (idx_t gi = g0; gi < gend; gi++) {
                const idx_t n = gi / T, t = gi % T, ty = t / tw, tx = t % tw;
                if (n != packed) { /* sample n channels-last (borders and channel tails stay 0) */
                    FN(wg_nhwc)(a->x + n * C * H * W, C, H, W, xp + (Wp + 1) * Cp, Wp * Cp, Cp);
                    FN(wg_nhwc)(a->d + n * O * H * W, O, H, W, dp, Wd * Op, Op);
                    packed = n;
                }
                FN(wg_in)(xp + (2 * ty * Wp + 2 * tx) * Cp, Wp * Cp, Cp, V + (gi - g0) * Cp, vs);
                FN(wg_dt)(dp + (2 * ty * Wd + 2 * tx) * Op, Wd * Op, Op, D + (gi - g0) * Op, ds);
            }
            for (idx_t t = 0; t < bt; t++) /* δb: Σ over the tile = D[5] */
                for (idx_t o = 0; o < Op; o++) db[o] += D[5 * ds + t * Op + o];
            for (int xi = 0; xi < 16; xi++)
                for (idx_t ob = 0; ob < Op; ob += MR)
                    for (idx_t cb = 0; cb < Cp; cb += CB)
                        FN(wino_mk)(V + xi * vs + cb, Cp, D + xi * ds + ob, Op, U + xi * us + ob * Cp + cb, Cp, bt,
                                    since > 0);
            since += bt;
            if (since >= LF_WG_FLUSH || blk + 1 == b1) { /* float partial sums of ≤ ~256 tiles into double */
                if (flushed)
                    for (idx_t k = 0; k < 16 * us; k++) Ud[k] += U[k];
                else
                    for (idx_t k = 0; k < 16 * us; k++) Ud[k] = U[k];
                flushed = 1;
                since = 0;
            }
        }
        /* δW_slot[i][j][o][c] = (Gᵀ U[o][c] G)[i][j], vectorised over c; with G's rows (1, 0, 0),
         * (½, ½, ½), (½, −½, ½), (0, 0, 1) each side is (r₀ + ½(r₁ + r₂), ½(r₁ − r₂), ½(r₁ + r₂) + r₃) */
        double *out = a->gwp + slot * O * C * 9;
        for (idx_t o = 0; o < O; o++) {
            const double *u = Ud + o * Cp;
            double *w = out + o * C;
            for (idx_t c = 0; c < C; c++) {
                double gu[3][4];
                for (int b = 0; b < 4; b++) {
                    const double s = u[(4 + b) * us + c] + u[(8 + b) * us + c];
                    gu[0][b] = u[b * us + c] + 0.5 * s;
                    gu[1][b] = 0.5 * (u[(4 + b) * us + c] - u[(8 + b) * us + c]);
                    gu[2][b] = 0.5 * s + u[(12 + b) * us + c];
                }
                for (int i = 0; i < 3; i++) {
                    const double s = gu[i][1] + gu[i][2];
                    w[(3 * i + 0) * O * C + c] = gu[i][0] + 0.5 * s;
                    w[(3 * i + 1) * O * C + c] = 0.5 * (gu[i][1] - gu[i][2]);
                    w[(3 * i + 2) * O * C + c] = 0.5 * s + gu[i][3];
                }
            }
        }
        for (idx_t o = 0; o < O; o++) a->dbp[slot * O + o] = db[o];
    }
    free(V);
    free(Ud);
    free(xp);
}

static const struct wg_impl FN(wg_impl) = {FN(wg_range), MR, CB, STR(SFX)};

#undef VL
#undef CB
#undef V_T
#undef LD
#undef ST
#undef FN
