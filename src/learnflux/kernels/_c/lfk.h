/* Shared declarations of learnflux's compiled kernels (see kernels/compiled.py for the Python side).
 *
 * Every kernel family lives in its own file (conv.c for im2col/col2im, dconv.c for the direct
 * convolution, thinconv.c for few taps, wino.c and winowg.c for Winograd's forward and weight
 * gradient, pool.c and pool2.c for max pooling, eltwise.c, bn.c, dense.c for Linear's output pass,
 * update.c for the optimizers' last step, finite.c for the input check); module.c parses the Python
 * arguments (CPython buffer protocol: no NumPy headers, no NumPy build dependency), releases the GIL
 * and calls them. Float kernels are written once in a "*_t.h" file over the type T and included
 * twice (float32 and float64).
 *
 * Threads: lf_parallel() splits a call over one pool of worker threads (parallel.c) that sleep on a
 * condition variable between calls: nothing spins after a call, so the next BLAS product gets every
 * core. Work below LF_PAR_MIN elements runs on the calling thread alone.
 *
 * Vectorisation: the hot loops carry LF_CLONES, GCC/Clang target clones for AVX-512, AVX2 and a
 * baseline; the dynamic loader picks one for the CPU at import time (no -march=native). The
 * hand-vectorised families (dconv, thin, wino, winowg, pool2) are compiled for the same three and
 * pick theirs at run time with lf_isa_level below.
 */
#ifndef LFK_H
#define LFK_H

#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && !defined(LFK_NO_CLONES)
#define LF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LF_CLONES
#endif

typedef ptrdiff_t idx_t;

/* The instruction sets of the hand-vectorised kernel families (dconv, thin, wino, winowg, pool2),
 * each compiled for AVX-512, AVX2 and a portable baseline and chosen at run time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(LFK_NO_CLONES)
#define LF_X86_ISAS 1
#endif
enum { LF_ISA_BASE = 0, LF_ISA_AVX2 = 1, LF_ISA_AVX512 = 2 };

/* The name of an LF_ISA_* level: "baseline", "avx2" or "avx512". */
static inline const char *lf_isa_name(int level) {
    return level == LF_ISA_AVX512 ? "avx512" : level == LF_ISA_AVX2 ? "avx2" : "baseline";
}

/* The level for `want`: "auto" (the best this CPU runs), "avx512", "avx2" or "baseline"; -1 when this
 * CPU (or build) does not have it. `fma`: the family's vector code also needs FMA. */
static inline int lf_isa_level(const char *want, int fma) {
    int autosel = strcmp(want, "auto") == 0;
#ifdef LF_X86_ISAS
    __builtin_cpu_init();
    int has2 = __builtin_cpu_supports("avx2") && (!fma || __builtin_cpu_supports("fma"));
    int has512 = has2 && __builtin_cpu_supports("avx512f");
    if ((autosel && has512) || (strcmp(want, "avx512") == 0 && has512)) return LF_ISA_AVX512;
    if ((autosel && has2) || (strcmp(want, "avx2") == 0 && has2)) return LF_ISA_AVX2;
#else
    (void)fma;
#endif
    return autosel || strcmp(want, "baseline") == 0 ? LF_ISA_BASE : -1;
}

/* the work of one call, split by unit ranges between threads: fn(arg, first, end) */
typedef void (*lf_range_fn)(void *arg, idx_t first, idx_t end);

/* Run fn over units [0, units), split in contiguous ranges between up to lf_num_threads threads
 * when units * cost_per_unit >= LF_PAR_MIN (cost in elements touched), else on this thread. */
void lf_parallel(lf_range_fn fn, void *arg, idx_t units, idx_t cost_per_unit);
int lf_get_threads(void);
void lf_set_threads(int n);

#define LF_PAR_MIN ((idx_t)1 << 18)

struct conv_geom {
    idx_t N, C, H, W, kh, kw, sh, sw, dh, dw, pt, pl, Ho, Wo;
};

/* the direct convolution (dconv.c): stride 1, one group; input (N, C, H, W) padded by pt/pl on the
 * top/left, output (N, O, Ho, Wo) */
struct dconv_geom {
    idx_t N, C, H, W, O, Ho, Wo, kh, kw, dh, dw, pt, pl;
};

struct pool_geom {
    idx_t planes, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo;
};

/* ReLU backward, δ·mask (eltwise.c; pool.c runs it after a generic pool backward with a mask) */
void lf_relu_bwd(int f64, const void *d, const void *mask, void *out, idx_t n);

/* 2×2 / stride 2 max pooling without padding, floor mode (pool2.c; pool.c sends it there) */
int lf_pool2_fits(const struct pool_geom *g);
void lf_maxpool2_fwd(int f64, const void *x, void *out, unsigned char *k, const struct pool_geom *g);
void lf_maxpool2_bwd(int f64, const void *d, const unsigned char *k, const unsigned char *m, void *dx,
                     const struct pool_geom *g);

#endif
