/* Direct convolution at stride 1 (any kernel, padding, dilation; one group): forward, weight
 * gradient and input δ without im2col columns, col2im or a BLAS call.
 *
 * Per sample, the input planes are copied into a zero-padded flat layout of width W̃ = W_out +
 * d_w·(k_w − 1) and height H̃ = H_out + d_h·(k_h − 1), so that tap t = (c, i, j) of output position
 * q = a·W̃ + b reads x̃[q + s_t] with s_t = c·H̃·W̃ + d_h·i·W̃ + d_w·j: one contiguous run per tap
 * (the W̃ − W_out extra positions of a row are computed and dropped). The products then run in
 * register-blocked micro-kernels (dconv_t.h) that read those runs in place:
 *
 *   forward    o[o, q] = Σ_t W[o, t]·x̃[q + s_t]           (+ bias, optionally ReLU, cropped to NCHW)
 *   δW         δW[o, t] = Σ_n Σ_q δ̃_n[o, q]·x̃_n[q + s_t]  (δ̃: δ in the padded width, 0 elsewhere)
 *   input δ    the forward kernel on δ padded by d·(k − 1) − p with the flipped, transposed kernel
 *              W'[c, o, i, j] = W[o, c, k_h − 1 − i, k_w − 1 − j] (the caller passes W').
 *
 * Work is split over samples (the forward) or over fixed slots of samples whose partial weight
 * gradients are added in slot order (the δW: the result does not depend on the thread count).
 * The micro-kernels exist for AVX-512, AVX2+FMA and a baseline, chosen once at run time
 * (__builtin_cpu_supports; no -march=native). */
#include <stdlib.h>
#include "lfk.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define CAT3(a, b, c) CAT(CAT(a, b), c)
#define STR_(a) #a
#define STR(a) STR_(a)

typedef void (*dconv_fwd_fn)(const void *xp, const void *wpk, void *acc, const idx_t *shift, idx_t K, idx_t Ob,
                             idx_t Lv);
typedef void (*dconv_wgrad_fn)(const void *xp, idx_t xstride, const void *dp, idx_t dstride, void *gw,
                               const idx_t *shift, idx_t Kp, idx_t Op, idx_t Lv, idx_t S);
struct dconv_impl {
    dconv_fwd_fn fwd;
    dconv_wgrad_fn wgrad;
    int MR, tile, VL, WO, WT;
    const char *name;
};

#ifdef LF_X86_ISAS /* lfk.h: the same condition lf_isa_level reads */
#define LF_X86_KERNELS 1
#define TGT __attribute__((target("avx512f,avx2,fma")))
#define VB 64
#define MR 8
#define NV 2
#define WO 4
#define WT 4
#define T float
#define SFX f32_avx512
#include "dconv_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_avx512
#include "dconv_t.h"
#undef T
#undef SFX
#undef TGT
#undef VB
#undef MR
#undef NV
#undef WO
#undef WT

#define TGT __attribute__((target("avx2,fma")))
#define VB 32
#define MR 6
#define NV 2
#define WO 2
#define WT 4
#define T float
#define SFX f32_avx2
#include "dconv_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_avx2
#include "dconv_t.h"
#undef T
#undef SFX
#undef TGT
#undef VB
#undef MR
#undef NV
#undef WO
#undef WT
#endif

#define TGT
#define VB 16
#define MR 4
#define NV 2
#define WO 2
#define WT 4
#define T float
#define SFX f32_base
#include "dconv_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_base
#include "dconv_t.h"
#undef T
#undef SFX
#undef TGT
#undef VB
#undef MR
#undef NV
#undef WO
#undef WT

static const struct dconv_impl *impl_f32 = NULL, *impl_f64 = NULL;

/* "auto" (the best this CPU runs), "avx512", "avx2" or "baseline"; returns the name chosen, or NULL
 * when this CPU (or build) does not have it. */
const char *lf_dconv_isa(const char *want) {
    int level = lf_isa_level(want, 1);
    switch (level) {
#ifdef LF_X86_KERNELS
    case LF_ISA_AVX512: impl_f32 = &dconv_impl_f32_avx512; impl_f64 = &dconv_impl_f64_avx512; break;
    case LF_ISA_AVX2: impl_f32 = &dconv_impl_f32_avx2; impl_f64 = &dconv_impl_f64_avx2; break;
#endif
    case LF_ISA_BASE: impl_f32 = &dconv_impl_f32_base; impl_f64 = &dconv_impl_f64_base; break;
    default: return NULL;
    }
    return lf_isa_name(level);
}

static idx_t round_up(idx_t v, idx_t m) { return (v + m - 1) / m * m; }

/* the padded flat layout of one sample for geometry g and a kernel tile of `tile` positions */
struct dlayout {
    idx_t Wp, Hp, plane, L, Lv, xsize, K;
};

static void layout(const struct dconv_geom *g, idx_t tile, struct dlayout *l) {
    l->Wp = g->Wo + g->dw * (g->kw - 1);
    l->Hp = g->Ho + g->dh * (g->kh - 1);
    l->plane = l->Hp * l->Wp;
    l->L = g->Ho * l->Wp;
    l->Lv = round_up(l->L, tile);
    l->K = g->C * g->kh * g->kw;
    idx_t reach = (g->C - 1) * l->plane + g->dh * (g->kh - 1) * l->Wp + g->dw * (g->kw - 1) + l->Lv;
    l->xsize = reach > g->C * l->plane ? reach : g->C * l->plane;
}

static void shifts(const struct dconv_geom *g, const struct dlayout *l, idx_t *shift, idx_t Kp) {
    idx_t t = 0;
    for (idx_t c = 0; c < g->C; c++)
        for (idx_t i = 0; i < g->kh; i++)
            for (idx_t j = 0; j < g->kw; j++) shift[t++] = c * l->plane + i * g->dh * l->Wp + j * g->dw;
    for (; t < Kp; t++) shift[t] = 0;
}

#define T float
#define FN(name) name##_f32
#include "dconv_drv_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "dconv_drv_t.h"
#undef T
#undef FN

int lf_dconv_fwd(int f64, const void *x, const void *w, const void *bias, void *out, const struct dconv_geom *g,
                 int relu, void *mask) {
    if (!impl_f32) lf_dconv_isa("auto");
    return f64 ? dconv_fwd_f64(impl_f64, x, w, bias, out, g, relu, mask)
               : dconv_fwd_f32(impl_f32, x, w, bias, out, g, relu, mask);
}

int lf_dconv_wgrad(int f64, const void *x, const void *d, void *gw, void *db, const struct dconv_geom *g) {
    if (!impl_f32) lf_dconv_isa("auto");
    return f64 ? dconv_wgrad_f64(impl_f64, x, d, gw, db, g) : dconv_wgrad_f32(impl_f32, x, d, gw, db, g);
}
