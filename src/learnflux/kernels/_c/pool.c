/* Max pooling forward (with the winning window offset) and backward (pool_t.h); MaxPool2d(2)'s
 * 2×2 / stride 2 windows run the SIMD kernels of pool2.c. */
#include <stdlib.h>
#include "lfk.h"

#define T float
#define FN(name) name##_f32
#include "pool_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "pool_t.h"
#undef T
#undef FN

void lf_maxpool_fwd(int f64, const void *x, void *out, void *idx, int idx32, const struct pool_geom *g) {
    if (!idx32 && lf_pool2_fits(g)) {
        lf_maxpool2_fwd(f64, x, out, idx, g);
        return;
    }
    idx_t cost = g->H * g->W;
    if (f64) {
        struct maxpool_args_f64 a = {x, out, idx, idx32, g};
        lf_parallel(maxpool_fwd_range_f64, &a, g->planes, cost);
    } else {
        struct maxpool_args_f32 a = {x, out, idx, idx32, g};
        lf_parallel(maxpool_fwd_range_f32, &a, g->planes, cost);
    }
}

/* δx of the pool and, with a ReLU mask (bool, the pool input's shape; NULL: none), δx ⊙ mask: the
 * ReLU before the pool backward too. 2×2 / stride 2 applies the mask in its own pass over δx; the
 * generic loop leaves it to relu_backward's pass afterwards (in place, element by element). */
void lf_maxpool_bwd(int f64, const void *d, void *dx, const void *idx, int idx32, const unsigned char *mask,
                    const struct pool_geom *g) {
    if (!idx32 && lf_pool2_fits(g)) {
        lf_maxpool2_bwd(f64, d, idx, mask, dx, g);
        return;
    }
    idx_t cost = g->H * g->W;
    if (f64) {
        struct maxpool_args_f64 a = {d, dx, (void *)idx, idx32, g};
        lf_parallel(maxpool_bwd_range_f64, &a, g->planes, cost);
    } else {
        struct maxpool_args_f32 a = {d, dx, (void *)idx, idx32, g};
        lf_parallel(maxpool_bwd_range_f32, &a, g->planes, cost);
    }
    if (mask) lf_relu_bwd(f64, dx, mask, dx, g->planes * g->H * g->W);
}
