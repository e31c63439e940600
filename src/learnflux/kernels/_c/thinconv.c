/* Thin convolution: stride 1, one group, a small reduction depth K = C·k_h·k_w (an image model's
 * first layer: LeNet's 1 → 16 at K = 9, VGG's 3 → 32 at K = 27). Forward (bias, optionally the
 * ReLU and its mask) and the weight and bias gradients.
 *
 * With few taps the work per output value is small (K multiply-adds), so what counts is writing
 * the output planes once, in place, at full vector width. The direct convolution (dconv.c) sums
 * into a padded width W̃ = W_out + d_w·(k_w − 1) and crops in a second pass; here the sums run over
 * the NCHW output plane itself. Per sample, the input is expanded along the kernel's width only:
 *
 *   X[c·k_w + j][y·W_out + b] = x[c, y − p_t, b + d_w·j − p_l]   (0 outside the input),
 *   y < H̃ = H_out + d_h·(k_h − 1),
 *
 * k_w shifted copies of each input plane, each W_out wide (C·k_w·H̃·W_out values: 2.5K for LeNet's
 * first layer, 10K for VGG's: in L1/L2). The padding is written there as zeros, left and right
 * per row, top and bottom as whole rows. Then output position p = a·W_out + b of tap t = (c, i, j)
 * reads X[c·k_w + j][p + d_h·i·W_out], a contiguous run over the whole plane:
 *
 *   forward  out[o, p] = Σ_t W[o, t]·X[p + s_t] + b[o],  s_t = (c·k_w + j)·H̃·W_out + d_h·i·W_out
 *   δW       δW[o, t] = Σ_n Σ_p δ_n[o, p]·X_n[p + s_t],  δb[o] = Σ_n Σ_p δ_n[o, p]·1 (a tap of ones)
 *
 * (the input δ of such a layer, when one is needed, stays with dconv.c: there the reduction runs
 * over the O output channels, not thin). Register-blocked micro-kernels in thin_t.h, for AVX-512,
 * AVX2+FMA and a baseline, chosen with the direct convolution's (lf_thin_isa, called from
 * module.c next to lf_dconv_isa). The forward pass is split over samples; δW over 8 fixed slots of
 * samples whose double partial sums are added in slot order, so that it does not depend on the
 * thread count. */
#include <stdlib.h>
#include "lfk.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define CAT3(a, b, c) CAT(CAT(a, b), c)
#define STR_(a) #a
#define STR(a) STR_(a)

typedef void (*thin_fwd_fn)(const void *X, const void *wpk, const void *bias, void *out, unsigned char *mask,
                            const idx_t *shift, idx_t K, idx_t O, idx_t P, int relu);
typedef void (*thin_wgrad_fn)(const void *X, const void *d, const void *zero, void *acc, const idx_t *shift,
                              idx_t K, idx_t Kp, idx_t O, idx_t P);
struct thin_impl {
    thin_fwd_fn fwd;
    thin_wgrad_fn wgrad;
    int MR, WT, VL;
    const char *name;
};

#ifdef LF_X86_ISAS /* lfk.h: the same condition lf_isa_level reads */
#define LF_X86_KERNELS 1
#define TGT __attribute__((target("avx512f,avx2,fma")))
#define VB 64
#define MR 8
#define NV 2
#define WO 4
#define WT 5
#define T float
#define SFX f32_avx512
#include "thin_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_avx512
#include "thin_t.h"
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
#define MR 4
#define NV 2
#define WO 2
#define WT 5
#define T float
#define SFX f32_avx2
#include "thin_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_avx2
#include "thin_t.h"
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
#define WT 5
#define T float
#define SFX f32_base
#include "thin_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_base
#include "thin_t.h"
#undef T
#undef SFX
#undef TGT
#undef VB
#undef MR
#undef NV
#undef WO
#undef WT

static const struct thin_impl *impl_f32 = NULL, *impl_f64 = NULL;

/* "avx512", "avx2" or "baseline" as lf_dconv_isa chose them ("auto": the best this CPU runs);
 * returns the name chosen, or NULL when this CPU (or build) does not have it */
const char *lf_thin_isa(const char *want) {
    int level = lf_isa_level(want, 1);
    switch (level) {
#ifdef LF_X86_KERNELS
    case LF_ISA_AVX512: impl_f32 = &thin_impl_f32_avx512; impl_f64 = &thin_impl_f64_avx512; break;
    case LF_ISA_AVX2: impl_f32 = &thin_impl_f32_avx2; impl_f64 = &thin_impl_f64_avx2; break;
#endif
    case LF_ISA_BASE: impl_f32 = &thin_impl_f32_base; impl_f64 = &thin_impl_f64_base; break;
    default: return NULL;
    }
    return lf_isa_name(level);
}

/* the expanded input of one sample (see the top of this file); for δb, a plane of P ones after it,
 * read as one more tap (δb[o] = Σ_p δ[o, p]·1 comes out of the δW tiles: with 3×3 kernels it fills
 * a tap slot that rounding K up to whole tiles leaves empty anyway) */
struct thin_layout {
    idx_t Hx, plane, P, K, Kt, Kp, xsize;
};

static void thin_layout(const struct dconv_geom *g, idx_t WTr, int ones, struct thin_layout *l) {
    l->Hx = g->Ho + g->dh * (g->kh - 1);
    l->plane = l->Hx * g->Wo;
    l->P = g->Ho * g->Wo;
    l->K = g->C * g->kh * g->kw;
    l->Kt = l->K + (ones ? 1 : 0); /* taps summed */
    l->Kp = (l->Kt + WTr - 1) / WTr * WTr;
    l->xsize = g->C * g->kw * l->plane + (ones ? l->P : 0);
}

/* s_t for t = (c, i, j) in W's order (c·k_h + i)·k_w + j, then the ones plane's (when Kt > K);
 * 0 past Kt (taps computed and dropped) */
static void thin_shifts(const struct dconv_geom *g, const struct thin_layout *l, idx_t *shift) {
    idx_t t = 0;
    for (idx_t c = 0; c < g->C; c++)
        for (idx_t i = 0; i < g->kh; i++)
            for (idx_t j = 0; j < g->kw; j++) shift[t++] = (c * g->kw + j) * l->plane + i * g->dh * g->Wo;
    if (l->Kt > l->K) shift[t++] = g->C * g->kw * l->plane;
    for (; t < l->Kp; t++) shift[t] = 0;
}

static idx_t clampi(idx_t v, idx_t lo, idx_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

#define T float
#define FN(name) name##_f32
#include "thin_drv_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "thin_drv_t.h"
#undef T
#undef FN

int lf_thin_fwd(int f64, const void *x, const void *w, const void *bias, void *out, const struct dconv_geom *g,
                int relu, void *mask) {
    if (!impl_f32) lf_thin_isa("auto");
    return f64 ? thin_fwd_f64(impl_f64, x, w, bias, out, g, relu, mask)
               : thin_fwd_f32(impl_f32, x, w, bias, out, g, relu, mask);
}

int lf_thin_wgrad(int f64, const void *x, const void *d, void *gw, void *db, const struct dconv_geom *g) {
    if (!impl_f32) lf_thin_isa("auto");
    return f64 ? thin_wgrad_f64(impl_f64, x, d, gw, db, g) : thin_wgrad_f32(impl_f32, x, d, gw, db, g);
}
