/* Winograd F(2×2, 3×3) weight gradient (Lavin & Gray 2016), the companion of wino.c's forward:
 * 3×3 kernel, stride 1, dilation 1, one group, padding 1 on every side, float32.
 *
 * The forward pass computes each 2×2 output tile as Y = Aᵀ M A with M = (G g Gᵀ) ⊙ (Bᵀ d B)
 * (wino.c has the matrices). Back through each step, for one tile:
 *   ∂L/∂M = A δY Aᵀ,   ∂L/∂(G g Gᵀ) = (A δY Aᵀ) ⊙ (Bᵀ d B),   ∂L/∂g = Gᵀ (∂L/∂(G g Gᵀ)) G,
 * and summed over the tiles (the forward's tiles: 4×4 input windows at stride 2 over the padded
 * input, δY the 2×2 δ tile, zero past an odd map's edge):
 *
 *   U[ξ][o][c] = Σ_tiles (A δ_t Aᵀ)[ξ][o] · (Bᵀ d_t B)[ξ][c]    16 products (O × tiles)·(tiles × C)
 *   δW[o][c]   = Gᵀ U[o][c] G                                  (4×4 → 3×3, in double)
 *   δb[o]      = Σ_tiles (A δ_t Aᵀ)[1][1][o]                   (= Σ δ: A's row 1 is (1, 1))
 *
 *   A = | 1  0 |   with Aᵀ = | 1  1  1  0 |,  Bᵀ and G as in wino.c
 *       | 1  1 |             | 0  1 −1 −1 |
 *       | 1 −1 |
 *       | 0 −1 |
 *
 * 16 multiply-adds per tile and channel pair instead of the direct gradient's 36.
 *
 * Blocking (winowg_t.h): the tiles of the batch in (n, ty, tx) order are cut into blocks of BT
 * tiles; the blocks into LF_WG_SLOTS fixed slots (contiguous runs), which lf_parallel shares out
 * between the threads. Per block, one thread transforms the input and δ tiles into V (16·BT·Cp)
 * and D (16·BT·Op) that stay in L2 and adds the 16 products into its float U (16·Op·Cp). Every
 * ~LF_WG_FLUSH tiles U is added into a double accumulator and cleared, so no float sum runs over
 * more than a few hundred tiles; at the end of a slot its δW and δb go out in double and the
 * slots are added in their fixed order: the result does not depend on the thread count.
 *
 * Accuracy: against a float64 gradient, on VGG's layers, see docs/performance.md ("Winograd
 * convolution"): the transforms add at most 4 terms each way, the float sums are short. */
#include <stdlib.h>
#include "lfk.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define CAT3(a, b, c) CAT(CAT(a, b), c)
#define STR_(a) #a
#define STR(a) STR_(a)

/* slots of blocks (fixed: the sum order does not depend on the threads): at most LF_WG_SLOTS,
 * at least about LF_WG_SLOT_TILES tiles each */
#define LF_WG_SLOTS 8
#define LF_WG_SLOT_TILES 512
/* float partial sums cover about this many tiles before they go into the double accumulator */
#define LF_WG_FLUSH 256
/* V and D of one block at most about this many bytes: they stay in L2 */
#define LF_WG_BLOCK_BYTES ((idx_t)1 << 19)

struct wg_args {
    const struct dconv_geom *g;
    const float *x, *d;
    double *gwp, *dbp; /* per slot: δW (3, 3, O, C) and δb (O) */
    idx_t Cp, Op, BT, blocks, slots;
    int failed;
};

struct wg_impl {
    lf_range_fn range;
    int MR, CB;
    const char *name;
};

#ifdef LF_X86_ISAS /* lfk.h: the same condition lf_isa_level reads */
#define LF_X86_KERNELS 1
#define TGT __attribute__((target("avx512f,avx2,fma")))
#define VB 64
#define MR 8
#define NV 2
#define SFX avx512
#include "winowg_t.h"
#undef TGT
#undef VB
#undef MR
#undef NV
#undef SFX

#define TGT __attribute__((target("avx2,fma")))
#define VB 32
#define MR 6
#define NV 2
#define SFX avx2
#include "winowg_t.h"
#undef TGT
#undef VB
#undef MR
#undef NV
#undef SFX
#endif

#define TGT
#define VB 16
#define MR 4
#define NV 2
#define SFX base
#include "winowg_t.h"
#undef TGT
#undef VB
#undef MR
#undef NV
#undef SFX

static const struct wg_impl *impl = NULL;

/* the micro-kernels for `want` ("auto", "avx512", "avx2", "baseline"), as lf_wino_isa */
const char *lf_winowg_isa(const char *want) {
    int level = lf_isa_level(want, 1);
    switch (level) {
#ifdef LF_X86_KERNELS
    case LF_ISA_AVX512: impl = &wg_impl_avx512; break;
    case LF_ISA_AVX2: impl = &wg_impl_avx2; break;
#endif
    case LF_ISA_BASE: impl = &wg_impl_base; break;
    default: return NULL;
    }
    return lf_isa_name(level);
}

static idx_t round_up(idx_t v, idx_t m) { return (v + m - 1) / m * m; }

/* gw (O, C, 3, 3) = ∂L/∂W and db (O) = Σ δ (when db is not NULL) of the 3×3, stride-1, padding-1
 * convolution x (N, C, H, W) → δ (N, O, H, W). Returns 0 when out of memory, −1 when the geometry
 * is not one it computes (or has no input channels). */
int lf_wino_wgrad(const float *x, const float *d, float *gw, float *db, const struct dconv_geom *g) {
    if (g->kh != 3 || g->kw != 3 || g->dh != 1 || g->dw != 1 || g->pt != 1 || g->pl != 1 || g->Ho != g->H ||
        g->Wo != g->W || g->C <= 0)
        return -1;
    if (!impl) lf_winowg_isa("auto");
    const idx_t C = g->C, O = g->O;
    if (O <= 0) return 1;
    const idx_t tiles = g->N * ((g->H + 1) / 2) * ((g->W + 1) / 2);
    if (tiles <= 0) { /* no input: zero gradients */
        memset(gw, 0, (size_t)(O * C * 9) * sizeof(float));
        if (db) memset(db, 0, (size_t)O * sizeof(float));
        return 1;
    }
    const idx_t Cp = round_up(C, impl->CB), Op = round_up(O, impl->MR);
    idx_t BT = LF_WG_BLOCK_BYTES / (64 * (Cp + Op));
    BT = BT < 16 ? 16 : (BT > 128 ? 128 : BT);
    const idx_t blocks = (tiles + BT - 1) / BT;
    idx_t slots = tiles / LF_WG_SLOT_TILES; /* each slot's own δW costs ~100 flops per (o, c) */
    slots = slots < 1 ? 1 : (slots > LF_WG_SLOTS ? LF_WG_SLOTS : (slots > blocks ? blocks : slots));
    double *gwp = malloc((size_t)(slots * (O * C * 9 + O)) * sizeof(double));
    if (!gwp) return 0;
    struct wg_args a = {g, x, d, gwp, gwp + slots * O * C * 9, Cp, Op, BT, blocks, slots, 0};
    lf_parallel(impl->range, &a, slots, tiles / slots * 16 * Op * Cp / 8);
    if (!a.failed) { /* the slots added in order into slot 0, then [3i + j][o][c] → gw [o][c][3i + j] */
        for (idx_t sl = 1; sl < slots; sl++)
            for (idx_t k = 0; k < 9 * O * C; k++) gwp[k] += gwp[sl * 9 * O * C + k];
        for (idx_t k = 0; k < O * C; k++)
            for (int ij = 0; ij < 9; ij++) gw[k * 9 + ij] = (float)gwp[ij * O * C + k];
        if (db)
            for (idx_t o = 0; o < O; o++) {
                double s = 0;
                for (idx_t sl = 0; sl < slots; sl++) s += a.dbp[sl * O + o];
                db[o] = (float)s;
            }
    }
    free(gwp);
    return !a.failed;
}
