/* Max pooling over one float type T (included by pool.c). The window offset that won,
 * k = i·kw + j, is kept per output (uint8 when kh·kw ≤ 255, else int32): the same routing format
 * as the NumPy reference, so either kernel set can run the backward pass of the other's forward.
 * The border is −∞ (skipped); on ties the first maximum in row-major order wins (strict >), and a
 * NaN in a window makes its output NaN, as np.maximum does. Unit = one (n, c) image plane. */

struct FN(maxpool_args) {
    const T *x;
    T *out;
    void *idx; /* NULL in inference */
    int idx32;
    const struct pool_geom *g;
};

static LF_CLONES void FN(maxpool_fwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(maxpool_args) *a = p;
    const struct pool_geom *g = a->g;
    const idx_t HW = g->H * g->W, P = g->Ho * g->Wo;
    const int tiled2 = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
                       2 * g->Ho <= g->H && 2 * g->Wo <= g->W;
    for (idx_t u = first; u < end; u++) {
        const T *src = a->x + u * HW;
        T *o = a->out + u * P;
        unsigned char *i8 = a->idx && !a->idx32 ? (unsigned char *)a->idx + u * P : NULL;
        int *i32 = a->idx && a->idx32 ? (int *)a->idx + u * P : NULL;
        if (tiled2) { /* the common 2×2 / stride 2 windows, every pixel inside */
            for (idx_t oa = 0; oa < g->Ho; oa++) {
                const T *r0 = src + 2 * oa * g->W, *r1 = r0 + g->W;
                T *orow = o + oa * g->Wo;
                unsigned char *irow = i8 ? i8 + oa * g->Wo : NULL;
                for (idx_t b = 0; b < g->Wo; b++) {
                    T v0 = r0[2 * b], v1 = r0[2 * b + 1], v2 = r1[2 * b], v3 = r1[2 * b + 1];
                    T m = v0;
                    unsigned char k = 0;
                    if (v1 > m) { m = v1; k = 1; }
                    if (v2 > m) { m = v2; k = 2; }
                    if (v3 > m) { m = v3; k = 3; }
                    if (v0 != v0 || v1 != v1 || v2 != v2 || v3 != v3) m = v0 + v1 + v2 + v3;
                    orow[b] = m;
                    if (irow) irow[b] = k;
                    else if (i32) i32[oa * g->Wo + b] = k;
                }
            }
            continue;
        }
        for (idx_t oa = 0; oa < g->Ho; oa++) {
            for (idx_t b = 0; b < g->Wo; b++) {
                T m = -(T)__builtin_inf();
                int best = 0, nan = 0;
                for (idx_t i = 0; i < g->kh; i++) {
                    idx_t y = oa * g->sh + i - g->ph;
                    if (y < 0 || y >= g->H) continue;
                    for (idx_t j = 0; j < g->kw; j++) {
                        idx_t xx = b * g->sw + j - g->pw;
                        if (xx < 0 || xx >= g->W) continue;
                        T v = src[y * g->W + xx];
                        if (v > m) { m = v; best = (int)(i * g->kw + j); }
                        else if (v != v) nan = 1;
                    }
                }
                o[oa * g->Wo + b] = nan ? (T)__builtin_nan("") : m;
                if (i8) i8[oa * g->Wo + b] = (unsigned char)best;
                else if (i32) i32[oa * g->Wo + b] = best;
            }
        }
    }
}

/* δx[n, c, s_h·a + i*, s_w·b + j*] += δ[n, c, a, b] with (i*, j*) the window's winner. */
static LF_CLONES void FN(maxpool_bwd_range)(void *p, idx_t first, idx_t end) {
    struct FN(maxpool_args) *a = p; /* x = δ (Ho·Wo per plane), out = δx (H·W per plane) */
    const struct pool_geom *g = a->g;
    const idx_t HW = g->H * g->W, P = g->Ho * g->Wo;
    for (idx_t u = first; u < end; u++) {
        const T *d = a->x + u * P;
        T *dx = a->out + u * HW;
        const unsigned char *i8 = !a->idx32 ? (const unsigned char *)a->idx + u * P : NULL;
        const int *i32 = a->idx32 ? (const int *)a->idx + u * P : NULL;
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
