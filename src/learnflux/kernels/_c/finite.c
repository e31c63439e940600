/* Input checks: whether an array holds only finite numbers (no NaN, no ±inf). */
#include <stdint.h>
#include "lfk.h"

/* A float is NaN or ±inf exactly when its exponent bits are all ones. Each range ORs, over its
 * elements, whether they are (an integer OR-reduction: any order gives the same answer, so it
 * vectorises), and a range that found one sets `bad` (every writer writes 1: a split over threads
 * joins them before the caller reads it). Unit = one element. */
struct finite_args {
    const void *x;
    int f64;
    int bad;
};

#if defined(__GNUC__) || defined(__clang__)
#define LF_SET_BAD(p) __atomic_store_n(p, 1, __ATOMIC_RELAXED)
#else
#define LF_SET_BAD(p) (*(volatile int *)(p) = 1)
#endif

static LF_CLONES void finite_range(void *p, idx_t first, idx_t end) {
    struct finite_args *a = p;
    unsigned found;
    if (a->f64) {
        const uint64_t *x = a->x, e = 0x7ff0000000000000ULL;
        unsigned acc = 0;
        for (idx_t q = first; q < end; q++) acc |= (x[q] & e) == e;
        found = acc;
    } else {
        const uint32_t *x = a->x, e = 0x7f800000U;
        unsigned acc = 0;
        for (idx_t q = first; q < end; q++) acc |= (x[q] & e) == e;
        found = acc;
    }
    if (found) LF_SET_BAD(&a->bad);
}

int lf_all_finite(int f64, const void *x, idx_t n) {
    struct finite_args a = {x, f64, 0};
    /* on the calling thread: two kernel threads were no faster on a batch of 256 MNIST images
     * (11.7 against 12.0 µs: the pass is bound by the cache) */
    finite_range(&a, 0, n);
    return !a.bad;
}
