/* Element-wise kernels: ReLU forward with its mask, backward through the mask; GELU (exact and
 * tanh approximation) forward with what backward needs, backward (eltwise_t.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "lfk.h"

#define LF_SQRT1_2 0.70710678118654752440
#define LF_INV_SQRT_2PI 0.39894228040143267794
#define LF_SQRT_2_OVER_PI 0.79788456080286535588
#define LF_GELU_C 0.044715

/* erfc's Chebyshev coefficients: kernels/reference/eltwise.py's _ERFC_CHEB (float32 uses 15) */
static const double lf_erfc_cheb[32] = {
    -0.6513268598908547,     0.6419697923564902,     0.019476473204185836,   -0.009561514786808632,
    -0.0009465953444820369,  0.00036683949785276145, 4.252332480690777e-05,  -2.0278578112534242e-05,
    -1.6242900046470256e-06, 1.3036558355805232e-06, 1.5626441722066142e-08, -8.523809591492654e-08,
    6.5290544390988515e-09,  5.059343495551469e-09,  -9.91364156493033e-10,  -2.273651222931836e-10,
    9.646791102015527e-11,   2.3940380830391146e-12, -6.886027526497553e-12, 8.944879273090725e-13,
    3.130921399342958e-13,   -1.1270822361367252e-13, 3.810905255189232e-16, 7.106097613609237e-15,
    -1.5230282014571043e-15, -9.457494571291233e-17, 1.210237189224279e-16,  -2.816663087747177e-17,
    5.003005559445902e-20,   2.3281042579529253e-18, -8.446077682509006e-19, 7.376840893227907e-20,
};

/* per type: T, FN and the parameters of exp_neg and erfc_nonneg (eltwise_t.h undefines the latter) */
#define T float
#define FN(name) name##_f32
#define UT uint32_t
#define EXP_MAGIC 12582912.0 /* 1.5·2^23 */
#define EXP_BIAS 127
#define EXP_SHIFT 23
#define EXP_LO -87.0
#define EXP_DEG 7
#define ERFC_TERMS 15
#define TANH tanhf
#include "eltwise_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#define UT uint64_t
#define EXP_MAGIC 6755399441055744.0 /* 1.5·2^52 */
#define EXP_BIAS 1023
#define EXP_SHIFT 52
#define EXP_LO -708.0
#define EXP_DEG 13
#define ERFC_TERMS 32
#define TANH tanh
#include "eltwise_t.h"
#undef T
#undef FN

void lf_relu_fwd(int f64, const void *x, void *out, void *mask, idx_t n) {
    if (f64) {
        struct relu_args_f64 a = {x, out, mask};
        lf_parallel(relu_fwd_range_f64, &a, n, 1);
    } else {
        struct relu_args_f32 a = {x, out, mask};
        lf_parallel(relu_fwd_range_f32, &a, n, 1);
    }
}

void lf_relu_bwd(int f64, const void *d, const void *mask, void *out, idx_t n) {
    if (f64) {
        struct relu_args_f64 a = {d, out, (void *)mask};
        lf_parallel(relu_bwd_range_f64, &a, n, 1);
    } else {
        struct relu_args_f32 a = {d, out, (void *)mask};
        lf_parallel(relu_bwd_range_f32, &a, n, 1);
    }
}

/* erfc's recurrence and exp per element: about 16 element-touches of work each */
#define GELU_COST 16

void lf_gelu_fwd(int f64, const void *x, void *out, void *keep, idx_t n, int tanh_approx) {
    if (f64) {
        struct gelu_args_f64 a = {x, NULL, NULL, out, keep};
        lf_parallel(tanh_approx ? gelu_tanh_fwd_range_f64 : gelu_fwd_range_f64, &a, n, GELU_COST);
    } else {
        struct gelu_args_f32 a = {x, NULL, NULL, out, keep};
        lf_parallel(tanh_approx ? gelu_tanh_fwd_range_f32 : gelu_fwd_range_f32, &a, n, GELU_COST);
    }
}

void lf_gelu_bwd(int f64, const void *d, const void *x, const void *aux, void *out, idx_t n, int tanh_approx) {
    if (f64) {
        struct gelu_args_f64 a = {x, aux, d, out, NULL};
        lf_parallel(tanh_approx ? gelu_tanh_bwd_range_f64 : gelu_bwd_range_f64, &a, n, GELU_COST);
    } else {
        struct gelu_args_f32 a = {x, aux, d, out, NULL};
        lf_parallel(tanh_approx ? gelu_tanh_bwd_range_f32 : gelu_bwd_range_f32, &a, n, GELU_COST);
    }
}
