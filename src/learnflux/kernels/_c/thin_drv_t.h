/* The drivers of the thin convolution over one float type T (included by thinconv.c): the
 * expanded input, the split between threads, the slot sums of δW. The products are the
 * micro-kernels of the implementation `im` (thin_t.h). */

/* sample x (C planes of H×W) into X (see thinconv.c): every value written, padding as zeros */
static void FN(thin_pack)(const T *restrict x, T *restrict X, const struct dconv_geom *g,
                          const struct thin_layout *l) {
    const idx_t Wo = g->Wo;
    for (idx_t c = 0; c < g->C; c++)
        for (idx_t j = 0; j < g->kw; j++) {
            const idx_t off = j * g->dw - g->pl; /* input column of output column b: b + off */
            const idx_t b0 = clampi(-off, 0, Wo), b1 = clampi(g->W - off, b0, Wo);
            T *dst = X + (c * g->kw + j) * l->plane;
            for (idx_t y = 0; y < l->Hx; y++) {
                T *row = dst + y * Wo;
                const idx_t yi = y - g->pt;
                if (yi < 0 || yi >= g->H) {
                    for (idx_t b = 0; b < Wo; b++) row[b] = 0;
                    continue;
                }
                const T *src = x + (c * g->H + yi) * g->W;
                for (idx_t b = 0; b < b0; b++) row[b] = 0;
                for (idx_t b = b0; b < b1; b++) row[b] = src[b + off];
                for (idx_t b = b1; b < Wo; b++) row[b] = 0;
            }
        }
}

struct FN(thin_fwd_args) {
    const struct thin_impl *im;
    const struct dconv_geom *g;
    const struct thin_layout *l;
    const T *x, *wpk, *bias;
    T *out;
    unsigned char *mask;
    const idx_t *shift;
    int relu, failed;
};

static void FN(thin_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(thin_fwd_args) *a = p;
    const struct dconv_geom *g = a->g;
    const struct thin_layout *l = a->l;
    T *X = malloc((size_t)l->xsize * sizeof(T));
    if (!X) {
        a->failed = 1;
        return;
    }
    const idx_t OP = g->O * l->P;
    for (idx_t n = first; n < end; n++) {
        FN(thin_pack)(a->x + n * g->C * g->H * g->W, X, g, l);
        a->im->fwd(X, a->wpk, a->bias, a->out + n * OP, a->mask ? a->mask + n * OP : NULL, a->shift, l->K, g->O,
                   l->P, a->relu);
    }
    free(X);
}

/* out = W ⋆ x (+ bias) (then max(·, 0) when relu, and mask = [W ⋆ x + b ≥ 0] when mask is not
 * NULL), x (N, C, H, W), W (O, C, kh, kw), out and mask (N, O, Ho, Wo); 0 when out of memory */
static int FN(thin_fwd)(const struct thin_impl *im, const T *x, const T *w, const T *bias, T *out,
                        const struct dconv_geom *g, int relu, unsigned char *mask) {
    struct thin_layout l;
    thin_layout(g, 1, 0, &l);
    const idx_t MRr = im->MR, Opad = (g->O + MRr - 1) / MRr * MRr;
    T *wpk = calloc((size_t)(Opad * l.K + Opad), sizeof(T)); /* then the bias, zero-padded */
    idx_t *shift = malloc((size_t)l.Kp * sizeof(idx_t));
    if (!wpk || !shift) {
        free(wpk);
        free(shift);
        return 0;
    }
    T *bp = wpk + Opad * l.K;
    for (idx_t o = 0; o < g->O; o++) { /* wpk[ob][t][r] = W[ob·MR + r, t] */
        for (idx_t t = 0; t < l.K; t++) wpk[((o / MRr) * l.K + t) * MRr + o % MRr] = w[o * l.K + t];
        bp[o] = bias ? bias[o] : (T)0;
    }
    thin_shifts(g, &l, shift);
    struct FN(thin_fwd_args) a = {im, g, &l, x, wpk, bp, out, relu ? mask : NULL, shift, relu, 0};
    lf_parallel(FN(thin_fwd_range), &a, g->N, g->O * l.P * (l.K / 8 + 1));
    free(wpk);
    free(shift);
    return !a.failed;
}

/* ---------------------------------------------------------------- weight gradient */
#define LF_THIN_SLOTS 8
#define LF_THIN_FLUSH 8 /* samples summed in T vector lanes before they go into double */

struct FN(thin_wgrad_args) {
    const struct thin_impl *im;
    const struct dconv_geom *g;
    const struct thin_layout *l;
    const T *x, *d;
    double *gwp; /* [slot][O·Kp] partial weight (and bias: tap K) gradients */
    const idx_t *shift;
    idx_t slots;
    int failed;
};

/* the n lane sums of acc (VL lanes each, VL even) added up in double into out[0…n), then zeroed
 * (two chains of additions: half the latency of one) */
static void FN(thin_flush)(T *acc, double *out, idx_t n, idx_t VLr) {
    for (idx_t k = 0; k < n; k++) {
        double even = 0, odd = 0;
        for (idx_t l = 0; l < VLr; l += 2) {
            even += (double)acc[k * VLr + l];
            odd += (double)acc[k * VLr + l + 1];
        }
        out[k] += even + odd;
    }
    memset(acc, 0, (size_t)(n * VLr) * sizeof(T));
}

static void FN(thin_wgrad_range)(void *p, idx_t first, idx_t end) {
    struct FN(thin_wgrad_args) *a = p;
    const struct dconv_geom *g = a->g;
    const struct thin_layout *l = a->l;
    const idx_t VLr = a->im->VL, nw = g->O * l->Kp;
    T *X = malloc((size_t)l->xsize * sizeof(T));
    T *zero = calloc((size_t)(l->P + nw * VLr), sizeof(T)); /* then the lane sums */
    if (!X || !zero) {
        free(X);
        free(zero);
        a->failed = 1;
        return;
    }
    T *acc = zero + l->P;
    for (idx_t k = g->C * g->kw * l->plane; k < l->xsize; k++) X[k] = 1; /* δb's tap */
    for (idx_t slot = first; slot < end; slot++) {
        double *gw = a->gwp + slot * nw;
        const idx_t n0 = g->N * slot / a->slots, n1 = g->N * (slot + 1) / a->slots;
        for (idx_t n = n0; n < n1; n++) {
            FN(thin_pack)(a->x + n * g->C * g->H * g->W, X, g, l);
            a->im->wgrad(X, a->d + n * g->O * l->P, zero, acc, a->shift, l->Kt, l->Kp, g->O, l->P);
            if ((n - n0) % LF_THIN_FLUSH == LF_THIN_FLUSH - 1 || n == n1 - 1) FN(thin_flush)(acc, gw, nw, VLr);
        }
    }
    free(X);
    free(zero);
}

/* gw (O, C·kh·kw) = Σ_n δ_n ⋆ x_n, db (O) = Σ δ when db is not NULL; 0 when out of memory */
static int FN(thin_wgrad)(const struct thin_impl *im, const T *x, const T *d, T *gw, T *db,
                          const struct dconv_geom *g) {
    struct thin_layout l;
    thin_layout(g, im->WT, db != NULL, &l);
    const idx_t slots = g->N < LF_THIN_SLOTS ? (g->N > 0 ? g->N : 1) : LF_THIN_SLOTS; /* N = 0: sums of 0 */
    double *gwp = calloc((size_t)(slots * g->O * l.Kp), sizeof(double));
    idx_t *shift = malloc((size_t)l.Kp * sizeof(idx_t));
    if (!gwp || !shift) {
        free(gwp);
        free(shift);
        return 0;
    }
    thin_shifts(g, &l, shift);
    struct FN(thin_wgrad_args) a = {im, g, &l, x, d, gwp, shift, slots, 0};
    lf_parallel(FN(thin_wgrad_range), &a, slots, g->O * l.Kp * l.P * g->N / slots / 8);
    for (idx_t o = 0; o < g->O; o++) /* the slots added in order: independent of the threads */
        for (idx_t t = 0; t < l.Kt; t++) {
            double total = 0;
            for (idx_t s = 0; s < slots; s++) total += gwp[(s * g->O + o) * l.Kp + t];
            if (t < l.K)
                gw[o * l.K + t] = (T)total;
            else
                db[o] = (T)total;
        }
    free(gwp);
    free(shift);
    return !a.failed;
}
