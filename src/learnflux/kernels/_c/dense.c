/* Dense (Linear) layer kernels: the output pass after the GEMM, transposing W·xᵀ into the
 * (batch, out) output with the bias and, fused, the ReLU with its mask; in the inference phase the bias and ReLU in place
 * on W·xᵀ (dense_t.h). */
#include "lfk.h"

#define T float
#define FN(name) name##_f32
#include "dense_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "dense_t.h"
#undef T
#undef FN

void lf_dense_out(int f64, const void *prod, const void *bias, void *out, void *mask, idx_t O, idx_t N, int relu) {
    if (f64)
        dense_out_f64(prod, bias, out, mask, O, N, relu);
    else
        dense_out_f32(prod, bias, out, mask, O, N, relu);
}

void lf_dense_rows(int f64, const void *bias, void *prod, idx_t O, idx_t N, int relu) {
    if (f64)
        dense_rows_f64(bias, prod, O, N, relu);
    else
        dense_rows_f32(bias, prod, O, N, relu);
}
