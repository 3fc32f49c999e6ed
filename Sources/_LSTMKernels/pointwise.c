// The LSTM's per-step element-wise pass for Float, vectorized with AVX-512 and AVX2 (one body for both widths,
// pointwise_simd.h) and with a portable twin that performs the same operations in the same order (so all give the
// same bits; see Tests/LSTMKitTests/KernelTests.swift).
//
// exp(x): Cephes expf. n = round(x·log2 e), r = x − n·ln2 (two-part ln2, by fma), e^r by a degree-6 polynomial,
// times 2^n built in the exponent bits. x is clamped to [−87, 88] so 2^n stays a normal float.
// σ(z) = 1 / (1 + e^(−z)).
// tanh(x): Cephes tanhf. |x| < 0.625: x + x·z·P(z), z = x²; otherwise sign(x)·(1 − 2 / (e^(2|x|) + 1)), |x| ≤ 44.
// Measured against libm in Double (ActivationKernelTests, every normal-Float result on a dense grid over
// [−30, 30] and special values): σ within 1.5e-7 relative, tanh within 1.2e-7.
#pragma STDC FP_CONTRACT OFF

#include "LSTMKernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LSTMK_X86 1
#endif

#define EXP_HI 88.0f
#define EXP_LO -87.0f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define P0 1.9875691500E-4f
#define P1 1.3981999507E-3f
#define P2 8.3334519073E-3f
#define P3 4.1665795894E-2f
#define P4 1.6666665459E-1f
#define P5 5.0000001201E-1f
#define T0 -5.70498872745E-3f
#define T1 2.06390887954E-2f
#define T2 -5.37397155531E-2f
#define T3 1.33314422036E-1f
#define T4 -3.33332819422E-1f

static inline float exp_portable(float x) {
    x = fminf(fmaxf(x, EXP_LO), EXP_HI);
    const float n = nearbyintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = P0;
    p = fmaf(p, r, P1); p = fmaf(p, r, P2); p = fmaf(p, r, P3); p = fmaf(p, r, P4); p = fmaf(p, r, P5);
    const float z = r * r;
    float y = fmaf(p, z, r) + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline float sigmoid_portable(float z) { return 1.0f / (1.0f + exp_portable(-z)); }

static inline float tanh_portable(float x) {
    const float ax = fabsf(x);
    if (ax < 0.625f) {
        const float z = x * x;
        float p = T0;
        p = fmaf(p, z, T1); p = fmaf(p, z, T2); p = fmaf(p, z, T3); p = fmaf(p, z, T4);
        return fmaf(p * z, x, x);
    }
    const float e = exp_portable(2.0f * fminf(ax, 44.0f));
    const float y = 1.0f - 2.0f / (e + 1.0f);
    return copysignf(y, x);
}

// Cell clipping: S limited to [−clip, clip]; a NaN stays NaN (both comparisons are false), in both paths.
static inline float clip_portable(float s, float clip) { return s < -clip ? -clip : (s > clip ? clip : s); }

// Whether clipping held S at a bound (the stored S equals ±clip): its derivative is 0 there.
static inline int clipped_portable(float s, float clip) { return clip > 0.0f && (s <= -clip || s >= clip); }

static inline float gate_portable(float z, int kind) {
    switch (kind) {
    case 0: return sigmoid_portable(z);
    case 1: return fminf(fmaxf(z / 6.0f + 0.5f, 0.0f), 1.0f);
    default: return z;
    }
}

static inline float cell_portable(float z, int kind) { return kind == 0 ? tanh_portable(z) : z; }

#ifdef LSTMK_X86
#define NV 4

// AVX2: 8 lanes.
#define V __m256
#define VW 8
#define SFX _avx2
#define SIMD_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define SIMD_FN __attribute__((target("avx2,fma"))) static
#define LOADU _mm256_loadu_ps
#define STOREU _mm256_storeu_ps
#define SET1 _mm256_set1_ps
#define ZERO _mm256_setzero_ps
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define MUL _mm256_mul_ps
#define DIV _mm256_div_ps
#define MIN _mm256_min_ps
#define MAX _mm256_max_ps
#define FMADD _mm256_fmadd_ps
#define ROUND_NEAREST(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define POW2N(n) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define ABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define COPYSIGN(t, x) _mm256_or_ps(t, _mm256_and_ps(_mm256_set1_ps(-0.0f), x))
#define CMP_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define CMP_GT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define CMP_LE(a, b) _mm256_cmp_ps(a, b, _CMP_LE_OQ)
#define CMP_GE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define MASK_AND _mm256_and_ps
#define MASK_OR _mm256_or_ps
#define SELECT(m, t, f) _mm256_blendv_ps(f, t, m)
#define SCALE2N(y, n) _mm256_mul_ps(y, POW2N(n))
#include "pointwise_simd.h"
#undef SCALE2N
#undef V
#undef VW
#undef SFX
#undef SIMD_INLINE
#undef SIMD_FN
#undef LOADU
#undef STOREU
#undef SET1
#undef ZERO
#undef ADD
#undef SUB
#undef MUL
#undef DIV
#undef MIN
#undef MAX
#undef FMADD
#undef ROUND_NEAREST
#undef POW2N
#undef ABS
#undef COPYSIGN
#undef CMP_LT
#undef CMP_GT
#undef CMP_LE
#undef CMP_GE
#undef MASK_AND
#undef MASK_OR
#undef SELECT

// AVX-512 (AVX512F only): 16 lanes; comparisons give mask registers, bit operations go through the integer
// instructions (the float ones need AVX512DQ). min, max, the rounding and the conversion behave as the AVX2 ones
// on every input, NaN included.
#define V __m512
#define VW 16
#define SFX _avx512
#define SIMD_INLINE __attribute__((target("avx512f"), always_inline)) static inline
#define SIMD_FN __attribute__((target("avx512f"))) static
#define LOADU _mm512_loadu_ps
#define STOREU _mm512_storeu_ps
#define SET1 _mm512_set1_ps
#define ZERO _mm512_setzero_ps
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps
#define DIV _mm512_div_ps
#define MIN _mm512_min_ps
#define MAX _mm512_max_ps
#define FMADD _mm512_fmadd_ps
#define ROUND_NEAREST(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define POW2N(n) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define SIGN_BITS _mm512_castps_si512(_mm512_set1_ps(-0.0f))
#define ABS(x) _mm512_castsi512_ps(_mm512_andnot_si512(SIGN_BITS, _mm512_castps_si512(x)))
// t | (x & sign) in one ternary-logic operation (truth table A | (B & C) = 0xF8).
#define COPYSIGN(t, x) _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(t), _mm512_castps_si512(x), SIGN_BITS, 0xF8))
#define CMP_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define CMP_GT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define CMP_LE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ)
#define CMP_GE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#define MASK_AND(a, b) ((__mmask16)((a) & (b)))
#define MASK_OR(a, b) ((__mmask16)((a) | (b)))
#define SELECT(m, t, f) _mm512_mask_blend_ps(m, f, t)
// y·2^n in one instruction (n integral: scalef multiplies by 2^floor(n)); exact, as the product with 2^n built in
// the exponent bits is, for the normal results exp's clamp allows — the same bits in a quarter of the operations.
#define SCALE2N(y, n) _mm512_scalef_ps(y, n)
#include "pointwise_simd.h"
#endif

static void forward_row_portable(float *z, ptrdiff_t zs, const float *cp, float *cb, float *hb, ptrdiff_t from,
                                 ptrdiff_t H, int gate, int cell, float clip, const float *peep, ptrdiff_t ps, int store) {
    for (ptrdiff_t j = from; j < H; j++) {
        float zi = z[j], zf = z[zs + j], zo = z[3 * zs + j];
        if (peep) {
            zi = zi + peep[j] * cp[j];
            zf = zf + peep[ps + j] * cp[j];
        }
        const float i = gate_portable(zi, gate), f = gate_portable(zf, gate), g = cell_portable(z[2 * zs + j], cell);
        float s = f * cp[j] + i * g;
        if (clip > 0.0f) s = clip_portable(s, clip);
        if (peep) zo = zo + peep[2 * ps + j] * s;
        const float o = gate_portable(zo, gate);
        if (store) { z[j] = i; z[zs + j] = f; z[2 * zs + j] = g; z[3 * zs + j] = o; }
        cb[j] = s;
        hb[j] = o * cell_portable(s, cell);
    }
}

#ifdef LSTMK_X86
// The widest vector path a caller allows: `cap` 0 = this CPU's best, 1 = portable, 2 = at most AVX2 (tests compare
// every width against the portable code).
static int pointwise_level(int cap) {
    const int best = lstmk_sgemm_level();
    return cap == 1 ? 0 : (cap == 2 && best > 2 ? 2 : best);
}
#endif

// One row of units: AVX-512 and then AVX2 for whole vectors (as the level allows), the portable loop for the rest.
static void forward_row(float *z, ptrdiff_t zs, const float *cp, float *cb, float *hb, ptrdiff_t units, int gate,
                        int cell, float clip, const float *peep, ptrdiff_t ps, int store, int cap) {
    ptrdiff_t from = 0;
#ifdef LSTMK_X86
    const int level = pointwise_level(cap);
    if (level >= 3) from = forward_row_avx512(z, zs, cp, cb, hb, from, units, gate, cell, clip, peep, ps, store);
    if (level >= 2) from = forward_row_avx2(z, zs, cp, cb, hb, from, units, gate, cell, clip, peep, ps, store);
#endif
    forward_row_portable(z, zs, cp, cb, hb, from, units, gate, cell, clip, peep, ps, store);
    (void)cap;
}

void lstmk_pointwise_forward(float *gates, const float *cprev, float *c, float *h, ptrdiff_t B, ptrdiff_t H,
                             int gate, int cell, float clip, const float *peep, int portable) {
    for (ptrdiff_t b = 0; b < B; b++)
        forward_row(gates + b * 4 * H, H, cprev + b * H, c + b * H, h + b * H, H, gate, cell, clip, peep, H, 1, portable);
}

void lstmk_pointwise_forward_units(float *z, ptrdiff_t ldz, ptrdiff_t zs, float *c, ptrdiff_t ldc, float *h,
                                   ptrdiff_t ldh, ptrdiff_t rows, ptrdiff_t units, int gate, int cell, float clip,
                                   const float *peep, ptrdiff_t ps, int portable) {
    ptrdiff_t r = 0;
#ifdef LSTMK_X86
    const int level = pointwise_level(portable);
    if (level >= 3 && units == 16)
        r = forward_group_rows_avx512(z, ldz, zs, c, ldc, h, ldh, r, rows, gate, cell, clip, peep, ps);
    if (level >= 2 && units == 16)
        r = forward_group_rows_avx2(z, ldz, zs, c, ldc, h, ldh, r, rows, gate, cell, clip, peep, ps);
#endif
    for (; r < rows; r++)
        forward_row(z + r * ldz, zs, c + r * ldc, c + r * ldc, h + r * ldh, units, gate, cell, clip, peep, ps, 0, portable);
}

void lstmk_activation(int function, const float *x, float *y, ptrdiff_t n, int portable) {
    ptrdiff_t k = 0;
#ifdef LSTMK_X86
    const int level = pointwise_level(portable);
    if (level >= 3) k = activation_avx512(function, x, y, k, n);
    if (level >= 2) k = activation_avx2(function, x, y, k, n);
#endif
    (void)portable;
    for (; k < n; k++) y[k] = function == 0 ? sigmoid_portable(x[k]) : tanh_portable(x[k]);
}

float lstmk_tanh(float x) { return tanh_portable(x); }

// ---- Backward element-wise pass (the equations in LSTMPointwise.swift, in the same operation order) ----

static inline float gate_derivative_portable(float a, int kind) {
    switch (kind) {
    case 0: return a * (1.0f - a);
    case 1: return (a > 0.0f && a < 1.0f) ? 1.0f / 6.0f : 0.0f;
    default: return 1.0f;
    }
}

static void backward_row_portable(const float *a, const float *cprev, const float *c, const float *dout,
                                  const float *dcarry, float *dc, float *dz, ptrdiff_t from, ptrdiff_t H, int gate,
                                  int cell, float clip, const float *peep) {
    for (ptrdiff_t j = from; j < H; j++) {
        const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        float dh = dcarry[j];
        if (dout) dh = dout[j] + dh;
        const float tc = cell == 0 ? tanh_portable(c[j]) : c[j];
        const float dzo = dh * tc * gate_derivative_portable(o, gate);
        float dS = (cell == 0 ? dh * o * (1.0f - tc * tc) : dh * o) + dc[j];
        if (peep) dS = dS + dzo * peep[2 * H + j];
        if (clipped_portable(c[j], clip)) dS = 0.0f;
        const float dzi = dS * g * gate_derivative_portable(i, gate);
        const float dzf = dS * cprev[j] * gate_derivative_portable(f, gate);
        dz[j] = dzi;
        dz[H + j] = dzf;
        dz[2 * H + j] = cell == 0 ? dS * i * (1.0f - g * g) : dS * i;
        dz[3 * H + j] = dzo;
        float carry = dS * f;
        if (peep) carry = carry + dzi * peep[j] + dzf * peep[H + j];
        dc[j] = carry;
    }
}

void lstmk_pointwise_backward(const float *gates, const float *cprev, const float *c, const float *dout,
                              const float *dcarry, float *dc, float *dz, ptrdiff_t B, ptrdiff_t H, int gate, int cell,
                              float clip, const float *peep, int portable) {
#ifdef LSTMK_X86
    const int level = pointwise_level(portable);
#endif
    (void)portable;
    for (ptrdiff_t b = 0; b < B; b++) {
        const float *a = gates + b * 4 * H, *cp = cprev + b * H, *s = c + b * H, *dc_in = dcarry + b * H;
        const float *d_out = dout ? dout + b * H : NULL;
        float *d_c = dc + b * H, *d_z = dz + b * 4 * H;
        ptrdiff_t from = 0;
#ifdef LSTMK_X86
        if (level >= 3) from = backward_row_avx512(a, cp, s, d_out, dc_in, d_c, d_z, from, H, gate, cell, clip, peep);
        if (level >= 2) from = backward_row_avx2(a, cp, s, d_out, dc_in, d_c, d_z, from, H, gate, cell, clip, peep);
#endif
        backward_row_portable(a, cp, s, d_out, dc_in, d_c, d_z, from, H, gate, cell, clip, peep);
    }
}

// ---- Adam / AdamW (Optimizer.step's loop in Swift, the same operations in the same order) ----
//
// p ← p·shrink (AdamW) or g ← g + wd·p (Adam with weight decay); m ← m + b1·(g − m); v ← v·b2 + (b2c·g)·g;
// p ← p − step·(m / (√v / c2 + eps)). No fused multiply-adds (FP_CONTRACT OFF above); the square root and the
// divisions are correctly rounded in both paths, so both give the bits of the Swift loop. Swift's Float.squareRoot
// on Linux calls sqrtf for negative inputs (errno), which kept that loop from vectorizing.

static void adam_portable(float *p, const float *g, float *m, float *v, ptrdiff_t from, ptrdiff_t n,
                          const float *k, int mode) {
    const float shrink = k[0], wd = k[1], b1 = k[2], b2 = k[3], b2c = k[4], c2 = k[5], eps = k[6], step = k[7];
    for (ptrdiff_t i = from; i < n; i++) {
        float pi = p[i], gi = g[i];
        if (mode == 1) pi = pi * shrink;
        else if (mode == 2) gi = gi + wd * pi;
        const float mi = m[i] + b1 * (gi - m[i]);
        const float vi = v[i] * b2 + b2c * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / c2 + eps;
        p[i] = pi - step * (mi / denom);
    }
}

#ifdef LSTMK_X86
__attribute__((target("avx2")))
static ptrdiff_t adam_avx2(float *p, const float *g, float *m, float *v, ptrdiff_t n, const float *k, int mode) {
    const __m256 shrink = _mm256_set1_ps(k[0]), wd = _mm256_set1_ps(k[1]), b1 = _mm256_set1_ps(k[2]),
                 b2 = _mm256_set1_ps(k[3]), b2c = _mm256_set1_ps(k[4]), c2 = _mm256_set1_ps(k[5]),
                 eps = _mm256_set1_ps(k[6]), step = _mm256_set1_ps(k[7]);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pi = _mm256_loadu_ps(p + i), gi = _mm256_loadu_ps(g + i);
        if (mode == 1) pi = _mm256_mul_ps(pi, shrink);
        else if (mode == 2) gi = _mm256_add_ps(gi, _mm256_mul_ps(wd, pi));
        const __m256 m0 = _mm256_loadu_ps(m + i);
        const __m256 mi = _mm256_add_ps(m0, _mm256_mul_ps(b1, _mm256_sub_ps(gi, m0)));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(b2c, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), c2), eps);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_mul_ps(step, _mm256_div_ps(mi, denom))));
    }
    return i;
}
#endif

// Column sums: 16 vectors (256 columns) at a time held in registers over all the rows, then single vectors, the
// last one masked. Each column is one chain of adds over the rows in order, as in the portable loop.
#ifdef LSTMK_X86
__attribute__((target("avx512f")))
static ptrdiff_t column_sums_avx512(const float *A, ptrdiff_t rows, ptrdiff_t lda, ptrdiff_t cols, float *sum) {
    ptrdiff_t j = 0;
    for (; j + 256 <= cols; j += 256) {
        __m512 acc[16];
        for (int v = 0; v < 16; v++) acc[v] = _mm512_loadu_ps(sum + j + 16 * v);
        for (ptrdiff_t i = 0; i < rows; i++) {
            const float *row = A + i * lda + j;
            for (int v = 0; v < 16; v++) acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(row + 16 * v));
        }
        for (int v = 0; v < 16; v++) _mm512_storeu_ps(sum + j + 16 * v, acc[v]);
    }
    // The rest four vectors (64 columns) at a time, the last ones masked: four chains side by side instead of one
    // vector's chain of 4-cycle adds at a time (Linear's 64-column bias gradient over 1,600 rows: ~9 µs one vector
    // at a time).
    for (; j < cols; j += 64) {
        __mmask16 mask[4];
        __m512 acc[4];
        for (int v = 0; v < 4; v++) {
            const ptrdiff_t left = cols - j - 16 * v;
            mask[v] = (__mmask16)(left >= 16 ? 0xFFFF : left <= 0 ? 0 : (1u << left) - 1);
            acc[v] = _mm512_maskz_loadu_ps(mask[v], sum + j + 16 * v);
        }
        for (ptrdiff_t i = 0; i < rows; i++) {
            const float *row = A + i * lda + j;
            for (int v = 0; v < 4; v++) acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
        }
        for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(sum + j + 16 * v, mask[v], acc[v]);
    }
    return cols;
}

// AVX2: 64 columns (8 vectors) at a time held in registers over all the rows, then single vectors, the last
// columns one at a time; the same chains.
__attribute__((target("avx2")))
static void column_sums_avx2(const float *A, ptrdiff_t rows, ptrdiff_t lda, ptrdiff_t cols, float *sum) {
    ptrdiff_t j = 0;
    for (; j + 64 <= cols; j += 64) {
        __m256 acc[8];
        for (int v = 0; v < 8; v++) acc[v] = _mm256_loadu_ps(sum + j + 8 * v);
        for (ptrdiff_t i = 0; i < rows; i++) {
            const float *row = A + i * lda + j;
            for (int v = 0; v < 8; v++) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(row + 8 * v));
        }
        for (int v = 0; v < 8; v++) _mm256_storeu_ps(sum + j + 8 * v, acc[v]);
    }
    for (; j + 8 <= cols; j += 8) {
        __m256 acc = _mm256_loadu_ps(sum + j);
        for (ptrdiff_t i = 0; i < rows; i++) acc = _mm256_add_ps(acc, _mm256_loadu_ps(A + i * lda + j));
        _mm256_storeu_ps(sum + j, acc);
    }
    for (; j < cols; j++) {
        float acc = sum[j];
        for (ptrdiff_t i = 0; i < rows; i++) acc = acc + A[i * lda + j];
        sum[j] = acc;
    }
}
#endif

void lstmk_column_sums(const float *A, ptrdiff_t rows, ptrdiff_t lda, ptrdiff_t cols, float *sum, int portable) {
#ifdef LSTMK_X86
    if (!portable && lstmk_sgemm_level() >= 3) { column_sums_avx512(A, rows, lda, cols, sum); return; }
    if (!portable && lstmk_sgemm_level() == 2) { column_sums_avx2(A, rows, lda, cols, sum); return; }
#endif
    (void)portable;
    for (ptrdiff_t i = 0; i < rows; i++) {
        const float *row = A + i * lda;
        for (ptrdiff_t j = 0; j < cols; j++) sum[j] = sum[j] + row[j];
    }
}

void lstmk_adam(float *p, const float *g, float *m, float *v, ptrdiff_t n, const float *constants, int mode,
                int portable) {
    ptrdiff_t i = 0;
#ifdef LSTMK_X86
    if (!portable && lstmk_sgemm_level() >= 2) i = adam_avx2(p, g, m, v, n, constants, mode);
#endif
    (void)portable;
    adam_portable(p, g, m, v, i, n, constants, mode);
}
