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

#if LF_DENSE_VEC
/* One 8 × 8 block: rows o0..o0+7 of prod at columns n0..n0+7, plus the bias of each row, are
 * transposed in registers (three rounds of shuffles, the classic unpack / 2-element / half swaps)
 * and written as 8 contiguous values into each of the rows n0..n0+7 of out, with the ReLU
 * (v < 0 ? 0 : v, by clearing the lanes where v < 0: NaN and −0 stay) and its mask [v ≥ 0]. */
static inline LF_INLINE void FN(dense_block8)(const T *prod, const T *bias, T *out, unsigned char *mask, idx_t O, idx_t N,
                                    idx_t o0, idx_t n0, int relu) {
    FN(vec) r[8], t[8], u[8], v[8];
    for (int i = 0; i < 8; i++) {
        r[i] = *(const FN(uvec) *)(prod + (o0 + i) * N + n0);
        if (bias) r[i] += bias[o0 + i]; /* the same scalar addition per element */
    }
    for (int i = 0; i < 8; i += 2) {
        t[i] = LF_SHUF(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = LF_SHUF(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = LF_SHUF(t[h], t[h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[h + 1] = LF_SHUF(t[h], t[h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[h + 2] = LF_SHUF(t[h + 1], t[h + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[h + 3] = LF_SHUF(t[h + 1], t[h + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int j = 0; j < 4; j++) {
        v[j] = LF_SHUF(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        v[j + 4] = LF_SHUF(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
    const FN(vec) zero = {0};
    for (int j = 0; j < 8; j++) { /* v[j]: column n0 + j, rows o0..o0+7 */
        FN(vec) w = v[j];
        if (relu) {
            FN(ivec) neg = w < zero;
            w = (FN(vec))((FN(ivec))w & ~neg);
            if (mask) {
                /* [v ≥ 0] as 1 or 0 per lane; the lanes' low bytes gathered into the first 8
                 * bytes by one constant byte shuffle (a lane-by-lane conversion compiled to
                 * scalar code and cost more than the rest of the pass) */
                FN(bytes) ge = (FN(bytes))((v[j] >= zero) & 1);
                ge = LF_SHUF_BYTES(ge, FN(byte_idx));
                uint64_t first8 = ((FN(words))ge)[0];
                memcpy(mask + (n0 + j) * O + o0, &first8, 8); /* one 8-byte move */
            }
        }
        *(FN(uvec) *)(out + (n0 + j) * O + o0) = w;
    }
}
#endif

/* out[n, o] = act(prod[o, n] + b[o]) for n in [n0, n1), o in [o0, o1), one element at a time */
static inline LF_INLINE void FN(dense_scalar)(const T *restrict prod, const T *restrict bias, T *restrict out,
                                    unsigned char *restrict mask, idx_t O, idx_t N, idx_t n0, idx_t n1, idx_t o0,
                                    idx_t o1, int relu) {
    for (idx_t n = n0; n < n1; n++) {
        for (idx_t o = o0; o < o1; o++) {
            T v = prod[o * N + n];
            if (bias) v += bias[o]; /* none: nothing added (v + 0 would turn −0 into +0) */
            if (relu) {
                if (mask) mask[n * O + o] = v >= 0;
                v = v < 0 ? (T)0 : v;
            }
            out[n * O + o] = v;
        }
    }
}

/* Every field is read into a local first: with -fno-strict-aliasing a store through `out` could
 * otherwise change `a->N` or `a->relu`, and the compiler would reload them in the inner loops. */
static LF_CLONES void FN(dense_out_range)(void *p, idx_t first, idx_t end) {
    const struct FN(dense_args) *a = p;
    const T *prod = a->prod, *bias = a->bias;
    T *out = a->out;
    unsigned char *mask = a->mask;
    const idx_t O = a->O, N = a->N;
    const int relu = a->relu;
    for (idx_t n0 = first; n0 < end; n0 += LF_DENSE_TILE) {
        const idx_t n1 = n0 + LF_DENSE_TILE < end ? n0 + LF_DENSE_TILE : end;
        for (idx_t o0 = 0; o0 < O; o0 += LF_DENSE_TILE) {
            const idx_t o1 = o0 + LF_DENSE_TILE < O ? o0 + LF_DENSE_TILE : O;
#if LF_DENSE_VEC
            /* 8 × 8 blocks in registers, the ragged edges one element at a time */
            const idx_t n8 = n0 + (n1 - n0) / 8 * 8, o8 = o0 + (o1 - o0) / 8 * 8;
            for (idx_t n = n0; n < n8; n += 8)
                for (idx_t o = o0; o < o8; o += 8) FN(dense_block8)(prod, bias, out, mask, O, N, o, n, relu);
            FN(dense_scalar)(prod, bias, out, mask, O, N, n0, n8, o8, o1, relu);
            FN(dense_scalar)(prod, bias, out, mask, O, N, n8, n1, o0, o1, relu);
#else
            FN(dense_scalar)(prod, bias, out, mask, O, N, n0, n1, o0, o1, relu);
#endif
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
        if (bias && relu) {
            const T b = bias[o];
            for (idx_t n = 0; n < N; n++) {
                T v = d[n] + b;
                d[n] = v < 0 ? (T)0 : v;
            }
        } else if (bias) {
            const T b = bias[o];
            for (idx_t n = 0; n < N; n++) d[n] = d[n] + b;
        } else if (relu) { /* no bias: nothing added (v + 0 would turn −0 into +0) */
            for (idx_t n = 0; n < N; n++) d[n] = d[n] < 0 ? (T)0 : d[n];
        }
    }
}

static void FN(dense_rows)(const T *bias, T *prod, idx_t O, idx_t N, int relu) {
    struct FN(dense_args) a = {prod, bias, prod, NULL, O, N, relu};
    lf_parallel(FN(dense_rows_range), &a, O, N);
}

/* The backward pass of a ReLU and the Linear before it, as far as it is element-wise: δz = δ·m
 * (the ReLU's mask; a product, as the ReLU kernel: inf·0 gives NaN there too) and, when db is
 * given, the bias gradient db[o] = Σ_n δz[n, o], summed from 0 row after row in T: the order of
 * NumPy's np.sum(δz, axis=0) on a C-ordered array, so bit-identical (the sum starts from +0, so a
 * column of −0 sums to +0 as in NumPy). δ, m and δz are (N, O) C-ordered; unit = one column o. */
struct FN(dense_bwd_args) {
    const T *d;
    const unsigned char *mask;
    T *dz, *db;
    idx_t N, O;
};

static LF_CLONES void FN(dense_relu_bwd_range)(void *p, idx_t first, idx_t end) {
    const struct FN(dense_bwd_args) *a = p;
    const T *restrict d = a->d;
    const unsigned char *restrict m = a->mask;
    T *restrict dz = a->dz, *restrict db = a->db;
    const idx_t N = a->N, O = a->O;
    if (db)
        for (idx_t o = first; o < end; o++) db[o] = 0;
    for (idx_t n = 0; n < N; n++) {
        const T *restrict dr = d + n * O;
        const unsigned char *restrict mr = m + n * O;
        T *restrict zr = dz + n * O;
        if (db) {
            for (idx_t o = first; o < end; o++) {
                T v = dr[o] * (T)mr[o];
                zr[o] = v;
                db[o] = db[o] + v;
            }
        } else {
            for (idx_t o = first; o < end; o++) zr[o] = dr[o] * (T)mr[o];
        }
    }
}

/* on the calling thread: one pass over an L2-resident δ (the MLP's 128×512: a few µs) */
static void FN(dense_relu_bwd)(const T *d, const unsigned char *mask, T *dz, T *db, idx_t N, idx_t O) {
    struct FN(dense_bwd_args) a = {d, mask, dz, db, N, O};
    FN(dense_relu_bwd_range)(&a, 0, O);
}
