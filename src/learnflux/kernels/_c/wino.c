/* Winograd F(2×2, 3×3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016): 3×3 kernel, stride 1, dilation 1, one group, padding 1 on every side (the
 * output has the input's size), float32. Used for the forward pass and for the input δ (the same
 * "same" correlation of δ with the flipped, transposed kernel W'[c, o, i, j] = W[o, c, 2 − i, 2 − j],
 * built by the caller).
 *
 * Each 2×2 output tile Y of channel o is computed from the 4×4 input tiles d_c around it:
 *
 *   Y = Aᵀ [ Σ_c (G g_oc Gᵀ) ⊙ (Bᵀ d_c B) ] A
 *
 *   Bᵀ = | 1  0 −1  0 |    G = | 1    0    0  |    Aᵀ = | 1  1  1  0 |
 *        | 0  1  1  0 |        | ½    ½    ½  |         | 0  1 −1 −1 |
 *        | 0 −1  1  0 |        | ½   −½    ½  |
 *        | 0  1  0 −1 |        | 0    0    1  |
 *
 * so the 36 multiply-adds per output pair of channels and 2×2 tile of the direct convolution become
 * 16: the sum over c is 16 independent products M[ξ] = U[ξ]·V[ξ] (ξ the 16 positions of the
 * transformed tile), U[ξ] (O × C) the transformed weights, V[ξ] (C × tiles) the transformed inputs.
 *
 * Cache-blocked and fused (wino_t.h): the tiles of the whole batch, flattened in (n, ty, tx)
 * order, are cut into blocks of a few dozen; each thread takes whole blocks, transforms the inputs
 * of one block for every channel into a buffer that stays in L2, runs the 16 products in
 * register-blocked micro-kernels, and writes Y = Aᵀ M A (+ bias, ReLU and its mask) straight into
 * NCHW. Nothing the size of the batch is ever transformed at once (a 64×32×32×32 layer's V would
 * be 32 MB). The micro-kernels exist for AVX-512, AVX2+FMA and a baseline, chosen at run time
 * with the direct convolution's (lf_dconv_isa calls lf_wino_isa).
 *
 * Accuracy: U is computed in double and rounded once; the transforms add at most 4 terms, so the
 * result differs from the exact sum by a few float32 roundings of the tile's magnitudes: on VGG's
 * layers 2.4–4.3e-7 of the output's largest value against a float64 convolution (the direct
 * convolution, which sums all 9·C products in one accumulator: 6.6e-7–1.1e-6). */
#include <stdlib.h>
#include "lfk.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define CAT3(a, b, c) CAT(CAT(a, b), c)
#define STR_(a) #a
#define STR(a) STR_(a)

struct wino_args {
    const struct dconv_geom *g;
    const float *x, *U, *bias;
    float *out;
    unsigned char *mask; /* [pre-activation ≥ 0] with the fused ReLU in training, else NULL */
    idx_t Ob, NB;        /* blocks of MR output channels, sub-blocks of TB tiles per block */
    int relu, failed;
};

struct wino_impl {
    lf_range_fn range;
    int MR, TB;
    const char *name;
};

#ifdef LF_X86_ISAS /* lfk.h: the same condition lf_isa_level reads */
#define LF_X86_KERNELS 1
#define TGT __attribute__((target("avx512f,avx2,fma")))
#define VB 64
#define MR 8
#define NV 2
#define SFX avx512
#include "wino_t.h"
#undef TGT
#undef VB
#undef MR
#undef NV
#undef SFX

#define TGT __attribute__((target("avx2,fma")))
#define VB 32
#define MR 6
#define NV 2
#define SFX avx2
#include "wino_t.h"
#undef TGT
#undef VB
#undef MR
#undef NV
#undef SFX
#endif

#define TGT
#define VB 16
#define MR 4
#define NV 2
#define SFX base
#include "wino_t.h"
#undef TGT
#undef VB
#undef MR
#undef NV
#undef SFX

static const struct wino_impl *impl = NULL;

/* the micro-kernels for `want` ("auto", "avx512", "avx2", "baseline"), as lf_dconv_isa; NULL when
 * this CPU (or build) does not have them */
const char *lf_wino_isa(const char *want) {
    int level = lf_isa_level(want, 1);
    switch (level) {
#ifdef LF_X86_KERNELS
    case LF_ISA_AVX512: impl = &wino_impl_avx512; break;
    case LF_ISA_AVX2: impl = &wino_impl_avx2; break;
#endif
    case LF_ISA_BASE: impl = &wino_impl_base; break;
    default: return NULL;
    }
    return lf_isa_name(level);
}

/* V of one block (16·NB·C·TB floats) at most about this many bytes: it stays in L2 */
#define LF_WINO_V_BYTES ((idx_t)1 << 18)

/* out = W ⋆ x (+ bias) (then max(·, 0) when relu, and mask = [z ≥ 0] when mask is not NULL) for a
 * 3×3 kernel at stride 1, padding 1: x (N, C, H, W), W (O, C, 3, 3), out and mask (N, O, H, W).
 * Returns 0 when out of memory, −1 when the geometry is not one it computes. */
int lf_wino_fwd(const float *x, const float *w, const float *bias, float *out, const struct dconv_geom *g, int relu,
                unsigned char *mask) {
    if (g->kh != 3 || g->kw != 3 || g->dh != 1 || g->dw != 1 || g->pt != 1 || g->pl != 1 || g->Ho != g->H ||
        g->Wo != g->W || g->C <= 0)
        return -1;
    if (!impl) lf_wino_isa("auto");
    const idx_t C = g->C, O = g->O, MRr = impl->MR, TBr = impl->TB, Ob = (O + MRr - 1) / MRr;
    if (g->N <= 0 || O <= 0 || g->H <= 0 || g->W <= 0) return 1;
    /* U[ob][ξ][c][r] = (G g Gᵀ)[ξ] of W[ob·MR + r, c] (zero past the last channel) */
    float *U = calloc((size_t)(Ob * 16 * C * MRr), sizeof(float));
    if (!U) return 0;
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (idx_t o = 0; o < O; o++)
        for (idx_t c = 0; c < C; c++) {
            const float *k = w + (o * C + c) * 9;
            double gk[4][3]; /* G g */
            for (int i = 0; i < 4; i++)
                for (int b = 0; b < 3; b++) gk[i][b] = G[i][0] * k[b] + G[i][1] * k[3 + b] + G[i][2] * k[6 + b];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    double u = gk[i][0] * G[j][0] + gk[i][1] * G[j][1] + gk[i][2] * G[j][2];
                    U[(((o / MRr) * 16 + 4 * i + j) * C + c) * MRr + o % MRr] = (float)u;
                }
        }
    const idx_t tiles = g->N * ((g->H + 1) / 2) * ((g->W + 1) / 2);
    const idx_t sub = (tiles + TBr - 1) / TBr; /* sub-blocks of TB tiles */
    idx_t NB = LF_WINO_V_BYTES / (64 * C * TBr);
    NB = NB < 1 ? 1 : (NB > 4 ? 4 : NB);
    while (NB > 1 && sub < 8 * NB) NB--; /* enough blocks for the threads */
    const idx_t blocks = (sub + NB - 1) / NB;
    struct wino_args a = {g, x, U, bias, out, relu ? mask : NULL, Ob, NB, relu, 0};
    lf_parallel(impl->range, &a, blocks, NB * TBr * 16 * C * Ob * MRr / 8);
    free(U);
    return !a.failed;
}
