/* ReLU over one float type T (included by eltwise.c). Unit = one element; ranges are contiguous.
 * Forward: o = x < 0 ? 0 : x (NaN stays NaN) and, in training, mask = [x ≥ 0] (ReLU'(0) = 1);
 * backward: δx = δ · mask (a product, as the NumPy reference: inf·0 gives NaN there too). */
struct FN(relu_args) {
    const T *x;
    T *out;
    unsigned char *mask;
};

static LF_CLONES void FN(relu_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(relu_args) *a = p;
    const T *x = a->x;
    T *o = a->out;
    if (a->mask) {
        unsigned char *m = a->mask;
        for (idx_t q = first; q < end; q++) {
            T v = x[q];
            m[q] = v >= 0;
            o[q] = v < 0 ? (T)0 : v;
        }
    } else {
        for (idx_t q = first; q < end; q++) {
            T v = x[q];
            o[q] = v < 0 ? (T)0 : v;
        }
    }
}

static LF_CLONES void FN(relu_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(relu_args) *a = p; /* x = δ */
    const T *d = a->x;
    T *o = a->out;
    const unsigned char *m = a->mask;
    for (idx_t q = first; q < end; q++) o[q] = d[q] * (T)m[q];
}
