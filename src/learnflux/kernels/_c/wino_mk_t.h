/* The register-blocked micro-kernel of both Winograd passes, over one instruction set: included by
 * wino_t.h (the forward: M[ξ] = U[ξ]·V[ξ]) and winowg_t.h (the weight gradient:
 * U[ξ] += Σ_t D[ξ][t]·V[ξ][t]) after their V_T, LD, ST, FN, TGT, VL, MR and NV.
 *
 *   out[r·so + k·VL + ·] (+)= Σ_{i < n} a[i·sa + r] · b[i·sb + k·VL + ·],   r < MR, k < NV
 *
 * (added to out when `add`, else written) in MR·NV vector accumulators: each loaded vector of b
 * feeds MR multiply-adds with broadcast values of a. Inlined at both call sites, so the forward's
 * constant strides stay compile-time constants. */
static TGT inline void FN(wino_mk)(const float *restrict b, idx_t sb, const float *restrict a, idx_t sa,
                                   float *restrict out, idx_t so, idx_t n, int add) {
    V_T s[MR][NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int k = 0; k < NV; k++) s[r][k] = add ? LD(out + r * so + k * VL) : (V_T){0};
    for (idx_t i = 0; i < n; i++) {
        V_T xv[NV];
#pragma GCC unroll 8
        for (int k = 0; k < NV; k++) xv[k] = LD(b + i * sb + k * VL);
        const float *ai = a + i * sa;
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) s[r][k] += ai[r] * xv[k];
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int k = 0; k < NV; k++) ST(out + r * so + k * VL, s[r][k]);
}
