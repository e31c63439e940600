/* Optimizer kernels: the last step of every update, w ← w − c·u, in one pass (update_t.h). */
#include "lfk.h"

/* The NumPy reference computes t = c·u (rounded to T), then w − t (rounded): two roundings. A
 * fused multiply-add would round once and give other bits, so contraction stays off here (GCC
 * contracts across statements by default in GNU C; clang honours the STDC pragma). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define T float
#define FN(name) name##_f32
#include "update_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "update_t.h"
#undef T
#undef FN

void lf_sub_scaled(int f64, void *w, const void *u, double c, int wide, idx_t n) {
    if (f64)
        sub_scaled_f64(w, u, c, wide, n);
    else
        sub_scaled_f32(w, u, c, wide, n);
}
