/* Max pooling over one float type T (included by pool.c). The window offset that won,
 * k = i·kw + j, is kept per output (uint8 when kh·kw ≤ 255, else int32): the same routing format
 * as the NumPy reference, so either kernel set can run the backward pass of the other's forward.
 * The border is −∞ (skipped); on ties the first maximum in row-major order wins (strict >), and a
 * NaN in a window makes its output NaN and keeps the winner of the offsets before it (nothing is >
 * NaN), as the NumPy set's np.maximum and `view > out` passes do. Unit = one (n, c) image plane.
 * MaxPool2d(2)'s 2×2 / stride 2 windows do not come here: pool2.c runs them.
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

/* outputs [b0, b1) of a row take tap k from row[s_w·b + off] (c = [v > m] moves the winner, a NaN
 * v sticks in m); SW is a compile-time stride where it can be (1, 2), so that the loop vectorises
 * with plain or de-interleaving loads instead of gathers */
#define FN_TAP(SW)                                                                                 \
    for (idx_t b = b0; b < b1; b++) {                                                              \
        T v = row[b * (SW) + off];                                                                 \
        int c = v > m[b];                                                                          \
        m[b] = (c | (v != v)) ? v : m[b];                                                          \
        best[b] = c ? k : best[b];                                                                 \
    }

/* any window: one output row, tap by tap (the running maximum of each output of the row in m) */
static inline void FN(pool_row)(const T *restrict src, T *restrict o, int *restrict best, T *restrict m,
                                const struct pool_geom *g, idx_t oa) {
    for (idx_t b = 0; b < g->Wo; b++) { m[b] = -(T)__builtin_inf(); best[b] = 0; }
    const idx_t sw = g->sw;
    for (idx_t i = 0; i < g->kh; i++) {
        idx_t y = oa * g->sh + i - g->ph;
        if (y < 0 || y >= g->H) continue;
        const T *restrict row = src + y * g->W;
        for (idx_t j = 0; j < g->kw; j++) {
            /* outputs b whose pixel x = s_w·b + j − p_w is inside the row */
            idx_t off = j - g->pw, b0 = 0, b1 = g->Wo;
            while (b0 < b1 && b0 * sw + off < 0) b0++;
            while (b1 > b0 && (b1 - 1) * sw + off >= g->W) b1--;
            int k = (int)(i * g->kw + j);
            if (sw == 1) { FN_TAP(1) }
            else if (sw == 2) { FN_TAP(2) }
            else { FN_TAP(sw) }
        }
    }
    for (idx_t b = 0; b < g->Wo; b++) o[b] = m[b];
}
#undef FN_TAP

static LF_CLONES void FN(maxpool_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(maxpool_args) *a = p;
    const struct pool_geom *g = a->g;
    const idx_t HW = g->H * g->W, P = g->Ho * g->Wo;
    /* row scratch: running maxima, winners */
    T *m = malloc((size_t)g->Wo * sizeof(T));
    int *best = malloc((size_t)g->Wo * sizeof(int));
    if (!m || !best) { free(m); free(best); return; } /* checked by caller */
    for (idx_t u = first; u < end; u++) {
        const T *src = a->x + u * HW;
        T *o = a->out + u * P;
        unsigned char *i8 = a->idx && !a->idx32 ? (unsigned char *)a->idx + u * P : NULL;
        int *i32 = a->idx && a->idx32 ? (int *)a->idx + u * P : NULL;
        for (idx_t oa = 0; oa < g->Ho; oa++) {
            FN(pool_row)(src, o + oa * g->Wo, best, m, g, oa);
            if (i8) for (idx_t b = 0; b < g->Wo; b++) i8[oa * g->Wo + b] = (unsigned char)best[b];
            if (i32) for (idx_t b = 0; b < g->Wo; b++) i32[oa * g->Wo + b] = best[b];
        }
    }
    free(m);
    free(best);
}

/* δx[n, c, s_h·a + i*, s_w·b + j*] += δ[n, c, a, b] with (i*, j*) the window's winner: δx zeroed,
 * then each output's δ added at its winner (the offset k → (i*, j*) from a table: no division per
 * output). */
static LF_CLONES void FN(maxpool_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(maxpool_args) *a = p; /* x = δ (Ho·Wo per plane), out = δx (H·W per plane) */
    const struct pool_geom *g = a->g;
    const idx_t HW = g->H * g->W, P = g->Ho * g->Wo, K = g->kh * g->kw;
    idx_t *ki = malloc((size_t)K * 2 * sizeof(idx_t)), *kj = ki + K;
    if (!ki) return; /* checked by caller */
    for (idx_t k = 0; k < K; k++) { ki[k] = k / g->kw - g->ph; kj[k] = k % g->kw - g->pw; }
    for (idx_t u = first; u < end; u++) {
        const T *d = a->x + u * P;
        T *dx = a->out + u * HW;
        const unsigned char *i8 = !a->idx32 ? (const unsigned char *)a->idx + u * P : NULL;
        const int *i32 = a->idx32 ? (const int *)a->idx + u * P : NULL;
        memset(dx, 0, (size_t)HW * sizeof(T));
        for (idx_t oa = 0; oa < g->Ho; oa++) {
            for (idx_t b = 0; b < g->Wo; b++) {
                idx_t k = i8 ? i8[oa * g->Wo + b] : i32[oa * g->Wo + b];
                idx_t y = oa * g->sh + ki[k], xx = b * g->sw + kj[k];
                if (y >= 0 && y < g->H && xx >= 0 && xx < g->W) dx[y * g->W + xx] += d[oa * g->Wo + b];
            }
        }
    }
    free(ki);
}
