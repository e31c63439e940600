/* The drivers of the direct convolution over one float type T (included by dconv.c): packing,
 * the split between threads, cropping back to NCHW. The products are the micro-kernels of the
 * implementation `im` (dconv_t.h). */

/* sample n of x (C planes of H×W) into the padded flat layout xp; the border is never written, so
 * it stays 0 from the calloc */
static void FN(dconv_pack)(const T *x, T *xp, const struct dconv_geom *g, const struct dlayout *l) {
    idx_t width = g->W < l->Wp - g->pl ? g->W : l->Wp - g->pl;
    if (width <= 0) return;
    for (idx_t c = 0; c < g->C; c++)
        for (idx_t y = 0; y < g->H && y + g->pt < l->Hp; y++)
            memcpy(xp + c * l->plane + (y + g->pt) * l->Wp + g->pl, x + (c * g->H + y) * g->W,
                   (size_t)width * sizeof(T));
}

struct FN(dconv_fwd_args) {
    const struct dconv_impl *im;
    const struct dconv_geom *g;
    const struct dlayout *l;
    const T *x, *wpk, *bias;
    T *out;
    unsigned char *mask; /* with relu in training: [pre-activation ≥ 0] (ReLU'(0) = 1), else NULL */
    const idx_t *shift;
    idx_t Ob;
    int relu, failed;
};

/* one output plane, cropped from the padded width Wp, with the bias, the ReLU and its mask (target
 * clones: the float compare and byte store vectorise with AVX2/AVX-512 code; the driver itself is
 * baseline code) */
static LF_CLONES void FN(dconv_relu_plane)(const T *restrict src, idx_t Wp, T b, T *restrict d,
                                           unsigned char *restrict m, idx_t Ho, idx_t Wo) {
    for (idx_t r = 0; r < Ho; r++) {
        const T *restrict s = src + r * Wp;
        for (idx_t c = 0; c < Wo; c++) {
            T v = s[c] + b;
            m[r * Wo + c] = v >= 0;
            d[r * Wo + c] = v < 0 ? (T)0 : v;
        }
    }
}

static void FN(dconv_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(dconv_fwd_args) *a = p;
    const struct dconv_geom *g = a->g;
    const struct dlayout *l = a->l;
    T *xp = calloc((size_t)l->xsize, sizeof(T));
    T *acc = malloc((size_t)(a->Ob * a->im->MR * l->Lv) * sizeof(T));
    if (!xp || !acc) {
        free(xp);
        free(acc);
        a->failed = 1;
        return;
    }
    const idx_t P = g->Ho * g->Wo;
    for (idx_t n = first; n < end; n++) {
        FN(dconv_pack)(a->x + n * g->C * g->H * g->W, xp, g, l);
        a->im->fwd(xp, a->wpk, acc, a->shift, l->K, a->Ob, l->Lv);
        for (idx_t o = 0; o < g->O; o++) { /* crop W̃ → W_out, bias, ReLU, NCHW */
            const T b = a->bias ? a->bias[o] : (T)0;
            T *dst = a->out + (n * g->O + o) * P;
            const T *src = acc + o * l->Lv;
            if (a->mask) { /* the ReLU layer's mask from the pre-activation, as relu_fwd */
                FN(dconv_relu_plane)(src, l->Wp, b, dst, a->mask + (n * g->O + o) * P, g->Ho, g->Wo);
                continue;
            }
            for (idx_t r = 0; r < g->Ho; r++) {
                const T *s = src + r * l->Wp;
                T *d = dst + r * g->Wo;
                if (a->relu)
                    for (idx_t c = 0; c < g->Wo; c++) {
                        T v = s[c] + b;
                        d[c] = v < 0 ? (T)0 : v;
                    }
                else
                    for (idx_t c = 0; c < g->Wo; c++) d[c] = s[c] + b;
            }
        }
    }
    free(xp);
    free(acc);
}

/* out = W ⋆ x (+ bias) (then max(·, 0) when relu, and mask = [W ⋆ x + b ≥ 0] when mask is not
 * NULL: ReLU fused into the output pass, the same values as relu_fwd on the unfused output),
 * x (N, C, H, W), W (O, C, kh, kw), out and mask (N, O, Ho, Wo); 0 when out of memory */
static int FN(dconv_fwd)(const struct dconv_impl *im, const T *x, const T *w, const T *bias, T *out,
                         const struct dconv_geom *g, int relu, unsigned char *mask) {
    struct dlayout l;
    layout(g, im->tile, &l);
    const idx_t MRr = im->MR, Ob = (g->O + MRr - 1) / MRr;
    T *wpk = calloc((size_t)(Ob * MRr * l.K), sizeof(T));
    idx_t *shift = malloc((size_t)l.K * sizeof(idx_t));
    if (!wpk || !shift) {
        free(wpk);
        free(shift);
        return 0;
    }
    for (idx_t o = 0; o < g->O; o++) /* wpk[ob][t][r] = W[ob·MR + r, t] */
        for (idx_t t = 0; t < l.K; t++) wpk[((o / MRr) * l.K + t) * MRr + o % MRr] = w[o * l.K + t];
    shifts(g, &l, shift, l.K);
    struct FN(dconv_fwd_args) a = {im, g, &l, x, wpk, bias, out, relu ? mask : NULL, shift, Ob, relu, 0};
    lf_parallel(FN(dconv_fwd_range), &a, g->N, Ob * MRr * l.Lv * l.K / 8);
    free(wpk);
    free(shift);
    return !a.failed;
}

/* ---------------------------------------------------------------- weight gradient */
#define LF_DCONV_SLOTS 8
#define LF_DCONV_BLOCK_ELEMS ((idx_t)1 << 18)

struct FN(dconv_wgrad_args) {
    const struct dconv_impl *im;
    const struct dconv_geom *g;
    const struct dlayout *l;
    const T *x, *d;
    T *gwp;      /* [slot][Op·Kp] partial weight gradients */
    double *dbp; /* [slot][O] partial bias gradients, or NULL */
    const idx_t *shift;
    idx_t Op, Kp, slots;
    int failed;
};

static void FN(dconv_wgrad_range)(void *p, idx_t first, idx_t end) {
    struct FN(dconv_wgrad_args) *a = p;
    const struct dconv_geom *g = a->g;
    const struct dlayout *l = a->l;
    const idx_t dstride = a->Op * l->Lv, per = l->xsize + dstride;
    idx_t S = LF_DCONV_BLOCK_ELEMS / per;
    S = S < 1 ? 1 : (S > 16 ? 16 : S);
    T *xp = calloc((size_t)(S * per), sizeof(T));
    if (!xp) {
        a->failed = 1;
        return;
    }
    T *dp = xp + S * l->xsize;
    const idx_t P = g->Ho * g->Wo;
    for (idx_t slot = first; slot < end; slot++) {
        idx_t n0 = g->N * slot / a->slots, n1 = g->N * (slot + 1) / a->slots;
        T *gw = a->gwp + slot * a->Op * a->Kp;
        double *db = a->dbp ? a->dbp + slot * g->O : NULL;
        for (idx_t nb = n0; nb < n1; nb += S) {
            idx_t cnt = n1 - nb < S ? n1 - nb : S;
            for (idx_t k = 0; k < cnt; k++) {
                idx_t n = nb + k;
                FN(dconv_pack)(a->x + n * g->C * g->H * g->W, xp + k * l->xsize, g, l);
                for (idx_t o = 0; o < g->O; o++) { /* δ̃: rows of W_out values at the padded width */
                    const T *src = a->d + (n * g->O + o) * P;
                    T *dst = dp + k * dstride + o * l->Lv;
                    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    for (idx_t r = 0; r < g->Ho; r++) {
                        const T *s = src + r * g->Wo;
                        T *dd = dst + r * l->Wp;
                        idx_t c = 0;
                        for (; c + 8 <= g->Wo; c += 8)
                            for (int k8 = 0; k8 < 8; k8++) {
                                dd[c + k8] = s[c + k8];
                                lane[k8] += (double)s[c + k8];
                            }
                        for (; c < g->Wo; c++) {
                            dd[c] = s[c];
                            lane[0] += (double)s[c];
                        }
                    }
                    if (db) {
                        double total = 0;
                        for (int k8 = 0; k8 < 8; k8++) total += lane[k8];
                        db[o] += total;
                    }
                }
            }
            a->im->wgrad(xp, l->xsize, dp, dstride, gw, a->shift, a->Kp, a->Op, l->Lv, cnt);
        }
    }
    free(xp);
}

/* gw (O, C·kh·kw) = Σ_n δ_n ⋆ x_n, db (O) = Σ δ when db is not NULL; 0 when out of memory */
static int FN(dconv_wgrad)(const struct dconv_impl *im, const T *x, const T *d, T *gw, T *db,
                           const struct dconv_geom *g) {
    struct dlayout l;
    layout(g, im->VL, &l);
    const idx_t Op = round_up(g->O, im->WO), Kp = round_up(l.K, im->WT);
    const idx_t slots = g->N < LF_DCONV_SLOTS ? (g->N > 0 ? g->N : 1) : LF_DCONV_SLOTS; /* N = 0: sums of 0 */
    T *gwp = calloc((size_t)(slots * Op * Kp), sizeof(T));
    double *dbp = db ? calloc((size_t)(slots * g->O), sizeof(double)) : NULL;
    idx_t *shift = malloc((size_t)Kp * sizeof(idx_t));
    if (!gwp || !shift || (db && !dbp)) {
        free(gwp);
        free(dbp);
        free(shift);
        return 0;
    }
    shifts(g, &l, shift, Kp);
    struct FN(dconv_wgrad_args) a = {im, g, &l, x, d, gwp, dbp, shift, Op, Kp, slots, 0};
    lf_parallel(FN(dconv_wgrad_range), &a, slots, Op * Kp * l.Lv * g->N / slots / 8);
    for (idx_t o = 0; o < g->O; o++) { /* the slots added in order: independent of the threads */
        for (idx_t t = 0; t < l.K; t++) {
            T total = 0;
            for (idx_t s = 0; s < slots; s++) total += gwp[(s * Op + o) * Kp + t];
            gw[o * l.K + t] = total;
        }
        if (db) {
            double total = 0;
            for (idx_t s = 0; s < slots; s++) total += dbp[s * g->O + o];
            db[o] = (T)total;
        }
    }
    free(gwp);
    free(dbp);
    free(shift);
    return !a.failed;
}
