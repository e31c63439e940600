/* 2×2 max pooling at stride 2 without padding (MaxPool2d(2), floor mode), the common case:
 * forward with the winning offset, backward as one dense write of δx, in explicit SIMD.
 *
 * Output (a, b) of a plane is the maximum of the window
 *
 *     v0 = x[2a, 2b]    v1 = x[2a, 2b + 1]
 *     v2 = x[2a + 1, 2b] v3 = x[2a + 1, 2b + 1]
 *
 * and its winner the offset k = 2i + j (uint8: the NumPy set's format, so either kernel set runs
 * the backward pass of the other's forward). The offsets are tried in that order with a strict >,
 * so on ties the first in row-major order wins; a NaN makes the running maximum NaN and stops the
 * winner there, as the NumPy set's np.maximum / `view > out` passes do (the output is NaN, the
 * winner the best offset before the first NaN). Backward: δx[2a + i, 2b + j] = δ[a, b] where k =
 * 2i + j, 0 at the three other pixels and at the last row / column an odd size leaves out: every
 * pixel is written once, nothing is zeroed first.
 *
 * One vector step handles one output row's 16 (float32) or 8 (float64) outputs: the two input
 * rows are loaded as contiguous runs and split into even/odd columns by a permute (forward), or
 * δ and the offsets are duplicated pairwise and compared with the per-column offset (backward).
 * The rows of LeNet's maps are short (14 or 7 outputs), so the last, partial step is masked
 * (AVX-512) or done with masked loads/stores (AVX2) rather than left to a scalar tail (the
 * auto-vectorised loop this replaces, 16 lanes wide, ran LeNet's 64×16×28×28 in 0.55–0.6 ms per
 * pass; these kernels take about 0.1), and rows of at most half a vector (LeNet's 7, VGG's 8 and
 * 4 outputs) go two to a vector with AVX-512. The cost is per vector step (about 6 ns, the
 * permutes and compares), not per byte, so filling the lanes is what counts.
 *
 * Row kernels exist for AVX-512, AVX2 and a portable baseline (plain C, branch-free selects),
 * chosen once at run time by __builtin_cpu_supports as dconv.c does (no -march=native). The work
 * is split over image planes with lf_parallel. */
#include <stdlib.h>
#include "lfk.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* ---------------------------------------------------------------- portable baseline */
#define POOL2_SCALAR(T, SFX)                                                                       \
    static void fwd_row_##SFX(const T *restrict r0, const T *restrict r1, T *restrict o,           \
                              unsigned char *restrict k8, idx_t Wo) {                              \
        for (idx_t b = 0; b < Wo; b++) {                                                           \
            T v0 = r0[2 * b], v1 = r0[2 * b + 1], v2 = r1[2 * b], v3 = r1[2 * b + 1], m = v0;      \
            int k = 0, c;                                                                          \
            /* c = [v > m] moves the winner; m also takes a NaN v (then nothing is > m) */         \
            c = v1 > m; k = c ? 1 : k; m = (c | (v1 != v1)) ? v1 : m;                              \
            c = v2 > m; k = c ? 2 : k; m = (c | (v2 != v2)) ? v2 : m;                              \
            c = v3 > m; k = c ? 3 : k; m = (c | (v3 != v3)) ? v3 : m;                              \
            o[b] = m;                                                                              \
            if (k8) k8[b] = (unsigned char)k;                                                      \
        }                                                                                          \
    }                                                                                              \
    static void bwd_row_##SFX(const T *restrict d, const unsigned char *restrict k8, idx_t kavail, \
                              T *restrict r0, T *restrict r1, idx_t Wo, const unsigned char *m0,    \
                              const unsigned char *m1, const unsigned char *mend) {                \
        (void)kavail;                                                                              \
        (void)mend;                                                                                \
        for (idx_t b = 0; b < Wo; b++) {                                                           \
            unsigned k = k8[b];                                                                    \
            T v = d[b];                                                                            \
            T t0 = k == 0 ? v : (T)0, t1 = k == 1 ? v : (T)0, t2 = k == 2 ? v : (T)0;              \
            T t3 = k == 3 ? v : (T)0;                                                              \
            if (m0) { /* the ReLU's backward: a product, as relu_backward */                       \
                t0 *= (T)m0[2 * b], t1 *= (T)m0[2 * b + 1], t2 *= (T)m1[2 * b];                    \
                t3 *= (T)m1[2 * b + 1];                                                            \
            }                                                                                      \
            r0[2 * b] = t0;                                                                        \
            r0[2 * b + 1] = t1;                                                                    \
            r1[2 * b] = t2;                                                                        \
            r1[2 * b + 1] = t3;                                                                    \
        }                                                                                          \
    }
POOL2_SCALAR(float, f32_base)
POOL2_SCALAR(double, f64_base)

#define TGT
#define T float
#define SFX f32_base
#include "pool2_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_base
#include "pool2_t.h"
#undef T
#undef SFX
#undef TGT

#ifdef LF_X86_ISAS /* lfk.h: the same condition lf_isa_level reads */
#define LF_X86_POOL2 1
#include <immintrin.h>

/* 8 offsets (bytes) into the low half of an xmm: one 8-byte load while `avail` bytes from p
 * remain in the offset array (bytes past a row's n outputs belong to the next row and are not
 * used), else through a zeroed buffer (the array's last row) */
static inline __m128i load8(const unsigned char *p, idx_t avail, idx_t n) {
    unsigned long long q = 0;
    if (avail >= 8) memcpy(&q, p, 8);
    else memcpy(&q, p, (size_t)(n < 8 ? n : 8));
    return _mm_cvtsi64_si128((long long)q);
}

/* ReLU mask bytes (0 / 1) for the `n` pixels from p that a store writes, with `end` the mask
 * array's end: 16 / 8 / 4 bytes in one load while they lie in the array (bytes past the n
 * belong to the next row and are not used), else through a zeroed buffer; n ≤ 0 reads nothing */
static inline __m128i maskbytes16(const unsigned char *p, const unsigned char *end, idx_t n) {
    if (end - p >= 16) return _mm_loadu_si128((const __m128i *)p);
    unsigned char t[16] = {0};
    if (n > 0) memcpy(t, p, (size_t)(n < 16 ? n : 16));
    return _mm_loadu_si128((const __m128i *)t);
}
static inline __m128i maskbytes8(const unsigned char *p, const unsigned char *end, idx_t n) {
    return n > 0 ? load8(p, end - p, n) : _mm_setzero_si128();
}
static inline __m128i maskbytes4(const unsigned char *p, const unsigned char *end, idx_t n) {
    unsigned q = 0;
    if (end - p >= 4) memcpy(&q, p, 4);
    else if (n > 0) memcpy(&q, p, (size_t)(n < 4 ? n : 4));
    return _mm_cvtsi32_si128((int)q);
}

/* ---------------------------------------------------------------- AVX-512 (16 / 8 lanes) */
#define TGT __attribute__((target("avx512f,avx2,fma")))

static inline TGT __mmask16 lanes16(idx_t n) { return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }
static inline TGT __mmask8 lanes8(idx_t n) { return n <= 0 ? 0 : n >= 8 ? 0xFF : (__mmask8)((1u << n) - 1); }

/* v ⊙ mask for the n pixels from m + off (the ReLU's backward folded into the store: v·(T)m, a
 * product as relu_backward computes it, so δ·0 = ±0 and inf·0 = NaN bit for bit); m NULL: v */
static inline TGT __m512 relu16(__m512 v, const unsigned char *m, idx_t off, const unsigned char *end,
                                idx_t n) {
    if (!m) return v;
    m += off;
    return _mm512_mul_ps(v, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(maskbytes16(m, end, n))));
}
static inline TGT __m512d relu8(__m512d v, const unsigned char *m, idx_t off, const unsigned char *end,
                                idx_t n) {
    if (!m) return v;
    m += off;
    return _mm512_mul_pd(v, _mm512_cvtepi32_pd(_mm256_cvtepu8_epi32(maskbytes8(m, end, n))));
}

/* one offset tried: c = [v > m] moves the winner to t, m takes v where c or v is NaN */
#define STEP512(P, MASKT, v, t)                                                                    \
    do {                                                                                           \
        MASKT c_ = _mm512_cmp_##P##_mask(v, m, _CMP_GT_OQ), u_ = _mm512_cmp_##P##_mask(v, v, _CMP_UNORD_Q); \
        k = KMOV(k, c_, t);                                                                        \
        m = _mm512_mask_mov_##P(m, (MASKT)(c_ | u_), v);                                           \
    } while (0)

static TGT void fwd_row_f32_avx512(const float *r0, const float *r1, float *o, unsigned char *k8, idx_t Wo) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i k1 = _mm512_set1_epi32(1), k2 = _mm512_set1_epi32(2), k3 = _mm512_set1_epi32(3);
    for (idx_t b = 0; b < Wo; b += 16) {
        const idx_t n = Wo - b;
        const __mmask16 lo = lanes16(2 * n), hi = lanes16(2 * n - 16), on = lanes16(n);
        __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * b), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * b + 16);
        __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * b), b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * b + 16);
        __m512 v1 = _mm512_permutex2var_ps(a0, od, a1), v2 = _mm512_permutex2var_ps(b0, ev, b1);
        __m512 v3 = _mm512_permutex2var_ps(b0, od, b1), m = _mm512_permutex2var_ps(a0, ev, a1);
        __m512i k = _mm512_setzero_si512();
#define KMOV _mm512_mask_mov_epi32
        STEP512(ps, __mmask16, v1, k1);
        STEP512(ps, __mmask16, v2, k2);
        STEP512(ps, __mmask16, v3, k3);
#undef KMOV
        _mm512_mask_storeu_ps(o + b, on, m);
        if (k8) _mm512_mask_cvtepi32_storeu_epi8(k8 + b, on, k);
    }
}

static TGT void fwd_row_f64_avx512(const double *r0, const double *r1, double *o, unsigned char *k8, idx_t Wo) {
    const __m512i ev = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i od = _mm512_add_epi64(ev, _mm512_set1_epi64(1));
    const __m512i k1 = _mm512_set1_epi64(1), k2 = _mm512_set1_epi64(2), k3 = _mm512_set1_epi64(3);
    for (idx_t b = 0; b < Wo; b += 8) {
        const idx_t n = Wo - b;
        const __mmask8 lo = lanes8(2 * n), hi = lanes8(2 * n - 8), on = lanes8(n);
        __m512d a0 = _mm512_maskz_loadu_pd(lo, r0 + 2 * b), a1 = _mm512_maskz_loadu_pd(hi, r0 + 2 * b + 8);
        __m512d b0 = _mm512_maskz_loadu_pd(lo, r1 + 2 * b), b1 = _mm512_maskz_loadu_pd(hi, r1 + 2 * b + 8);
        __m512d v1 = _mm512_permutex2var_pd(a0, od, a1), v2 = _mm512_permutex2var_pd(b0, ev, b1);
        __m512d v3 = _mm512_permutex2var_pd(b0, od, b1), m = _mm512_permutex2var_pd(a0, ev, a1);
        __m512i k = _mm512_setzero_si512();
#define KMOV _mm512_mask_mov_epi64
        STEP512(pd, __mmask8, v1, k1);
        STEP512(pd, __mmask8, v2, k2);
        STEP512(pd, __mmask8, v3, k3);
#undef KMOV
        _mm512_mask_storeu_pd(o + b, on, m);
        if (k8) _mm512_mask_cvtepi64_storeu_epi8(k8 + b, on, k);
    }
}

/* δ duplicated pairwise ([δ0, δ0, δ1, δ1, …]) and the offsets likewise: a lane of the top row
 * keeps δ where its offset equals the lane's column parity (0, 1, 0, 1, …), of the bottom row
 * where it equals 2 + parity */
static TGT void bwd_row_f32_avx512(const float *d, const unsigned char *k8, idx_t kavail, float *r0, float *r1,
                                   idx_t Wo, const unsigned char *m0, const unsigned char *m1,
                                   const unsigned char *mend) {
    const __m512i dup_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i dup_hi = _mm512_add_epi32(dup_lo, _mm512_set1_epi32(8));
    const __m512i top = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i bot = _mm512_add_epi32(top, _mm512_set1_epi32(2));
    for (idx_t b = 0; b < Wo; b += 16) {
        const idx_t n = Wo - b;
        const __mmask16 lo = lanes16(2 * n), hi = lanes16(2 * n - 16);
        __m128i kb;
        if (kavail - b >= 16) { /* bytes past the row's end are the next row's offsets: unused */
            kb = _mm_loadu_si128((const __m128i *)(k8 + b));
        } else { /* the array's last row: no byte-masked load in AVX-512F, so through a buffer */
            unsigned char t[16] = {0};
            memcpy(t, k8 + b, (size_t)(n < 16 ? n : 16));
            kb = _mm_loadu_si128((const __m128i *)t);
        }
        __m512 dv = _mm512_maskz_loadu_ps(lanes16(n), d + b);
        __m512 dl = _mm512_permutexvar_ps(dup_lo, dv), dh = _mm512_permutexvar_ps(dup_hi, dv);
        __m512i kl = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(kb, kb));
        __m512i kh = _mm512_cvtepu8_epi32(_mm_unpackhi_epi8(kb, kb));
        const idx_t c = 2 * b; /* column of the first pixel; m0 + c, m1 + c its mask bytes */
        __m512 t0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(kl, top), dl);
        __m512 t1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(kh, top), dh);
        __m512 b0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(kl, bot), dl);
        __m512 b1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(kh, bot), dh);
        _mm512_mask_storeu_ps(r0 + c, lo, relu16(t0, m0, c, mend, 2 * n));
        _mm512_mask_storeu_ps(r0 + c + 16, hi, relu16(t1, m0, c + 16, mend, 2 * n - 16));
        _mm512_mask_storeu_ps(r1 + c, lo, relu16(b0, m1, c, mend, 2 * n));
        _mm512_mask_storeu_ps(r1 + c + 16, hi, relu16(b1, m1, c + 16, mend, 2 * n - 16));
    }
}

static TGT void bwd_row_f64_avx512(const double *d, const unsigned char *k8, idx_t kavail, double *r0, double *r1,
                                   idx_t Wo, const unsigned char *m0, const unsigned char *m1,
                                   const unsigned char *mend) {
    const __m512i dup_lo = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3);
    const __m512i dup_hi = _mm512_add_epi64(dup_lo, _mm512_set1_epi64(4));
    const __m512i top = _mm512_setr_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i bot = _mm512_add_epi64(top, _mm512_set1_epi64(2));
    for (idx_t b = 0; b < Wo; b += 8) {
        const idx_t n = Wo - b;
        const __mmask8 lo = lanes8(2 * n), hi = lanes8(2 * n - 8);
        __m128i kb = load8(k8 + b, kavail - b, n);
        kb = _mm_unpacklo_epi8(kb, kb);
        __m512d dv = _mm512_maskz_loadu_pd(lanes8(n), d + b);
        __m512d dl = _mm512_permutexvar_pd(dup_lo, dv), dh = _mm512_permutexvar_pd(dup_hi, dv);
        __m512i kl = _mm512_cvtepu8_epi64(kb), kh = _mm512_cvtepu8_epi64(_mm_srli_si128(kb, 8));
        const idx_t c = 2 * b;
        __m512d t0 = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(kl, top), dl);
        __m512d t1 = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(kh, top), dh);
        __m512d b0 = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(kl, bot), dl);
        __m512d b1 = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(kh, bot), dh);
        _mm512_mask_storeu_pd(r0 + c, lo, relu8(t0, m0, c, mend, 2 * n));
        _mm512_mask_storeu_pd(r0 + c + 8, hi, relu8(t1, m0, c + 8, mend, 2 * n - 8));
        _mm512_mask_storeu_pd(r1 + c, lo, relu8(b0, m1, c, mend, 2 * n));
        _mm512_mask_storeu_pd(r1 + c + 8, hi, relu8(b1, m1, c + 8, mend, 2 * n - 8));
    }
}

/* Short rows (2·Wo ≤ 16 float32 / 8 float64 lanes: LeNet's 14×14 map, VGG's 8×8): two output
 * rows a, a + 1 per vector, lanes [0, Wo) from row a and [Wo, 2·Wo) from row a + 1 (contiguous in
 * the output, δ and the offsets). r0 is input row 2a; rows 2a + 1, 2a + 2, 2a + 3 follow at W
 * apart. The index vectors depend on Wo only: inlined into the plane loop, they are built once. */
static inline TGT void fwd_rows2_f32_avx512(const float *r0, idx_t W, float *o, unsigned char *k8, idx_t Wo) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i wo = _mm512_set1_epi32((int)Wo);
    /* lane l < Wo: column 2l of the first source; l ≥ Wo: column 2(l − Wo) of the second (+16) */
    const __m512i ev = _mm512_mask_add_epi32(_mm512_add_epi32(lane, lane), _mm512_cmpge_epi32_mask(lane, wo),
                                             _mm512_add_epi32(lane, lane),
                                             _mm512_sub_epi32(_mm512_set1_epi32(16), _mm512_add_epi32(wo, wo)));
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i k1 = _mm512_set1_epi32(1), k2 = _mm512_set1_epi32(2), k3 = _mm512_set1_epi32(3);
    const __mmask16 on = lanes16(2 * Wo);
    __m512 ta = _mm512_maskz_loadu_ps(on, r0), ba = _mm512_maskz_loadu_ps(on, r0 + W);
    __m512 tb = _mm512_maskz_loadu_ps(on, r0 + 2 * W), bb = _mm512_maskz_loadu_ps(on, r0 + 3 * W);
    __m512 m = _mm512_permutex2var_ps(ta, ev, tb), v1 = _mm512_permutex2var_ps(ta, od, tb);
    __m512 v2 = _mm512_permutex2var_ps(ba, ev, bb), v3 = _mm512_permutex2var_ps(ba, od, bb);
    __m512i k = _mm512_setzero_si512();
#define KMOV _mm512_mask_mov_epi32
    STEP512(ps, __mmask16, v1, k1);
    STEP512(ps, __mmask16, v2, k2);
    STEP512(ps, __mmask16, v3, k3);
#undef KMOV
    _mm512_mask_storeu_ps(o, on, m);
    if (k8) _mm512_mask_cvtepi32_storeu_epi8(k8, on, k);
}

static inline TGT void fwd_rows2_f64_avx512(const double *r0, idx_t W, double *o, unsigned char *k8, idx_t Wo) {
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i wo = _mm512_set1_epi64(Wo);
    const __m512i ev = _mm512_mask_add_epi64(_mm512_add_epi64(lane, lane), _mm512_cmpge_epi64_mask(lane, wo),
                                             _mm512_add_epi64(lane, lane),
                                             _mm512_sub_epi64(_mm512_set1_epi64(8), _mm512_add_epi64(wo, wo)));
    const __m512i od = _mm512_add_epi64(ev, _mm512_set1_epi64(1));
    const __m512i k1 = _mm512_set1_epi64(1), k2 = _mm512_set1_epi64(2), k3 = _mm512_set1_epi64(3);
    const __mmask8 on = lanes8(2 * Wo);
    __m512d ta = _mm512_maskz_loadu_pd(on, r0), ba = _mm512_maskz_loadu_pd(on, r0 + W);
    __m512d tb = _mm512_maskz_loadu_pd(on, r0 + 2 * W), bb = _mm512_maskz_loadu_pd(on, r0 + 3 * W);
    __m512d m = _mm512_permutex2var_pd(ta, ev, tb), v1 = _mm512_permutex2var_pd(ta, od, tb);
    __m512d v2 = _mm512_permutex2var_pd(ba, ev, bb), v3 = _mm512_permutex2var_pd(ba, od, bb);
    __m512i k = _mm512_setzero_si512();
#define KMOV _mm512_mask_mov_epi64
    STEP512(pd, __mmask8, v1, k1);
    STEP512(pd, __mmask8, v2, k2);
    STEP512(pd, __mmask8, v3, k3);
#undef KMOV
    _mm512_mask_storeu_pd(o, on, m);
    if (k8) _mm512_mask_cvtepi64_storeu_epi8(k8, on, k);
}

/* δ and the offsets of the two rows duplicated pairwise: lanes [0, 2·Wo) of `da` hold row a's
 * δ0, δ0, δ1, δ1, …, of `db` row a + 1's */
static inline TGT void bwd_rows2_f32_avx512(const float *d, const unsigned char *k8, idx_t kavail, float *r0, idx_t W,
                                            idx_t Wo, const unsigned char *m, const unsigned char *mend) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i dup_a = _mm512_srli_epi32(lane, 1), dup_b = _mm512_add_epi32(dup_a, _mm512_set1_epi32((int)Wo));
    const __m512i top = _mm512_and_si512(lane, _mm512_set1_epi32(1)), bot = _mm512_add_epi32(top, _mm512_set1_epi32(2));
    const __mmask16 on = lanes16(2 * Wo);
    __m128i kb;
    if (kavail >= 16) {
        kb = _mm_loadu_si128((const __m128i *)k8);
    } else {
        unsigned char t[16] = {0};
        memcpy(t, k8, (size_t)(2 * Wo < 16 ? 2 * Wo : 16));
        kb = _mm_loadu_si128((const __m128i *)t);
    }
    __m512i kk = _mm512_cvtepu8_epi32(kb);
    __m512 dv = _mm512_maskz_loadu_ps(on, d);
    __m512 da = _mm512_permutexvar_ps(dup_a, dv), db = _mm512_permutexvar_ps(dup_b, dv);
    __m512i ka = _mm512_permutexvar_epi32(dup_a, kk), kb2 = _mm512_permutexvar_epi32(dup_b, kk);
    /* m: the mask bytes of row r0 (NULL: no ReLU), rows 1–3 at W apart */
    __m512 ta = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(ka, top), da);
    __m512 ba = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(ka, bot), da);
    __m512 tb = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(kb2, top), db);
    __m512 bb = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(kb2, bot), db);
    _mm512_mask_storeu_ps(r0, on, relu16(ta, m, 0, mend, 2 * Wo));
    _mm512_mask_storeu_ps(r0 + W, on, relu16(ba, m, W, mend, 2 * Wo));
    _mm512_mask_storeu_ps(r0 + 2 * W, on, relu16(tb, m, 2 * W, mend, 2 * Wo));
    _mm512_mask_storeu_ps(r0 + 3 * W, on, relu16(bb, m, 3 * W, mend, 2 * Wo));
}

static inline TGT void bwd_rows2_f64_avx512(const double *d, const unsigned char *k8, idx_t kavail, double *r0,
                                            idx_t W, idx_t Wo, const unsigned char *m, const unsigned char *mend) {
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i dup_a = _mm512_srli_epi64(lane, 1), dup_b = _mm512_add_epi64(dup_a, _mm512_set1_epi64(Wo));
    const __m512i top = _mm512_and_si512(lane, _mm512_set1_epi64(1)), bot = _mm512_add_epi64(top, _mm512_set1_epi64(2));
    const __mmask8 on = lanes8(2 * Wo);
    __m512i kk = _mm512_cvtepu8_epi64(load8(k8, kavail, 2 * Wo));
    __m512d dv = _mm512_maskz_loadu_pd(on, d);
    __m512d da = _mm512_permutexvar_pd(dup_a, dv), db = _mm512_permutexvar_pd(dup_b, dv);
    __m512i ka = _mm512_permutexvar_epi64(dup_a, kk), kb = _mm512_permutexvar_epi64(dup_b, kk);
    __m512d ta = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(ka, top), da);
    __m512d ba = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(ka, bot), da);
    __m512d tb = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(kb, top), db);
    __m512d bb = _mm512_maskz_mov_pd(_mm512_cmpeq_epi64_mask(kb, bot), db);
    _mm512_mask_storeu_pd(r0, on, relu8(ta, m, 0, mend, 2 * Wo));
    _mm512_mask_storeu_pd(r0 + W, on, relu8(ba, m, W, mend, 2 * Wo));
    _mm512_mask_storeu_pd(r0 + 2 * W, on, relu8(tb, m, 2 * W, mend, 2 * Wo));
    _mm512_mask_storeu_pd(r0 + 3 * W, on, relu8(bb, m, 3 * W, mend, 2 * Wo));
}

#define T float
#define SFX f32_avx512
#define ROWS2 16
#include "pool2_t.h"
#undef T
#undef SFX
#undef ROWS2
#define T double
#define SFX f64_avx512
#define ROWS2 8
#include "pool2_t.h"
#undef T
#undef SFX
#undef ROWS2
#undef TGT

/* ---------------------------------------------------------------- AVX2 (8 / 4 lanes) */
#define TGT __attribute__((target("avx2,fma")))

/* all-ones in the first n of 8 int32 lanes / 4 int64 lanes (maskload/maskstore: masked lanes
 * are neither read nor written, so a partial row never touches the next one) */
static inline TGT __m256i lanes8x32(idx_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline TGT __m256i lanes4x64(idx_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n < 0 ? 0 : n > 4 ? 4 : n), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* as relu16 / relu8: v ⊙ mask for the n pixels from m + off (m NULL: v) */
static inline TGT __m256 relu8x32(__m256 v, const unsigned char *m, idx_t off, const unsigned char *end,
                                  idx_t n) {
    if (!m) return v;
    m += off;
    return _mm256_mul_ps(v, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(maskbytes8(m, end, n))));
}
static inline TGT __m256d relu4x64(__m256d v, const unsigned char *m, idx_t off, const unsigned char *end,
                                   idx_t n) {
    if (!m) return v;
    m += off;
    return _mm256_mul_pd(v, _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(maskbytes4(m, end, n))));
}

/* as STEP512, with the compare results as all-ones lanes and blends */
#define STEP256(VT, P, v, t)                                                                       \
    do {                                                                                           \
        VT c_ = _mm256_cmp_##P(v, m, _CMP_GT_OQ), u_ = _mm256_cmp_##P(v, v, _CMP_UNORD_Q);         \
        k = _mm256_blendv_##P(k, t, c_);                                                           \
        m = _mm256_blendv_##P(m, v, _mm256_or_##P(c_, u_));                                        \
    } while (0)

static TGT void fwd_row_f32_avx2(const float *r0, const float *r1, float *o, unsigned char *k8, idx_t Wo) {
    const __m256 k1 = _mm256_castsi256_ps(_mm256_set1_epi32(1)), k2 = _mm256_castsi256_ps(_mm256_set1_epi32(2));
    const __m256 k3 = _mm256_castsi256_ps(_mm256_set1_epi32(3));
    /* byte 0 of each int32 lane to the low 4 bytes of each 128-bit half */
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (idx_t b = 0; b < Wo; b += 8) {
        const idx_t n = Wo - b;
        const __m256i lo = lanes8x32(2 * n), hi = lanes8x32(2 * n - 8);
        __m256 a0 = _mm256_maskload_ps(r0 + 2 * b, lo), a1 = _mm256_maskload_ps(r0 + 2 * b + 8, hi);
        __m256 b0 = _mm256_maskload_ps(r1 + 2 * b, lo), b1 = _mm256_maskload_ps(r1 + 2 * b + 8, hi);
        /* even / odd columns: shuffle within 128-bit halves, then order the 64-bit quarters */
#define EVEN(p, q) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(p, q, 0x88)), 0xD8))
#define ODD(p, q) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(p, q, 0xDD)), 0xD8))
        __m256 m = EVEN(a0, a1), v1 = ODD(a0, a1), v2 = EVEN(b0, b1), v3 = ODD(b0, b1);
#undef EVEN
#undef ODD
        __m256 k = _mm256_setzero_ps();
        STEP256(__m256, ps, v1, k1);
        STEP256(__m256, ps, v2, k2);
        STEP256(__m256, ps, v3, k3);
        if (n >= 8) _mm256_storeu_ps(o + b, m);
        else _mm256_maskstore_ps(o + b, lanes8x32(n), m);
        if (k8) {
            __m256i kb = _mm256_shuffle_epi8(_mm256_castps_si256(k), pick);
            __m128i kk = _mm_unpacklo_epi32(_mm256_castsi256_si128(kb), _mm256_extracti128_si256(kb, 1));
            unsigned long long kq = (unsigned long long)_mm_cvtsi128_si64(kk);
            if (n >= 8) memcpy(k8 + b, &kq, 8);
            else for (idx_t j = 0; j < n; j++, kq >>= 8) k8[b + j] = (unsigned char)kq;
        }
    }
}

static TGT void fwd_row_f64_avx2(const double *r0, const double *r1, double *o, unsigned char *k8, idx_t Wo) {
    const __m256d k1 = _mm256_castsi256_pd(_mm256_set1_epi64x(1)), k2 = _mm256_castsi256_pd(_mm256_set1_epi64x(2));
    const __m256d k3 = _mm256_castsi256_pd(_mm256_set1_epi64x(3));
    /* byte 0 of each int64 lane to the low 2 bytes of each 128-bit half */
    const __m256i pick = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, -1, -1,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (idx_t b = 0; b < Wo; b += 4) {
        const idx_t n = Wo - b;
        const __m256i lo = lanes4x64(2 * n), hi = lanes4x64(2 * n - 4);
        __m256d a0 = _mm256_maskload_pd(r0 + 2 * b, lo), a1 = _mm256_maskload_pd(r0 + 2 * b + 4, hi);
        __m256d b0 = _mm256_maskload_pd(r1 + 2 * b, lo), b1 = _mm256_maskload_pd(r1 + 2 * b + 4, hi);
#define EVEN(p, q) _mm256_permute4x64_pd(_mm256_unpacklo_pd(p, q), 0xD8)
#define ODD(p, q) _mm256_permute4x64_pd(_mm256_unpackhi_pd(p, q), 0xD8)
        __m256d m = EVEN(a0, a1), v1 = ODD(a0, a1), v2 = EVEN(b0, b1), v3 = ODD(b0, b1);
#undef EVEN
#undef ODD
        __m256d k = _mm256_setzero_pd();
        STEP256(__m256d, pd, v1, k1);
        STEP256(__m256d, pd, v2, k2);
        STEP256(__m256d, pd, v3, k3);
        if (n >= 4) _mm256_storeu_pd(o + b, m);
        else _mm256_maskstore_pd(o + b, lanes4x64(n), m);
        if (k8) {
            __m256i kb = _mm256_shuffle_epi8(_mm256_castpd_si256(k), pick);
            __m128i kk = _mm_unpacklo_epi16(_mm256_castsi256_si128(kb), _mm256_extracti128_si256(kb, 1));
            unsigned kd = (unsigned)_mm_cvtsi128_si32(kk);
            if (n >= 4) memcpy(k8 + b, &kd, 4);
            else for (idx_t j = 0; j < n; j++, kd >>= 8) k8[b + j] = (unsigned char)kd;
        }
    }
}

/* t_j = δ where the offset is j; the top row interleaves t_0, t_1, the bottom row t_2, t_3 */
static TGT void bwd_row_f32_avx2(const float *d, const unsigned char *k8, idx_t kavail, float *r0, float *r1,
                                 idx_t Wo, const unsigned char *m0, const unsigned char *m1,
                                 const unsigned char *mend) {
    for (idx_t b = 0; b < Wo; b += 8) {
        const idx_t n = Wo - b;
        __m256i k = _mm256_cvtepu8_epi32(load8(k8 + b, kavail - b, n));
        __m256 dv = n >= 8 ? _mm256_loadu_ps(d + b) : _mm256_maskload_ps(d + b, lanes8x32(n));
#define SEL(j) _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(j))), dv)
        __m256 t0 = SEL(0), t1 = SEL(1), t2 = SEL(2), t3 = SEL(3);
#undef SEL
        __m256 l01 = _mm256_unpacklo_ps(t0, t1), h01 = _mm256_unpackhi_ps(t0, t1);
        __m256 l23 = _mm256_unpacklo_ps(t2, t3), h23 = _mm256_unpackhi_ps(t2, t3);
        __m256 top0 = _mm256_permute2f128_ps(l01, h01, 0x20), top1 = _mm256_permute2f128_ps(l01, h01, 0x31);
        __m256 bot0 = _mm256_permute2f128_ps(l23, h23, 0x20), bot1 = _mm256_permute2f128_ps(l23, h23, 0x31);
        if (m0) { /* the ReLU's mask: columns c … c + 15 of rows r0, r1 */
            const idx_t c = 2 * b;
            top0 = relu8x32(top0, m0, c, mend, 2 * n), top1 = relu8x32(top1, m0, c + 8, mend, 2 * n - 8);
            bot0 = relu8x32(bot0, m1, c, mend, 2 * n), bot1 = relu8x32(bot1, m1, c + 8, mend, 2 * n - 8);
        }
        if (n >= 8) {
            _mm256_storeu_ps(r0 + 2 * b, top0);
            _mm256_storeu_ps(r0 + 2 * b + 8, top1);
            _mm256_storeu_ps(r1 + 2 * b, bot0);
            _mm256_storeu_ps(r1 + 2 * b + 8, bot1);
        } else {
            const __m256i lo = lanes8x32(2 * n), hi = lanes8x32(2 * n - 8);
            _mm256_maskstore_ps(r0 + 2 * b, lo, top0);
            _mm256_maskstore_ps(r0 + 2 * b + 8, hi, top1);
            _mm256_maskstore_ps(r1 + 2 * b, lo, bot0);
            _mm256_maskstore_ps(r1 + 2 * b + 8, hi, bot1);
        }
    }
}

static TGT void bwd_row_f64_avx2(const double *d, const unsigned char *k8, idx_t kavail, double *r0, double *r1,
                                 idx_t Wo, const unsigned char *m0, const unsigned char *m1,
                                 const unsigned char *mend) {
    for (idx_t b = 0; b < Wo; b += 4) {
        const idx_t n = Wo - b;
        __m256i k = _mm256_cvtepu8_epi64(load8(k8 + b, kavail - b, n));
        __m256d dv = n >= 4 ? _mm256_loadu_pd(d + b) : _mm256_maskload_pd(d + b, lanes4x64(n));
#define SEL(j) _mm256_and_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(k, _mm256_set1_epi64x(j))), dv)
        __m256d t0 = SEL(0), t1 = SEL(1), t2 = SEL(2), t3 = SEL(3);
#undef SEL
        __m256d l01 = _mm256_unpacklo_pd(t0, t1), h01 = _mm256_unpackhi_pd(t0, t1);
        __m256d l23 = _mm256_unpacklo_pd(t2, t3), h23 = _mm256_unpackhi_pd(t2, t3);
        __m256d top0 = _mm256_permute2f128_pd(l01, h01, 0x20), top1 = _mm256_permute2f128_pd(l01, h01, 0x31);
        __m256d bot0 = _mm256_permute2f128_pd(l23, h23, 0x20), bot1 = _mm256_permute2f128_pd(l23, h23, 0x31);
        if (m0) {
            const idx_t c = 2 * b;
            top0 = relu4x64(top0, m0, c, mend, 2 * n), top1 = relu4x64(top1, m0, c + 4, mend, 2 * n - 4);
            bot0 = relu4x64(bot0, m1, c, mend, 2 * n), bot1 = relu4x64(bot1, m1, c + 4, mend, 2 * n - 4);
        }
        if (n >= 4) {
            _mm256_storeu_pd(r0 + 2 * b, top0);
            _mm256_storeu_pd(r0 + 2 * b + 4, top1);
            _mm256_storeu_pd(r1 + 2 * b, bot0);
            _mm256_storeu_pd(r1 + 2 * b + 4, bot1);
        } else {
            const __m256i lo = lanes4x64(2 * n), hi = lanes4x64(2 * n - 4);
            _mm256_maskstore_pd(r0 + 2 * b, lo, top0);
            _mm256_maskstore_pd(r0 + 2 * b + 4, hi, top1);
            _mm256_maskstore_pd(r1 + 2 * b, lo, bot0);
            _mm256_maskstore_pd(r1 + 2 * b + 4, hi, bot1);
        }
    }
}

#define T float
#define SFX f32_avx2
#include "pool2_t.h"
#undef T
#undef SFX
#define T double
#define SFX f64_avx2
#include "pool2_t.h"
#undef T
#undef SFX
#undef TGT
#endif /* x86 */

/* ---------------------------------------------------------------- dispatch */
typedef void (*pool2_fwd_fn)(const void *x, void *out, unsigned char *k, const struct pool_geom *g, idx_t first,
                             idx_t end);
typedef void (*pool2_bwd_fn)(const void *d, const unsigned char *k, const unsigned char *m, void *dx,
                             const struct pool_geom *g, idx_t first, idx_t end);
struct pool2_impl {
    pool2_fwd_fn fwd[2]; /* [f64] */
    pool2_bwd_fn bwd[2];
    const char *name;
};
#define IMPL(S32, S64, NAME)                                                                       \
    {{pool2_fwd_planes_##S32, pool2_fwd_planes_##S64}, {pool2_bwd_planes_##S32, pool2_bwd_planes_##S64}, NAME}
static const struct pool2_impl impl_base = IMPL(f32_base, f64_base, "baseline");
#ifdef LF_X86_POOL2
static const struct pool2_impl impl_avx512 = IMPL(f32_avx512, f64_avx512, "avx512");
static const struct pool2_impl impl_avx2 = IMPL(f32_avx2, f64_avx2, "avx2");
#endif
static const struct pool2_impl *impl = NULL;

/* "auto" (the best this CPU runs), "avx512", "avx2" or "baseline"; returns the name chosen, or NULL
 * when this CPU (or build) does not have it (then the choice is left as it was) */
const char *lf_pool2_isa(const char *want) {
    switch (lf_isa_level(want, 0)) { /* integer compares and blends: no FMA needed */
#ifdef LF_X86_POOL2
    case LF_ISA_AVX512: return (impl = &impl_avx512)->name;
    case LF_ISA_AVX2: return (impl = &impl_avx2)->name;
#endif
    case LF_ISA_BASE: return (impl = &impl_base)->name;
    default: return NULL;
    }
}

int lf_pool2_fits(const struct pool_geom *g) {
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 && g->Ho == g->H / 2 &&
           g->Wo == g->W / 2;
}

struct pool2_args {
    const struct pool2_impl *impl;
    int f64;
    const void *src;
    void *dst;
    unsigned char *k;
    const unsigned char *m; /* backward: the ReLU mask to apply, or NULL */
    const struct pool_geom *g;
};

static void fwd_range(void *p, idx_t first, idx_t end) {
    struct pool2_args *a = p;
    a->impl->fwd[a->f64](a->src, a->dst, a->k, a->g, first, end);
}

static void bwd_range(void *p, idx_t first, idx_t end) {
    struct pool2_args *a = p;
    a->impl->bwd[a->f64](a->src, a->k, a->m, a->dst, a->g, first, end);
}

void lf_maxpool2_fwd(int f64, const void *x, void *out, unsigned char *k, const struct pool_geom *g) {
    if (!impl) lf_pool2_isa("auto");
    struct pool2_args a = {impl, f64 != 0, x, out, k, NULL, g};
    lf_parallel(fwd_range, &a, g->planes, g->H * g->W);
}

/* δx, times the ReLU mask m (the pool input's shape) when m is not NULL */
void lf_maxpool2_bwd(int f64, const void *d, const unsigned char *k, const unsigned char *m, void *dx,
                     const struct pool_geom *g) {
    if (!impl) lf_pool2_isa("auto");
    struct pool2_args a = {impl, f64 != 0, d, dx, (unsigned char *)k, m, g};
    lf_parallel(bwd_range, &a, g->planes, g->H * g->W);
}
