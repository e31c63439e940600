/* Direct convolution for layers with few input taps (a first layer: C·kh·kw ≤ LF_DIRECT_MAX_K),
 * float32, stride 1, one group: no columns, no GEMM (BLAS runs a K = 9 product at a fraction of
 * its speed), the output written once, in NCHW, with its bias.
 *
 * Per sample (one task), the input planes are copied into a zero-padded flat layout of width
 * W̃ = W + p_left + p_right (and one spare row), so that kernel tap t = (c, i, j) reads the flat
 * input at q + s_t, s_t = c·plane + d_h·i·W̃ + d_w·j, for every output position q = a·W̃ + b: one
 * contiguous run per tap (the W̃ − W_out extra columns per row are computed and dropped). Then, for
 * a block of 8 consecutive positions q (one vector) and every output channel o, the sum
 * Σ_t W[o, t]·x̃[q + s_t] runs in registers: the K input vectors are loaded once and reused by
 * all output channels (a small GEMM micro-kernel over the implicit columns). */
#include <stdlib.h>
#include "lfk.h"

#define LF_DIRECT_MAX_K 32
#define VL 8
typedef float v8 __attribute__((vector_size(VL * sizeof(float))));
typedef float v8u __attribute__((vector_size(VL * sizeof(float)), aligned(4)));

struct direct_args {
    const float *x, *w, *bias;
    float *out;
    const struct conv_geom *g;
    idx_t O;
};

/* acc[q] = Σ_t w[t]·x̃[q + s_t] for one output channel, 8 positions per vector: the K weights stay
 * in registers as broadcast vectors, each position loads its K inputs once (always inlined, so a
 * constant K unrolls the taps) */
static inline __attribute__((always_inline)) void direct_plane(const float *restrict xp, const float *restrict w,
                                                               const idx_t *restrict shift, float *restrict acc,
                                                               idx_t Lv, idx_t K) {
    v8 wv[LF_DIRECT_MAX_K] = {{0}};
    for (idx_t t = 0; t < K; t++) wv[t] = (v8){w[t], w[t], w[t], w[t], w[t], w[t], w[t], w[t]};
    for (idx_t q = 0; q < Lv; q += VL) {
        v8 s = wv[0] * *(const v8u *)(xp + q + shift[0]);
        for (idx_t t = 1; t < K; t++) s += wv[t] * *(const v8u *)(xp + q + shift[t]);
        *(v8u *)(acc + q) = s;
    }
}

static LF_CLONES void direct_range(void *p, idx_t first, idx_t end) {
    struct direct_args *a = p;
    const struct conv_geom *g = a->g;
    const idx_t C = g->C, kh = g->kh, kw = g->kw, K = C * kh * kw, O = a->O;
    const idx_t Wp = g->W + g->pl + (g->Wo - 1 + g->dw * (kw - 1) + 1 - g->W - g->pl > 0
                                         ? g->Wo - 1 + g->dw * (kw - 1) + 1 - g->W - g->pl : 0);
    const idx_t Hp = g->Ho + g->dh * (kh - 1) + 1; /* rows read, plus a spare row for the tail */
    const idx_t plane = Hp * Wp, L = g->Ho * Wp, Lv = (L + VL - 1) / VL * VL;
    float *xp = calloc((size_t)(C * plane + Lv + VL), sizeof(float)); /* + the last vector's overrun */
    float *acc = malloc((size_t)(O * Lv) * sizeof(float));
    idx_t shift[LF_DIRECT_MAX_K];
    if (!xp || !acc) { free(xp); free(acc); return; }
    for (idx_t c = 0, t = 0; c < C; c++)
        for (idx_t i = 0; i < kh; i++)
            for (idx_t j = 0; j < kw; j++) shift[t++] = c * plane + i * g->dh * Wp + j * g->dw;
    for (idx_t n = first; n < end; n++) {
        /* the padded planes of sample n (the border stays 0 from calloc) */
        for (idx_t c = 0; c < C; c++)
            for (idx_t y = 0; y < g->H; y++) {
                idx_t yy = y + g->pt;
                if (yy >= Hp) break;
                memcpy(xp + c * plane + yy * Wp + g->pl, a->x + ((n * C + c) * g->H + y) * g->W,
                       (size_t)g->W * sizeof(float));
            }
        for (idx_t o = 0; o < O; o++) { /* constant K for the common sizes: unrolled taps */
            if (K == 9) direct_plane(xp, a->w + o * K, shift, acc + o * Lv, Lv, 9);
            else if (K == 27) direct_plane(xp, a->w + o * K, shift, acc + o * Lv, Lv, 27);
            else direct_plane(xp, a->w + o * K, shift, acc + o * Lv, Lv, K);
        }
        for (idx_t o = 0; o < O; o++) { /* crop W̃ → W_out, add the bias, NCHW */
            float b = a->bias ? a->bias[o] : 0.0f;
            float *dst = a->out + (n * O + o) * g->Ho * g->Wo;
            const float *src = acc + o * Lv;
            for (idx_t r = 0; r < g->Ho; r++)
                for (idx_t c2 = 0; c2 < g->Wo; c2++) dst[r * g->Wo + c2] = src[r * Wp + c2] + b;
        }
    }
    free(xp);
    free(acc);
}

/* 0 when the layer does not qualify (the caller runs the GEMM path) */
int lf_direct_conv(const float *x, const float *w, const float *bias, float *out, const struct conv_geom *g,
                   idx_t O) {
    if (g->C * g->kh * g->kw > LF_DIRECT_MAX_K || g->sh != 1 || g->sw != 1) return 0;
    struct direct_args a = {x, w, bias, out, g, O};
    lf_parallel(direct_range, &a, g->N, O * g->Ho * g->Wo * g->C * g->kh * g->kw / 4);
    return 1;
}
