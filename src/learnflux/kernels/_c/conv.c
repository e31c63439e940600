/* Convolution kernels: im2col, col2im and the layout passes around the GEMM (conv_t.h). */
#include "lfk.h"

#define T float
#define FN(name) name##_f32
#include "conv_t.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "conv_t.h"
#undef T
#undef FN

void lf_im2col(int f64, const void *x, void *cols, const struct conv_geom *g) {
    if (f64) im2col_f64(x, cols, g); else im2col_f32(x, cols, g);
}

void lf_col2im(int f64, void *cols, void *dx, const struct conv_geom *g) {
    if (f64) col2im_f64(cols, dx, g); else col2im_f32(cols, dx, g);
}

void lf_bias_nchw(int f64, const void *prod, const void *bias, void *out, idx_t O, idx_t N, idx_t L, int relu) {
    if (f64) bias_nchw_f64(prod, bias, out, O, N, L, relu); else bias_nchw_f32(prod, bias, out, O, N, L, relu);
}

void lf_nchw_mat(int f64, const void *d, void *mat, void *db, idx_t O, idx_t N, idx_t L) {
    if (f64) nchw_mat_f64(d, mat, db, O, N, L); else nchw_mat_f32(d, mat, db, O, N, L);
}
