/* w ← w − c·u over one float type T (included by update.c), the rounding of NumPy's
 * `t = u * c; w -= t`: with `wide` unset c is rounded to T first and the product is rounded in T
 * (NumPy's rule for a Python float times a float32 array); with `wide` set the product is formed
 * in double and rounded to T (a float64 scalar times a float32 array, written into a float32
 * array). Unit = one element. */
struct FN(sub_scaled_args) {
    T *w;
    const T *u;
    double c;
    int wide;
};

static LF_CLONES void FN(sub_scaled_range)(void *p, idx_t first, idx_t end) {
    struct FN(sub_scaled_args) *a = p;
    T *w = a->w;
    const T *u = a->u;
    if (a->wide) {
        const double c = a->c;
        for (idx_t q = first; q < end; q++) {
            T t = (T)((double)u[q] * c);
            w[q] = w[q] - t;
        }
    } else {
        const T c = (T)a->c;
        for (idx_t q = first; q < end; q++) {
            T t = u[q] * c;
            w[q] = w[q] - t;
        }
    }
}

static void FN(sub_scaled)(T *w, const T *u, double c, int wide, idx_t n) {
    struct FN(sub_scaled_args) a = {w, u, c, wide};
    /* on the calling thread: split over two kernel threads it ran slower (the MLP's weights,
     * L3-warm: 116 against 76 µs per SGD step), the pass is bound by the shared cache */
    FN(sub_scaled_range)(&a, 0, n);
}
