/* Winograd F(2×2, 3×3) convolution (wino.c), float32, over one instruction set. Included by wino.c
 * once per target with:
 *   SFX    name suffix, e.g. avx512
 *   TGT    the target attribute (empty for the baseline)
 *   VB     vector bytes (64: AVX-512, 32: AVX2, 16: SSE2)
 *   MR, NV micro-kernel tile: MR output channels × NV vectors of tiles (MR·NV accumulators)
 *
 * A block is NB sub-blocks of TB = NV·VL consecutive tiles of the flattened (n, ty, tx) order
 * (a block may span samples: the 8×8 maps of VGG have 16 tiles each). Per block, on one thread:
 *   1. V[ξ][sb][c][TB] = Bᵀ d B for every input channel c (ξ = 4·i + j the 16 positions of the
 *      transformed 4×4 tile; zero for the slots past the last tile),
 *   2. per block of MR output channels, per ξ, per sub-block: M[ξ][r][TB] = Σ_c U[ξ][c][r]·V[ξ][c][·]
 *      in MR·NV vector accumulators (U = G g Gᵀ packed once per call, wino.c),
 *   3. Y = Aᵀ M A (+ bias, ReLU, mask) written straight into the NCHW output.
 * V is 64·C·TB·NB bytes (C = 64, AVX-512, NB = 2: 256 KiB): it stays in L2 while every output
 * channel block reads it; M of one channel block is 64·MR·TB bytes (16 KiB) and stays in L1. */

#define VL (VB / (int)sizeof(float))
#define TB (NV * VL)
#define V_T CAT(vw_, SFX)
#define FN(name) CAT3(name, _, SFX)
typedef float V_T __attribute__((vector_size(VB), aligned(sizeof(float)), may_alias));
/* Unaligned vector loads and stores through the may_alias type, not memcpy: GCC expands a
 * memcpy with the command line's widest move (16 bytes, SSE2), not the function's target, so in
 * the AVX2 kernels every 32-byte load went through the stack in two halves and stalled on store
 * forwarding (they ran slower than the SSE2 baseline). */
#define LD(p) (*(const V_T *)(p))
#define ST(p, v) (*(V_T *)(p) = (v))

/* m[r·TB + q] = Σ_c u[c·MR + r]·v[c·TB + q], r < MR, q < TB: FN(wino_mk)(v, TB, u, MR, m, TB, C, 0) */
#include "wino_mk_t.h"

/* even and odd lanes of the pair (a, b): e = (a₀, a₂, …, b₀, b₂, …), o = (a₁, a₃, …, b₁, b₃, …) */
#if VB == 64
#define EVEN_IDX 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define ODD_IDX 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#elif VB == 32
#define EVEN_IDX 0, 2, 4, 6, 8, 10, 12, 14
#define ODD_IDX 1, 3, 5, 7, 9, 11, 13, 15
#else
#define EVEN_IDX 0, 2, 4, 6
#define ODD_IDX 1, 3, 5, 7
#endif
/* and the interleaving of (a, b): lo = (a₀, b₀, a₁, b₁, …), hi = the same from the upper halves */
/* and the lower halves of (a, b) put together: (a₀ … a_(VL/2−1), b₀ … b_(VL/2−1)) */
#if VB == 64
#define CATLO_IDX 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#elif VB == 32
#define CATLO_IDX 0, 1, 2, 3, 8, 9, 10, 11
#else
#define CATLO_IDX 0, 1, 4, 5
#endif
#if VB == 64
#define LO_IDX 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define HI_IDX 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#elif VB == 32
#define LO_IDX 0, 8, 1, 9, 2, 10, 3, 11
#define HI_IDX 4, 12, 5, 13, 6, 14, 7, 15
#else
#define LO_IDX 0, 4, 1, 5
#define HI_IDX 2, 6, 3, 7
#endif
#ifdef __clang__
#define SHUF(a, b, IDX) __builtin_shufflevector(a, b, IDX)
#else
typedef int CAT(vi_, SFX) __attribute__((vector_size(VB)));
#define SHUF(a, b, IDX) __builtin_shuffle(a, b, (CAT(vi_, SFX)){IDX})
#endif
#define EVEN(a, b) SHUF(a, b, EVEN_IDX)
#define ODD(a, b) SHUF(a, b, ODD_IDX)
#define LO(a, b) SHUF(a, b, LO_IDX)
#define HI(a, b) SHUF(a, b, HI_IDX)
#define CATLO(a, b) SHUF(a, b, CATLO_IDX)

/* Input transform of the `len` ≤ TB − q tiles (ty, tx0 … tx0 + len − 1) of one sample into
 * V[ξ·vs + c·TB + q + k], k < len. xp is the sample zero-padded (by wino_range): plane c at c·plane,
 * row y of the plane at (y + 1)·Wp, column x at x + 1, so the 4×4 tile of (ty, tx) (rows
 * 2ty − 1 … 2ty + 2, columns 2tx − 1 … 2tx + 2 of the plane) starts at (2ty)·Wp + 2tx and tile k
 * of the segment reads row[2k … 2k + 3]. Bᵀ d over rows is done on whole vectors; (·)B over
 * columns needs columns 2k, 2k + 1, 2k + 2, 2k + 3 in the lanes of tile k: the even and odd lanes
 * of the vector pairs at 2k and 2k + 2 (two permutes each). Lanes past the segment hold slots
 * that a later segment overwrites (or that no tile uses); past TB they are cut.
 *   Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]                          */
static TGT void FN(wino_in)(const float *restrict xp, idx_t C, idx_t plane, idx_t Wp, idx_t ty, idx_t tx0,
                            idx_t len, float *restrict V, idx_t vs, idx_t q, int rows) {
    /* rows = 2 or 4: that many whole tile rows of VL/rows tiles each in one vector (len = VL, tx0
     * = 0). With 2, the upper half of the lanes reads the next tile row (2·Wp further) instead of
     * the next VL columns; with 4, each half of a loaded pair is itself put together from the
     * lower halves of two rows' loads (one more permute). */
    const idx_t half = rows == 2 ? 2 * Wp : VL;
    for (idx_t c = 0; c < C; c++) {
        const float *P = xp + c * plane + 2 * ty * Wp + 2 * tx0;
        float *vc = V + c * TB + q;
        for (idx_t k0 = 0; k0 < len; k0 += VL) {
            V_T t[4][4]; /* t[i][m]: Bᵀ d of the vector at 2·k0 + (0, half, 2, 2 + half) */
            V_T d[4];
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++) {
                const idx_t off = 2 * k0 + (m & 1) * half + (m >> 1) * 2;
                if (rows == 4) {
                    const idx_t r0 = (m & 1) * 2 * (2 * Wp) + (m >> 1) * 2; /* tile rows 0, 1 or 2, 3 */
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++) {
                        d[i] = CATLO(LD(P + i * Wp + r0), LD(P + i * Wp + r0 + 2 * Wp));
                    }
                } else {
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++) d[i] = LD(P + i * Wp + off);
                }
                t[0][m] = d[0] - d[2];
                t[1][m] = d[1] + d[2];
                t[2][m] = d[2] - d[1];
                t[3][m] = d[1] - d[3];
            }
            V_T v[16];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                V_T e0 = EVEN(t[i][0], t[i][1]), o0 = ODD(t[i][0], t[i][1]); /* columns 2k, 2k + 1 */
                V_T e1 = EVEN(t[i][2], t[i][3]), o1 = ODD(t[i][2], t[i][3]); /* 2k + 2, 2k + 3 */
                v[4 * i + 0] = e0 - e1;
                v[4 * i + 1] = o0 + e1;
                v[4 * i + 2] = e1 - o0;
                v[4 * i + 3] = o0 - o1;
            }
            if (q + k0 + VL <= TB) {
#pragma GCC unroll 16
                for (int xi = 0; xi < 16; xi++) ST(vc + xi * vs + k0, v[xi]);
            } else {
                const size_t keep = (size_t)(TB - q - k0) * sizeof(float);
                for (int xi = 0; xi < 16; xi++) memcpy(vc + xi * vs + k0, &v[xi], keep);
            }
        }
    }
}

/* Y = Aᵀ M A for the TB tiles of one sub-block and one output channel, m[ξ·ms + q] → the two
 * output rows of the tiles, interleaved as in the image: y[a·2TB + 2q + b] = Y_q[a][b] (two
 * permutes per vector pair). Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]: additions only, so no product
 * can be contracted into a different rounding between the variants (with or without ReLU). */
static TGT inline void FN(wino_out)(const float *restrict m, idx_t ms, float *restrict y) {
#pragma GCC unroll 4
    for (int q = 0; q < TB; q += VL) {
        V_T t[4][4], s0[4], s1[4];
#pragma GCC unroll 16
        for (int xi = 0; xi < 16; xi++) t[xi / 4][xi % 4] = LD(m + xi * ms + q);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            s0[j] = t[0][j] + t[1][j] + t[2][j];
            s1[j] = t[1][j] - t[2][j] - t[3][j];
        }
        V_T y00 = s0[0] + s0[1] + s0[2], y01 = s0[1] - s0[2] - s0[3];
        V_T y10 = s1[0] + s1[1] + s1[2], y11 = s1[1] - s1[2] - s1[3];
        V_T r0 = LO(y00, y01), r1 = HI(y00, y01), r2 = LO(y10, y11), r3 = HI(y10, y11);
        ST(y + 2 * q, r0);
        ST(y + 2 * q + VL, r1);
        ST(y + 2 * TB + 2 * q, r2);
        ST(y + 2 * TB + 2 * q + VL, r3);
    }
}

/* one output row: d[k] = y[k] + b for k < cols, then ReLU (d = max(v, 0)) and its mask [v ≥ 0] */
static TGT void FN(wino_row)(const float *restrict y, idx_t cols, float b, float *restrict d,
                             unsigned char *restrict mk, int relu) {
    if (mk)
        for (idx_t k = 0; k < cols; k++) {
            float v = y[k] + b;
            mk[k] = v >= 0;
            d[k] = v < 0 ? 0.0f : v;
        }
    else if (relu)
        for (idx_t k = 0; k < cols; k++) {
            float v = y[k] + b;
            d[k] = v < 0 ? 0.0f : v;
        }
    else
        for (idx_t k = 0; k < cols; k++) d[k] = y[k] + b;
}

static TGT void FN(wino_range)(void *p, idx_t first, idx_t end) {
    struct wino_args *a = p;
    const struct dconv_geom *g = a->g;
    const idx_t C = g->C, O = g->O, H = g->H, W = g->W, NB = a->NB, BT = NB * TB;
    const idx_t th = (H + 1) / 2, tw = (W + 1) / 2, T = th * tw, total = g->N * T;
    /* stride between the ξ rows of V: 64 bytes more than their size, so that the 16 stores of a
     * tile's transform do not fall in one L1 set (a multiple of 4 KiB would) */
    const idx_t vs = NB * C * TB + 16;
    float *V = malloc((size_t)(16 * vs) * sizeof(float));
    float *M = malloc((size_t)(16 * MR * TB + 4 * TB) * sizeof(float)); /* M, then Y */
    /* the padded sample: rows −1 … 2·th, columns −1 … 2·tw (+ slack: the last vectors read past) */
    const idx_t Wp = 2 * tw + 2, plane = (2 * th + 2) * Wp;
    float *xp = calloc((size_t)(C * plane + 2 * TB + 2 * VL), sizeof(float));
    idx_t packed = -1;
    if (!V || !M || !xp) {
        free(V);
        free(M);
        free(xp);
        a->failed = 1;
        return;
    }
    float *Y = M + 16 * MR * TB;
    for (idx_t blk = first; blk < end; blk++) {
        const idx_t g0 = blk * BT, gend = g0 + BT < total ? g0 + BT : total;
        /* 1. input transform, segment by segment (runs of tiles of one tile row) */
        if (gend - g0 < BT) /* the last block: zero slots past the last tile */
            for (idx_t xi = 0; xi < 16; xi++)
                for (idx_t s = 0; s < NB * C * TB; s++) V[xi * vs + s] = 0;
        for (idx_t gi = g0; gi < gend;) {
            const idx_t n = gi / T, t = gi % T, ty = t / tw, tx = t % tw;
            idx_t len = tw - tx;
            if (len > gend - gi) len = gend - gi;
            if (n != packed) { /* sample n into the padded layout (its border stays 0) */
                for (idx_t c = 0; c < C; c++)
                    for (idx_t y = 0; y < H; y++)
                        memcpy(xp + c * plane + (y + 1) * Wp + 1, a->x + ((n * C + c) * H + y) * W,
                               (size_t)W * sizeof(float));
                packed = n;
            }
            /* maps of VL/2 or VL/4 tiles a row: that many whole tile rows in one vector */
            const int rows = 2 * tw == VL ? 2 : (4 * tw == VL ? 4 : 1);
            if (rows > 1 && tx == 0 && gend - gi >= VL && (gi - g0) % TB <= TB - VL && t + (rows - 1) * tw < T) {
                FN(wino_in)(xp, C, plane, Wp, ty, 0, VL, V + ((gi - g0) / TB) * C * TB, vs, (gi - g0) % TB, rows);
                gi += VL;
                continue;
            }
            /* the segment may cross sub-blocks: split it at their borders */
            for (idx_t k0 = 0; k0 < len;) {
                const idx_t slot = gi - g0 + k0, sb = slot / TB, q = slot % TB;
                idx_t l = TB - q < len - k0 ? TB - q : len - k0;
                FN(wino_in)(xp, C, plane, Wp, ty, tx + k0, l, V + sb * C * TB, vs, q, 1);
                k0 += l;
            }
            gi += len;
        }
        /* 2. products and 3. output transform, per block of MR output channels */
        for (idx_t ob = 0; ob < a->Ob; ob++) {
            const float *U = a->U + ob * 16 * C * MR;
            for (idx_t sb = 0; sb < NB && g0 + sb * TB < gend; sb++) {
                for (int xi = 0; xi < 16; xi++)
                    FN(wino_mk)(V + xi * vs + sb * C * TB, TB, U + xi * C * MR, MR, M + xi * MR * TB, TB, C,
                                0);
                for (int r = 0; r < MR; r++) {
                    const idx_t oc = ob * MR + r;
                    if (oc >= O) break;
                    FN(wino_out)(M + r * TB, MR * TB, Y);
                    const float b = a->bias ? a->bias[oc] : 0.0f;
                    const idx_t s0 = g0 + sb * TB, s1 = s0 + TB < gend ? s0 + TB : gend;
                    for (idx_t gi = s0; gi < s1;) {
                        const idx_t n = gi / T, t = gi % T, ty = t / tw, tx = t % tw;
                        idx_t len = tw - tx;
                        if (len > s1 - gi) len = s1 - gi;
                        /* the segment's columns 2tx … in the image (the last one cut when W is odd) */
                        const idx_t cols = 2 * (tx + len) <= W ? 2 * len : W - 2 * tx;
                        const idx_t q = gi - s0, plane = (n * O + oc) * H * W;
                        for (int ay = 0; ay < 2; ay++) {
                            const idx_t yy = 2 * ty + ay;
                            if (yy >= H) break;
                            const idx_t at = plane + yy * W + 2 * tx;
                            FN(wino_row)(Y + ay * 2 * TB + 2 * q, cols, b, a->out + at, a->mask ? a->mask + at : NULL,
                                         a->relu);
                        }
                        gi += len;
                    }
                }
            }
        }
    }
    free(V);
    free(M);
    free(xp);
}

static const struct wino_impl FN(wino_impl) = {FN(wino_range), MR, TB, STR(SFX)};

#undef VL
#undef TB
#undef EVEN_IDX
#undef ODD_IDX
#undef LO_IDX
#undef HI_IDX
#undef SHUF
#undef EVEN
#undef ODD
#undef LO
#undef HI
#undef CATLO
#undef CATLO_IDX
#undef V_T
#undef LD
#undef ST
#undef FN
