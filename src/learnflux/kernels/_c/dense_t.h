/* The output pass of a dense (Linear) layer over one float type T (included by dense.c).
 *
 * The GEMM runs as prod = W·xᵀ, (O, N) C-ordered (the operand order OpenBLAS runs fastest on the
 * MLP's shapes, see layers/linear.py); the layer's output in the training phase is (N, O)
 * C-ordered. One pass writes it: out[n, o] = act(prod[o, n] + b[o]), act = ReLU (v < 0 ? 0 : v,
 * NaN kept) or the identity, and with ReLU the mask m[n, o] = [prod[o, n] + b[o] ≥ 0] that its
 * backward pass needs (ReLU'(0) = 1). The same additions and comparisons as NumPy's
 * `out = prod.T + b` followed by the ReLU kernel: bit-identical results.
 *
 * The transpose runs in TILE × TILE tiles (both the TILE rows of prod read and the TILE rows of out
 * written stay in L1); unit = one output row n, split over threads in contiguous ranges. */
#ifndef LF_DENSE_TILE
#define LF_DENSE_TILE 32
#endif

struct FN(dense_args) {
    const T *prod, *bias;
    T *out;
    unsigned char *mask;
    idx_t O, N;
    int relu;
};

/* Every field is read into a local first: with -fno-strict-aliasing a store through `out` could
 * otherwise change `a->N` or `a->relu`, so the compiler would reload them in the inner loops and
 * not vectorise them. */
static LF_CLONES void FN(dense_out_range)(void *p, idx_t first, idx_t end) {
    const struct FN(dense_args) *a = p;
    const T *restrict prod = a->prod, *restrict bias = a->bias;
    T *restrict out = a->out;
    unsigned char *restrict mask = a->mask;
    const idx_t O = a->O, N = a->N;
    const int relu = a->relu;
    for (idx_t n0 = first; n0 < end; n0 += LF_DENSE_TILE) {
        const idx_t n1 = n0 + LF_DENSE_TILE < end ? n0 + LF_DENSE_TILE : end;
        for (idx_t o0 = 0; o0 < O; o0 += LF_DENSE_TILE) {
            const idx_t o1 = o0 + LF_DENSE_TILE < O ? o0 + LF_DENSE_TILE : O;
            for (idx_t n = n0; n < n1; n++) {
                const T *restrict s = prod + n;
                T *restrict d = out + n * O;
                if (relu && mask) {
                    unsigned char *restrict m = mask + n * O;
                    for (idx_t o = o0; o < o1; o++) {
                        T v = s[o * N] + (bias ? bias[o] : (T)0);
                        m[o] = v >= 0;
                        d[o] = v < 0 ? (T)0 : v;
                    }
                } else if (relu) {
                    for (idx_t o = o0; o < o1; o++) {
                        T v = s[o * N] + (bias ? bias[o] : (T)0);
                        d[o] = v < 0 ? (T)0 : v;
                    }
                } else {
                    for (idx_t o = o0; o < o1; o++) d[o] = s[o * N] + (bias ? bias[o] : (T)0);
                }
            }
        }
    }
}

static void FN(dense_out)(const T *prod, const T *bias, T *out, unsigned char *mask, idx_t O, idx_t N, int relu) {
    struct FN(dense_args) a = {prod, bias, out, mask, O, N, relu};
    lf_parallel(FN(dense_out_range), &a, N, O);
}

/* The inference phase keeps W·xᵀ as it is ((O, N) C-ordered: the layer returns its transposed
 * view) and adds the bias to each row o, with the ReLU, in place: p[o, n] = act(p[o, n] + b[o]).
 * Unit = one row o. */
static LF_CLONES void FN(dense_rows_range)(void *p, idx_t first, idx_t end) {
    const struct FN(dense_args) *a = p;
    const T *restrict bias = a->bias;
    T *restrict out = a->out;
    const idx_t N = a->N;
    const int relu = a->relu;
    for (idx_t o = first; o < end; o++) {
        T *restrict d = out + o * N;
        const T b = bias ? bias[o] : (T)0;
        if (relu) {
            for (idx_t n = 0; n < N; n++) {
                T v = d[n] + b;
                d[n] = v < 0 ? (T)0 : v;
            }
        } else {
            for (idx_t n = 0; n < N; n++) d[n] = d[n] + b;
        }
    }
}

static void FN(dense_rows)(const T *bias, T *prod, idx_t O, idx_t N, int relu) {
    struct FN(dense_args) a = {prod, bias, prod, NULL, O, N, relu};
    lf_parallel(FN(dense_rows_range), &a, O, N);
}
