/* Batch-norm statistics and backward over one float type T (included by bn.c), layout (N, C, L):
 * channel c owns the N rows x[n, c, :]. Unit = one channel, so the per-channel sums need no
 * reduction across threads. Sums run in 8 double lanes (vectorised; more accurate than NumPy's
 * float32 pairwise sums, so the kernel sets agree to rounding).
 *
 * A ReLU after the batch norm can ride along (mask != NULL): the forward pass then writes
 * o = ReLU(γ·x̂ + β) and ReLU's mask [γ·x̂ + β ≥ 0] in its output pass, and the backward pass
 * reads δ ⊙ mask (the ReLU's δx, as relu_bwd computes it: δ·mask) wherever it reads δ. */
struct FN(bn_args) {
    const T *x;    /* forward: x; backward: δ */
    const T *xhat; /* backward only */
    T *out, *xh;   /* forward: o and x̂; backward: δx (out) */
    const T *gamma, *beta; /* forward: γ, β or NULL; backward: gain = γ/σ (gamma) */
    T *mean, *var, *inv_std; /* forward results; backward: Σδ (mean), Σδ·x̂ (var) */
    T eps;
    idx_t N, C, L;
    int need_dx;
    unsigned char *mask; /* forward: ReLU's mask, written; backward: read; NULL: no ReLU */
};

static LF_CLONES void FN(bn_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(bn_args) *a = p;
    const idx_t N = a->N, C = a->C, L = a->L;
    const double inv_m = 1.0 / (double)(N * L);
    for (idx_t c = first; c < end; c++) {
        double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (idx_t n = 0; n < N; n++) {
            const T *s = a->x + (n * C + c) * L;
            idx_t q = 0;
            for (; q + 8 <= L; q += 8)
                for (int k = 0; k < 8; k++) lane[k] += (double)s[q + k];
            for (; q < L; q++) lane[0] += (double)s[q];
        }
        double sum = 0;
        for (int k = 0; k < 8; k++) { sum += lane[k]; lane[k] = 0; }
        T mean = (T)(sum * inv_m);
        for (idx_t n = 0; n < N; n++) {
            const T *s = a->x + (n * C + c) * L;
            idx_t q = 0;
            for (; q + 8 <= L; q += 8)
                for (int k = 0; k < 8; k++) {
                    double d = (double)(s[q + k] - mean);
                    lane[k] += d * d;
                }
            for (; q < L; q++) {
                double d = (double)(s[q] - mean);
                lane[0] += d * d;
            }
        }
        double ss = 0;
        for (int k = 0; k < 8; k++) ss += lane[k];
        T var = (T)(ss * inv_m);
        T inv_std = (T)1 / (T)__builtin_sqrt((double)(var + a->eps));
        if (sizeof(T) == 4) inv_std = (T)1 / __builtin_sqrtf((float)(var + a->eps));
        a->mean[c] = mean;
        a->var[c] = var;
        a->inv_std[c] = inv_std;
        T gm = a->gamma ? a->gamma[c] : (T)1, bt = a->beta ? a->beta[c] : (T)0;
        for (idx_t n = 0; n < N; n++) {
            const T *s = a->x + (n * C + c) * L;
            T *xh = a->xh + (n * C + c) * L;
            T *o = a->out ? a->out + (n * C + c) * L : NULL;
            if (o && a->mask) {
                unsigned char *mk = a->mask + (n * C + c) * L;
                for (idx_t q = 0; q < L; q++) {
                    T h = (s[q] - mean) * inv_std;
                    T z = h * gm + bt;
                    xh[q] = h;
                    mk[q] = z >= 0;
                    o[q] = z < 0 ? (T)0 : z;
                }
            } else if (o) {
                for (idx_t q = 0; q < L; q++) {
                    T h = (s[q] - mean) * inv_std;
                    xh[q] = h;
                    o[q] = h * gm + bt;
                }
            } else {
                for (idx_t q = 0; q < L; q++) xh[q] = (s[q] - mean) * inv_std;
            }
        }
    }
}

/* the backward pass with ReLU's mask folded in: every δ read below is δ·mask */
static LF_CLONES void FN(bn_bwd_relu_range)(void *p, idx_t first, idx_t end) {
    struct FN(bn_args) *a = p;
    const idx_t N = a->N, C = a->C, L = a->L;
    const double inv_m = 1.0 / (double)(N * L);
    for (idx_t c = first; c < end; c++) {
        double l1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, l2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (idx_t n = 0; n < N; n++) {
            const T *d = a->x + (n * C + c) * L, *h = a->xhat + (n * C + c) * L;
            const unsigned char *mk = a->mask + (n * C + c) * L;
            idx_t q = 0;
            for (; q + 8 <= L; q += 8)
                for (int k = 0; k < 8; k++) {
                    double e = (double)(d[q + k] * (T)mk[q + k]);
                    l1[k] += e;
                    l2[k] += e * (double)h[q + k];
                }
            for (; q < L; q++) {
                double e = (double)(d[q] * (T)mk[q]);
                l1[0] += e;
                l2[0] += e * (double)h[q];
            }
        }
        double sd = 0, sdx = 0;
        for (int k = 0; k < 8; k++) { sd += l1[k]; sdx += l2[k]; }
        a->mean[c] = (T)sd;
        a->var[c] = (T)sdx;
        if (!a->need_dx) continue;
        T md = (T)(sd * inv_m), mdx = (T)(sdx * inv_m), gain = a->gamma[c];
        for (idx_t n = 0; n < N; n++) {
            const T *d = a->x + (n * C + c) * L, *h = a->xhat + (n * C + c) * L;
            const unsigned char *mk = a->mask + (n * C + c) * L;
            T *o = a->out + (n * C + c) * L;
            for (idx_t q = 0; q < L; q++) {
                /* δ·mask as relu_bwd rounds it (a select, so that the compiler cannot fuse the
                 * product into the subtraction's FMA: the values stay those of the two passes) */
                T e = mk[q] ? d[q] : d[q] * (T)0;
                o[q] = (e - h[q] * mdx - md) * gain;
            }
        }
    }
}

static LF_CLONES void FN(bn_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(bn_args) *a = p;
    const idx_t N = a->N, C = a->C, L = a->L;
    const double inv_m = 1.0 / (double)(N * L);
    for (idx_t c = first; c < end; c++) {
        double l1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, l2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (idx_t n = 0; n < N; n++) {
            const T *d = a->x + (n * C + c) * L, *h = a->xhat + (n * C + c) * L;
            idx_t q = 0;
            for (; q + 8 <= L; q += 8)
                for (int k = 0; k < 8; k++) {
                    l1[k] += (double)d[q + k];
                    l2[k] += (double)d[q + k] * (double)h[q + k];
                }
            for (; q < L; q++) {
                l1[0] += (double)d[q];
                l2[0] += (double)d[q] * (double)h[q];
            }
        }
        double sd = 0, sdx = 0;
        for (int k = 0; k < 8; k++) { sd += l1[k]; sdx += l2[k]; }
        a->mean[c] = (T)sd;
        a->var[c] = (T)sdx;
        if (!a->need_dx) continue;
        /* δx = gain·(δ − mean(δ) − x̂·mean(δ·x̂)) */
        T md = (T)(sd * inv_m), mdx = (T)(sdx * inv_m), gain = a->gamma[c];
        for (idx_t n = 0; n < N; n++) {
            const T *d = a->x + (n * C + c) * L, *h = a->xhat + (n * C + c) * L;
            T *o = a->out + (n * C + c) * L;
            for (idx_t q = 0; q < L; q++) o[q] = (d[q] - h[q] * mdx - md) * gain;
        }
    }
}
