/* Max pooling over one float type T (included by pool.c). The window offset that won,
 * k = i·kw + j, is kept per output (uint8 when kh·kw ≤ 255, else int32): the same routing format
 * as the NumPy reference, so either kernel set can run the backward pass of the other's forward.
 * The border is −∞ (skipped); on ties the first maximum in row-major order wins (strict >), and a
 * NaN in a window makes its output NaN, as np.maximum does. Unit = one (n, c) image plane.
 *
 * The loops are branch-free (selects) and run along an output row, so that the compiler can
 * vectorise them: a data-dependent branch per pixel (random maxima) costs a misprediction every
 * other pixel, measured 5× slower on 2×2 windows. Pointers are restrict: a uint8 index store
 * would otherwise force the compiler to assume it may alias the float data. */

struct FN(maxpool_args) {
    const T *x;
    T *out;
    void *idx; /* NULL in inference */
    int idx32;
    const struct pool_geom *g;
};

/* 2×2 windows, stride 2, every pixel inside: one output row from two input rows */
static inline void FN(pool2_row)(const T *restrict r0, const T *restrict r1, T *restrict o,
                                 unsigned char *restrict k8, idx_t Wo) {
    for (idx_t b = 0; b < Wo; b++) {
        T v0 = r0[2 * b], v1 = r0[2 * b + 1], v2 = r1[2 * b], v3 = r1[2 * b + 1];
        /* winner by masks (k ^= (k ^ t) & −[v_t > m]): selects the compiler cannot turn back
         * into branches */
        T m = v0;
        int k = 0, c;
        c = v1 > m; m = c ? v1 : m; k ^= (k ^ 1) & -c;
        c = v2 > m; m = c ? v2 : m; k ^= (k ^ 2) & -c;
        c = v3 > m; m = c ? v3 : m; k ^= (k ^ 3) & -c;
        /* a NaN anywhere makes the output NaN (np.maximum propagates it) */
        int ok = (v0 == v0) & (v1 == v1) & (v2 == v2) & (v3 == v3);
        o[b] = ok ? m : v0 + v1 + v2 + v3;
        k8[b] = (unsigned char)k;
    }
}

/* any window: one output row, tap by tap (the running maximum of each output of the row in m) */
static inline void FN(pool_row)(const T *restrict src, T *restrict o, int *restrict best, T *restrict m,
                                unsigned char *restrict nan, const struct pool_geom *g, idx_t oa) {
    for (idx_t b = 0; b < g->Wo; b++) { m[b] = -(T)__builtin_inf(); best[b] = 0; nan[b] = 0; }
    for (idx_t i = 0; i < g->kh; i++) {
        idx_t y = oa * g->sh + i - g->ph;
        if (y < 0 || y >= g->H) continue;
        const T *restrict row = src + y * g->W;
        for (idx_t j = 0; j < g->kw; j++) {
            /* outputs b whose pixel x = s_w·b + j − p_w is inside the row */
            idx_t off = j - g->pw, b0 = 0, b1 = g->Wo;
            while (b0 < b1 && b0 * g->sw + off < 0) b0++;
            while (b1 > b0 && (b1 - 1) * g->sw + off >= g->W) b1--;
            int k = (int)(i * g->kw + j);
            for (idx_t b = b0; b < b1; b++) {
                T v = row[b * g->sw + off];
                int c = v > m[b];
                m[b] = c ? v : m[b];
                best[b] = c ? k : best[b];
                nan[b] |= v != v;
            }
        }
    }
    for (idx_t b = 0; b < g->Wo; b++) o[b] = nan[b] ? (T)__builtin_nan("") : m[b];
}

static LF_CLONES void FN(maxpool_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(maxpool_args) *a = p;
    const struct pool_geom *g = a->g;
    const idx_t HW = g->H * g->W, P = g->Ho * g->Wo;
    const int tiled2 = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
                       2 * g->Ho <= g->H && 2 * g->Wo <= g->W;
    /* row scratch of the general path: running maxima, winners, NaN flags */
    T *m = NULL;
    int *best = NULL;
    unsigned char *nan = NULL, *rowk = malloc((size_t)g->Wo);
    if (!rowk) return;
    if (!tiled2) {
        m = malloc((size_t)g->Wo * sizeof(T));
        best = malloc((size_t)g->Wo * sizeof(int));
        nan = malloc((size_t)g->Wo);
        if (!m || !best || !nan) { free(m); free(best); free(nan); return; } /* checked by caller */
    }
    for (idx_t u = first; u < end; u++) {
        const T *src = a->x + u * HW;
        T *o = a->out + u * P;
        unsigned char *i8 = a->idx && !a->idx32 ? (unsigned char *)a->idx + u * P : NULL;
        int *i32 = a->idx && a->idx32 ? (int *)a->idx + u * P : NULL;
        for (idx_t oa = 0; oa < g->Ho; oa++) {
            unsigned char *k8 = i8 ? i8 + oa * g->Wo : NULL;
            int *k32 = i32 ? i32 + oa * g->Wo : NULL;
            if (tiled2) { /* the index goes to k8 (or a row of scratch when not kept) */
                const T *r0 = src + 2 * oa * g->W;
                FN(pool2_row)(r0, r0 + g->W, o + oa * g->Wo, k8 ? k8 : rowk, g->Wo);
                if (k32) for (idx_t b = 0; b < g->Wo; b++) k32[b] = rowk[b];
                continue;
            }
            FN(pool_row)(src, o + oa * g->Wo, best, m, nan, g, oa);
            if (k8) for (idx_t b = 0; b < g->Wo; b++) k8[b] = (unsigned char)best[b];
            if (k32) for (idx_t b = 0; b < g->Wo; b++) k32[b] = best[b];
        }
    }
    free(m);
    free(best);
    free(nan);
    free(rowk);
}

/* 2×2 tiles: each input of the two rows written once (δ where it won, 0 elsewhere), no zeroing */
static inline void FN(unpool2_row)(const T *restrict d, const unsigned char *restrict k8, T *restrict r0,
                                   T *restrict r1, idx_t Wo) {
    for (idx_t b = 0; b < Wo; b++) { /* δ where the offset won, 0 elsewhere (selects: vectorised) */
        unsigned k = k8[b];
        T v = d[b];
        r0[2 * b] = k == 0 ? v : (T)0;
        r0[2 * b + 1] = k == 1 ? v : (T)0;
        r1[2 * b] = k == 2 ? v : (T)0;
        r1[2 * b + 1] = k == 3 ? v : (T)0;
    }
}

/* δx[n, c, s_h·a + i*, s_w·b + j*] += δ[n, c, a, b] with (i*, j*) the window's winner. */
static LF_CLONES void FN(maxpool_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(maxpool_args) *a = p; /* x = δ (Ho·Wo per plane), out = δx (H·W per plane) */
    const struct pool_geom *g = a->g;
    const idx_t HW = g->H * g->W, P = g->Ho * g->Wo;
    const int tiled2 = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
                       g->H == 2 * g->Ho && g->W == 2 * g->Wo;
    for (idx_t u = first; u < end; u++) {
        const T *d = a->x + u * P;
        T *dx = a->out + u * HW;
        const unsigned char *i8 = !a->idx32 ? (const unsigned char *)a->idx + u * P : NULL;
        const int *i32 = a->idx32 ? (const int *)a->idx + u * P : NULL;
        if (tiled2 && i8) {
            for (idx_t oa = 0; oa < g->Ho; oa++) {
                T *r0 = dx + 2 * oa * g->W;
                FN(unpool2_row)(d + oa * g->Wo, i8 + oa * g->Wo, r0, r0 + g->W, g->Wo);
            }
            continue;
        }
        for (idx_t q = 0; q < HW; q++) dx[q] = 0;
        for (idx_t oa = 0; oa < g->Ho; oa++) {
            for (idx_t b = 0; b < g->Wo; b++) {
                idx_t k = i8 ? i8[oa * g->Wo + b] : i32[oa * g->Wo + b];
                idx_t y = oa * g->sh + k / g->kw - g->ph, xx = b * g->sw + k % g->kw - g->pw;
                if (y >= 0 && y < g->H && xx >= 0 && xx < g->W) dx[y * g->W + xx] += d[oa * g->Wo + b];
            }
        }
    }
}
