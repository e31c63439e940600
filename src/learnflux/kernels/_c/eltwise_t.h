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

/* e^y for y ≤ 0 in T, branch-free so that the loops calling it vectorise (libm's exp does not:
 * measured slower than NumPy's SIMD exp): y = n·ln2 + r, |r| ≤ ln2/2, e^r by its Taylor
 * polynomial of degree EXP_DEG (error below T's rounding), 2^n written into the exponent bits.
 * Below EXP_LO (where e^y leaves the normal numbers) the result is 0. */
static inline T FN(exp_neg)(T y) {
    int under = y < (T)EXP_LO;
    y = under ? (T)EXP_LO : y;
    T k = y * (T)1.44269504088896340736 + (T)EXP_MAGIC; /* n rounded, in k's low mantissa bits */
    T n = k - (T)EXP_MAGIC;
    T r = (y - n * (T)0.693145751953125) - n * (T)1.42860682030941723212e-6;
    T p = (T)1;
    for (int j = EXP_DEG; j >= 1; j--) p = p * r / (T)j + (T)1;
    UT kb, sb;
    memcpy(&kb, &k, sizeof kb);
    sb = (kb + (UT)EXP_BIAS) << EXP_SHIFT;
    T scale;
    memcpy(&scale, &sb, sizeof scale);
    return under ? (T)0 : p * scale;
}

/* erfc(z) for z ≥ 0 given z2 = z² (or x²/2 for z = |x|/√2): the NumPy reference's Chebyshev
 * expansion (kernels/reference/eltwise.py, erfc_nonneg), the same ERFC_TERMS coefficients,
 * t·exp(−z² + Σ_k c_k T_k(u)), t = 2/(2 + z), u = 2t − 1, by Clenshaw's recurrence. */
static inline T FN(erfc_nonneg)(T z, T z2) {
    T t = (T)2 / (z + (T)2);
    T u2 = (T)4 * t - (T)2;
    T b1 = 0, b2 = 0;
#pragma GCC unroll 32
    for (int j = ERFC_TERMS - 1; j >= 1; j--) {
        T b = u2 * b1 - b2 + (T)lf_erfc_cheb[j];
        b2 = b1;
        b1 = b;
    }
    T f = u2 * b1 * (T)0.5 - b2 + (T)lf_erfc_cheb[0] - z2;
    return FN(exp_neg)(f) * t;
}

/* GELU over one float type T: o = x·Φ(x), Φ(x) = 1 − ½erfc(x/√2) for x ≥ 0 and ½erfc(−x/√2) below
 * (no cancellation in either tail), and in training aux = Φ(x); with tanh set, the approximation
 * o = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³), aux = tanh u. Backward from (x, aux):
 * δx = δ·(Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π), or for tanh
 * δx = δ·½(1 + t + x(1 − t²)·√(2/π)(1 + 3·0.044715x²)) with x clipped to ±1e3 (1 − t² is 0 there;
 * the clip only avoids 0·∞), the NumPy reference's formulas in T (libm's tanh). */
struct FN(gelu_args) {
    const T *x, *aux, *d;
    T *out, *keep;
};

static LF_CLONES void FN(gelu_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(gelu_args) *a = p;
    const T *x = a->x;
    T *o = a->out, *k = a->keep;
    for (idx_t q = first; q < end; q++) {
        T v = x[q];
        T e = (T)0.5 * FN(erfc_nonneg)((v < 0 ? -v : v) * (T)LF_SQRT1_2, v * v * (T)0.5);
        T c = v >= 0 ? (T)1 - e : e;
        if (k) k[q] = c;
        o[q] = v * c;
    }
}

static LF_CLONES void FN(gelu_tanh_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(gelu_args) *a = p;
    const T *x = a->x;
    T *o = a->out, *k = a->keep;
    for (idx_t q = first; q < end; q++) {
        T v = x[q];
        T t = TANH((v * v * (T)LF_GELU_C + (T)1) * v * (T)LF_SQRT_2_OVER_PI);
        if (k) k[q] = t;
        o[q] = (t + (T)1) * v * (T)0.5;
    }
}

static LF_CLONES void FN(gelu_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(gelu_args) *a = p;
    const T *x = a->x, *c = a->aux, *d = a->d;
    T *o = a->out;
    for (idx_t q = first; q < end; q++) {
        T v = x[q];
        o[q] = d[q] * (FN(exp_neg)(v * v * (T)-0.5) * (T)LF_INV_SQRT_2PI * v + c[q]);
    }
}

static LF_CLONES void FN(gelu_tanh_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(gelu_args) *a = p;
    const T *x = a->x, *th = a->aux, *d = a->d;
    T *o = a->out;
    for (idx_t q = first; q < end; q++) {
        T v = x[q], t = th[q];
        v = v < (T)-1e3 ? (T)-1e3 : (v > (T)1e3 ? (T)1e3 : v);
        T g = ((T)1 - t * t) * v * (v * v * (T)(3 * LF_GELU_C) + (T)1) * (T)LF_SQRT_2_OVER_PI;
        o[q] = d[q] * ((g + t + (T)1) * (T)0.5);
    }
}

/* this type's parameters, defined by eltwise.c before including this file */
#undef UT
#undef EXP_MAGIC
#undef EXP_BIAS
#undef EXP_SHIFT
#undef EXP_LO
#undef EXP_DEG
#undef ERFC_TERMS
#undef TANH
