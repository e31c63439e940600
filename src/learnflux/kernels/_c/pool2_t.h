/* The plane loops of 2×2 / stride 2 max pooling for one float type T and one instruction set
 * (included by pool2.c with T, SFX and TGT defined, after the row kernels fwd_row_SFX and
 * bwd_row_SFX; with ROWS2 defined, also fwd_rows2_SFX / bwd_rows2_SFX, which take two output rows
 * per vector of ROWS2 lanes when 2·Wo ≤ ROWS2). Plane u of the input is H×W, of the output Ho×Wo
 * (Ho = ⌊H/2⌋, Wo = ⌊W/2⌋): output row a reads input rows 2a and 2a + 1. */

/* planes [first, end): the output and, when k is not NULL, the winning offsets */
static TGT void CAT(pool2_fwd_planes_, SFX)(const void *xv, void *outv, unsigned char *k, const struct pool_geom *g,
                                            idx_t first, idx_t end) {
    const T *x = xv;
    T *out = outv;
    const idx_t W = g->W, Ho = g->Ho, Wo = g->Wo, HW = g->H * W, P = Ho * Wo;
    for (idx_t u = first; u < end; u++) {
        const T *plane = x + u * HW;
        idx_t a = 0;
#ifdef ROWS2
        if (2 * Wo <= ROWS2)
            for (; a + 2 <= Ho; a += 2)
                CAT(fwd_rows2_, SFX)(plane + 2 * a * W, W, out + u * P + a * Wo, k ? k + u * P + a * Wo : NULL, Wo);
#endif
        for (; a < Ho; a++) {
            const T *r0 = plane + 2 * a * W;
            CAT(fwd_row_, SFX)(r0, r0 + W, out + u * P + a * Wo, k ? k + u * P + a * Wo : NULL, Wo);
        }
    }
}

/* planes [first, end) of δx, each pixel written once: δ at the winner, 0 at the three others,
 * and 0 in the last row / column that floor mode leaves out (odd H or W). The row kernels may
 * read offsets past their row (up to `total − q` bytes remain in the array from output q). With
 * a ReLU mask m (bool, δx's shape; NULL: none) the row kernels multiply each vector by its mask
 * bytes before the store (the ReLU's backward folded into this write; the left-out last row /
 * column stays 0 = 0·m). They may read mask bytes past a row too, never past `mend`. */
static TGT void CAT(pool2_bwd_planes_, SFX)(const void *dv, const unsigned char *k, const unsigned char *m,
                                            void *dxv, const struct pool_geom *g, idx_t first, idx_t end) {
    const T *d = dv;
    T *dx = dxv;
    const idx_t W = g->W, Ho = g->Ho, Wo = g->Wo, HW = g->H * W, P = Ho * Wo, total = g->planes * P;
    const unsigned char *mend = m ? m + g->planes * HW : NULL; /* the mask array's end */
    for (idx_t u = first; u < end; u++) {
        T *plane = dx + u * HW;
        const unsigned char *mp = m ? m + u * HW : NULL;
        idx_t a = 0;
#ifdef ROWS2
        if (2 * Wo <= ROWS2)
            for (; a + 2 <= Ho; a += 2) {
                const idx_t q = u * P + a * Wo; /* the pair's first output */
                const unsigned char *m0 = mp ? mp + 2 * a * W : NULL;
                CAT(bwd_rows2_, SFX)(d + q, k + q, total - q, plane + 2 * a * W, W, Wo, m0, mend);
            }
#endif
        for (; a < Ho; a++) {
            const idx_t q = u * P + a * Wo; /* the row's first output */
            T *r0 = plane + 2 * a * W;
            const unsigned char *m0 = mp ? mp + 2 * a * W : NULL;
            CAT(bwd_row_, SFX)(d + q, k + q, total - q, r0, r0 + W, Wo, m0, m0 ? m0 + W : NULL, mend);
        }
        if (W > 2 * Wo)
            for (idx_t y = 0; y < 2 * Ho; y++) plane[y * W + W - 1] = 0;
        for (idx_t q = 2 * Ho * W; q < HW; q++) plane[q] = 0;
    }
}
