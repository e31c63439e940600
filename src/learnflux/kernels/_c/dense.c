/* Dense (Linear) layer kernels: the output pass after the GEMM, transposing W·xᵀ into the
 * (batch, out) output with the bias and, fused, the ReLU with its mask; in the inference phase the bias and ReLU in place
 * on W·xᵀ (dense_t.h). */
#include <stdint.h>
#include <string.h>
#include "lfk.h"

/* The 8 × 8 register transposes use GCC/Clang vector extensions (generic vectors: the compiler
 * maps them onto each target clone's registers); other compilers run the scalar loop. */
/* inlined into each target clone of the caller, so that they run in its registers */
#define LF_INLINE __attribute__((always_inline))
#if defined(__clang__)
#define LF_DENSE_VEC 1
#define LF_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define LF_SHUF_BYTES(v, idx) __builtin_shufflevector(v, v, idx)
#elif defined(__GNUC__)
#define LF_DENSE_VEC 1
#define LF_SHUF(a, b, ...) __builtin_shuffle(a, b, (__typeof__(LF_IVEC_OF(a))){__VA_ARGS__})
#define LF_SHUF_BYTES(v, idx) __builtin_shuffle(v, (__typeof__(v)){idx})
#else
#define LF_DENSE_VEC 0
#undef LF_INLINE
#define LF_INLINE
#endif

typedef float vec_f32 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t ivec_f32 __attribute__((vector_size(8 * sizeof(int32_t))));
typedef double vec_f64 __attribute__((vector_size(8 * sizeof(double))));
typedef int64_t ivec_f64 __attribute__((vector_size(8 * sizeof(int64_t))));
/* Unaligned loads and stores go through these may_alias copies of the types, not memcpy: GCC
 * expands a memcpy with the command line's widest move (16 bytes, SSE2), not the target clone's,
 * and a 32-byte vector then goes through the stack in halves (see dconv_t.h). */
typedef float uvec_f32 __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float)), may_alias));
typedef double uvec_f64 __attribute__((vector_size(8 * sizeof(double)), aligned(sizeof(double)), may_alias));
/* the same vectors as bytes and as 64-bit words, and the byte shuffle that gathers each lane's
 * low byte in front */
typedef uint64_t words_f32 __attribute__((vector_size(8 * sizeof(float))));
typedef uint64_t words_f64 __attribute__((vector_size(8 * sizeof(double))));
typedef unsigned char bytes_f32 __attribute__((vector_size(8 * sizeof(float))));
typedef unsigned char bytes_f64 __attribute__((vector_size(8 * sizeof(double))));
#define byte_idx_f32 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define byte_idx_f64                                                                                        \
    0, 8, 16, 24, 32, 40, 48, 56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, \
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

#define T float
#define FN(name) name##_f32
#define LF_IVEC_OF(a) (ivec_f32){0}
#include "dense_t.h"
#undef LF_IVEC_OF
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#define LF_IVEC_OF(a) (ivec_f64){0}
#include "dense_t.h"
#undef LF_IVEC_OF
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

void lf_dense_relu_bwd(int f64, const void *d, const void *mask, void *dz, void *db, idx_t N, idx_t O) {
    if (f64)
        dense_relu_bwd_f64(d, mask, dz, db, N, O);
    else
        dense_relu_bwd_f32(d, mask, dz, db, N, O);
}
