/* Convolution data movement over one float type T (included by conv.c for float and double).
 *
 * Layouts: x is NCHW; the columns are X_col[(c, i, j), (n, a, b)] (row-major, rows ordered by input
 * channel then kernel offset, so a group's rows are one contiguous block); the GEMM's product is
 * P[o, (n, a, b)]. The GEMMs themselves run in NumPy's BLAS. */

struct FN(im2col_args) {
    const T *x;
    T *cols;
    const struct conv_geom *g;
};

/* unit u = (row r, sample n), r = (c·kh + i)·kw + j: writes the H_out·W_out columns of sample n in
 * row r, X_col[r, n, a, b] = x[n, c, s_h·a + d_h·i − p_top, s_w·b + d_w·j − p_left] (0 outside). */
static LF_CLONES void FN(im2col_range)(void *p, idx_t first, idx_t end) {
    struct FN(im2col_args) *a = p;
    const struct conv_geom *g = a->g;
    const idx_t P = g->Ho * g->Wo, kk = g->kh * g->kw;
    for (idx_t u = first; u < end; u++) {
        idx_t r = u / g->N, n = u % g->N;
        idx_t c = r / kk, i = (r / g->kw) % g->kh, j = r % g->kw;
        const T *src = a->x + (n * g->C + c) * g->H * g->W;
        T *dst = a->cols + (r * g->N + n) * P;
        idx_t x0 = j * g->dw - g->pl; /* input column of output column b = 0 */
        idx_t b0 = 0, b1 = g->Wo;     /* output columns whose input column is inside (stride 1) */
        if (g->sw == 1) {
            b0 = x0 < 0 ? -x0 : 0;
            b1 = g->W - x0 < g->Wo ? g->W - x0 : g->Wo;
            if (b1 < b0) b1 = b0;
        }
        if (g->sh == 1 && g->sw == 1 && g->W == g->Wo) {
            /* stride 1, output as wide as the input ("same" padding): the unit is the input plane
             * shifted by s = (d_h·i − p_top)·W + d_w·j − p_left, so ONE copy of the overlapping
             * flat range, then zeros where the shift wrapped around a row edge (columns outside
             * [b0, b1)) or left the plane: a few stores per row instead of one call per row */
            idx_t s = (i * g->dh - g->pt) * g->W + x0, lo = s < 0 ? -s : 0, hi = g->H * g->W - s;
            if (hi > P) hi = P;
            if (hi < lo) hi = lo;
            for (idx_t q = 0; q < lo; q++) dst[q] = 0;
            memcpy(dst + lo, src + lo + s, (size_t)(hi - lo) * sizeof(T));
            for (idx_t q = hi; q < P; q++) dst[q] = 0;
            for (idx_t oa = 0; oa < g->Ho; oa++) {
                T *d = dst + oa * g->Wo;
                for (idx_t b = 0; b < b0; b++) d[b] = 0;
                for (idx_t b = b1; b < g->Wo; b++) d[b] = 0;
            }
            continue;
        }
        for (idx_t oa = 0; oa < g->Ho; oa++) {
            idx_t y = oa * g->sh + i * g->dh - g->pt;
            T *d = dst + oa * g->Wo;
            if (y < 0 || y >= g->H) {
                for (idx_t b = 0; b < g->Wo; b++) d[b] = 0;
                continue;
            }
            const T *row = src + y * g->W;
            if (g->sw == 1) {
                for (idx_t b = 0; b < b0; b++) d[b] = 0;
                memcpy(d + b0, row + x0 + b0, (size_t)(b1 - b0) * sizeof(T));
                for (idx_t b = b1; b < g->Wo; b++) d[b] = 0;
            } else {
                for (idx_t b = 0; b < g->Wo; b++) {
                    idx_t xx = x0 + b * g->sw;
                    d[b] = (xx >= 0 && xx < g->W) ? row[xx] : (T)0;
                }
            }
        }
    }
}

static void FN(im2col)(const T *x, T *cols, const struct conv_geom *g) {
    struct FN(im2col_args) a = {x, cols, g};
    lf_parallel(FN(im2col_range), &a, g->C * g->kh * g->kw * g->N, g->Ho * g->Wo);
}

/* col2im, unit u = image plane (n, c): δx[n, c] = Σ_{i,j} the columns of rows (c, i, j), sample n,
 * added back at the pixels they were read from. Planes are disjoint: no two threads write the
 * same value. */
struct FN(col2im_args) {
    T *cols; /* scratch: col2im may zero entries that add nothing */
    T *dx;
    const struct conv_geom *g;
};

static LF_CLONES void FN(col2im_range)(void *p, idx_t first, idx_t end) {
    struct FN(col2im_args) *a = p;
    const struct conv_geom *g = a->g;
    const idx_t P = g->Ho * g->Wo, HW = g->H * g->W;
    for (idx_t u = first; u < end; u++) {
        idx_t n = u / g->C, c = u % g->C;
        T *plane = a->dx + u * HW;
        for (idx_t q = 0; q < HW; q++) plane[q] = 0;
        for (idx_t i = 0; i < g->kh; i++) {
            for (idx_t j = 0; j < g->kw; j++) {
                idx_t r = (c * g->kh + i) * g->kw + j;
                T *src = a->cols + (r * g->N + n) * P;
                idx_t x0 = j * g->dw - g->pl;
                if (g->sh == 1 && g->sw == 1 && g->W == g->Wo) {
                    /* stride 1, "same" width: as in im2col, one flat shifted add over the plane;
                     * the columns that wrapped around a row edge are first set to 0 in the
                     * column buffer (scratch: the caller's δX_col is not read again) */
                    idx_t b0 = x0 < 0 ? -x0 : 0, b1 = g->W - x0 < g->Wo ? g->W - x0 : g->Wo;
                    for (idx_t oa = 0; oa < g->Ho; oa++) {
                        T *srow = src + oa * g->Wo;
                        for (idx_t b = 0; b < b0; b++) srow[b] = 0;
                        for (idx_t b = b1; b < g->Wo; b++) srow[b] = 0;
                    }
                    idx_t sh = (i * g->dh - g->pt) * g->W + x0, lo = sh < 0 ? -sh : 0, hi = HW - sh;
                    if (hi > P) hi = P;
                    T *dd = plane + sh;
                    for (idx_t q = lo; q < hi; q++) dd[q] += src[q];
                    continue;
                }
                for (idx_t oa = 0; oa < g->Ho; oa++) {
                    idx_t y = oa * g->sh + i * g->dh - g->pt;
                    if (y < 0 || y >= g->H) continue;
                    T *drow = plane + y * g->W;
                    const T *s = src + oa * g->Wo;
                    if (g->sw == 1) {
                        idx_t b0 = x0 < 0 ? -x0 : 0;
                        idx_t b1 = g->W - x0 < g->Wo ? g->W - x0 : g->Wo;
                        T *dd = drow + x0;
                        for (idx_t b = b0; b < b1; b++) dd[b] += s[b];
                    } else {
                        for (idx_t b = 0; b < g->Wo; b++) {
                            idx_t xx = x0 + b * g->sw;
                            if (xx >= 0 && xx < g->W) drow[xx] += s[b];
                        }
                    }
                }
            }
        }
    }
}

static void FN(col2im)(T *cols, T *dx, const struct conv_geom *g) {
    struct FN(col2im_args) a = {cols, dx, g};
    lf_parallel(FN(col2im_range), &a, g->N * g->C, g->kh * g->kw * g->Ho * g->Wo);
}

/* out[n, o, p] = P[o, n·L + p] + bias[o] (bias may be NULL), then max(·, 0) when relu is set;
 * unit = sample n. */
struct FN(bias_nchw_args) {
    const T *prod, *bias;
    T *out;
    idx_t O, N, L;
    int relu;
};

static LF_CLONES void FN(bias_nchw_range)(void *p, idx_t first, idx_t end) {
    struct FN(bias_nchw_args) *a = p;
    for (idx_t n = first; n < end; n++) {
        for (idx_t o = 0; o < a->O; o++) {
            const T *s = a->prod + (o * a->N + n) * a->L;
            T *d = a->out + (n * a->O + o) * a->L;
            T b = a->bias ? a->bias[o] : (T)0;
            if (a->relu) {
                for (idx_t q = 0; q < a->L; q++) {
                    T v = s[q] + b;
                    d[q] = v < 0 ? (T)0 : v;
                }
            } else {
                for (idx_t q = 0; q < a->L; q++) d[q] = s[q] + b;
            }
        }
    }
}

static void FN(bias_nchw)(const T *prod, const T *bias, T *out, idx_t O, idx_t N, idx_t L, int relu) {
    struct FN(bias_nchw_args) a = {prod, bias, out, O, N, L, relu};
    lf_parallel(FN(bias_nchw_range), &a, N, O * L);
}

/* dmat[o, n·L + p] = δ[n, o, p] and, when db is given, db[o] = Σ_{n,p} δ[n, o, p]; unit = channel
 * o. The sum runs in 8 double lanes (vectorised, and more accurate than a float running sum). */
struct FN(nchw_mat_args) {
    const T *d;
    T *mat, *db;
    idx_t O, N, L;
};

static LF_CLONES void FN(nchw_mat_range)(void *p, idx_t first, idx_t end) {
    struct FN(nchw_mat_args) *a = p;
    for (idx_t o = first; o < end; o++) {
        double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (idx_t n = 0; n < a->N; n++) {
            const T *s = a->d + (n * a->O + o) * a->L;
            T *dst = a->mat + (o * a->N + n) * a->L;
            idx_t q = 0;
            for (; q + 8 <= a->L; q += 8)
                for (int k = 0; k < 8; k++) {
                    dst[q + k] = s[q + k];
                    lane[k] += (double)s[q + k];
                }
            for (; q < a->L; q++) {
                dst[q] = s[q];
                lane[0] += (double)s[q];
            }
        }
        if (a->db) {
            double total = 0;
            for (int k = 0; k < 8; k++) total += lane[k];
            a->db[o] = (T)total;
        }
    }
}

static void FN(nchw_mat)(const T *d, T *mat, T *db, idx_t O, idx_t N, idx_t L) {
    struct FN(nchw_mat_args) a = {d, mat, db, O, N, L};
    lf_parallel(FN(nchw_mat_range), &a, O, N * L);
}
