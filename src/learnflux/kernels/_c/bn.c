/* Batch-norm kernels: training-phase statistics and normalisation, fused backward (bn_t.h). */
#include "lfk.h"

/* No FMA contraction here: with a ReLU folded in (δ·mask) the expressions have one more
 * product than in the two separate passes, and the compiler would fuse different pairs; without
 * contraction the fused and separate kernels round every operation alike (bit-identical). */
#pragma GCC optimize("fp-contract=off")

#define T float
#define FN(name) name##_f32
#include "bn_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "bn_t.h"
#undef T
#undef FN

void lf_bn_fwd(int f64, const void *x, void *out, void *xh, const void *gamma, const void *beta, void *mean,
               void *var, void *inv_std, double eps, idx_t N, idx_t C, idx_t L, void *mask) {
    if (f64) {
        struct bn_args_f64 a = {x, NULL, out, xh, gamma, beta, mean, var, inv_std, eps, N, C, L, 0, mask};
        lf_parallel(bn_fwd_range_f64, &a, C, 3 * N * L);
    } else {
        struct bn_args_f32 a = {x, NULL, out, xh, gamma, beta, mean, var, inv_std, (float)eps, N, C, L, 0, mask};
        lf_parallel(bn_fwd_range_f32, &a, C, 3 * N * L);
    }
}

void lf_bn_bwd(int f64, const void *d, const void *xhat, const void *gain, void *dx, void *sum_d, void *sum_dx,
               int need_dx, idx_t N, idx_t C, idx_t L, const void *mask) {
    if (f64) {
        struct bn_args_f64 a = {d, xhat, dx, NULL, gain, NULL, sum_d, sum_dx, NULL, 0, N, C, L, need_dx, (void *)mask};
        lf_parallel(mask ? bn_bwd_relu_range_f64 : bn_bwd_range_f64, &a, C, 2 * N * L);
    } else {
        struct bn_args_f32 a = {d, xhat, dx, NULL, gain, NULL, sum_d, sum_dx, NULL, 0, N, C, L, need_dx, (void *)mask};
        lf_parallel(mask ? bn_bwd_relu_range_f32 : bn_bwd_range_f32, &a, C, 2 * N * L);
    }
}
