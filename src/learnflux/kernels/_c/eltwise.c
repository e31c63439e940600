/* Element-wise kernels: ReLU forward with its mask, backward through the mask (eltwise_t.h). */
#include "lfk.h"

#define T float
#define FN(name) name##_f32
#include "eltwise_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
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
