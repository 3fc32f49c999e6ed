// The LSTM's per-step element-wise pass for Float, vectorized with AVX2 and with a portable twin that performs
// the same operations in the same order (so both give the same bits; see Tests/LSTMKitTests/KernelTests.swift).
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
// The AVX2 functions work on n independent vectors of 8 at once (n = 1…4, a constant at every call): each step is
// written for the n side by side. One vector's pass through the forward step is a chain of ~150 cycles of latency
// (five exp/divide chains, one after the other), so one at a time leaves the FMA pipes mostly idle; four
// interleaved fill them. Per element the operations are the same for every n (and those of the portable code), so
// the bits are the same.
#define NV 4
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

AVX2_INLINE void exp_avx2_n(__m256 *x, const int nv) {
    __m256 n[NV], r[NV], p[NV];
    for (int v = 0; v < nv; v++) x[v] = _mm256_min_ps(_mm256_max_ps(x[v], _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    for (int v = 0; v < nv; v++)
        n[v] = _mm256_round_ps(_mm256_mul_ps(x[v], _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    for (int v = 0; v < nv; v++) r[v] = _mm256_fmadd_ps(n[v], _mm256_set1_ps(-LN2_HI), x[v]);
    for (int v = 0; v < nv; v++) r[v] = _mm256_fmadd_ps(n[v], _mm256_set1_ps(-LN2_LO), r[v]);
    for (int v = 0; v < nv; v++) p[v] = _mm256_fmadd_ps(_mm256_set1_ps(P0), r[v], _mm256_set1_ps(P1));
    for (int v = 0; v < nv; v++) p[v] = _mm256_fmadd_ps(p[v], r[v], _mm256_set1_ps(P2));
    for (int v = 0; v < nv; v++) p[v] = _mm256_fmadd_ps(p[v], r[v], _mm256_set1_ps(P3));
    for (int v = 0; v < nv; v++) p[v] = _mm256_fmadd_ps(p[v], r[v], _mm256_set1_ps(P4));
    for (int v = 0; v < nv; v++) p[v] = _mm256_fmadd_ps(p[v], r[v], _mm256_set1_ps(P5));
    for (int v = 0; v < nv; v++) {
        const __m256 z = _mm256_mul_ps(r[v], r[v]);
        const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p[v], z, r[v]), _mm256_set1_ps(1.0f));
        const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n[v]), _mm256_set1_epi32(127)), 23);
        x[v] = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    }
}

AVX2_INLINE void sigmoid_avx2_n(__m256 *z, const int nv) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e[NV];
    for (int v = 0; v < nv; v++) e[v] = _mm256_sub_ps(_mm256_setzero_ps(), z[v]);
    exp_avx2_n(e, nv);
    for (int v = 0; v < nv; v++) z[v] = _mm256_div_ps(one, _mm256_add_ps(one, e[v]));
}

// y[v] = tanh(x[v]); y may be x.
AVX2_INLINE void tanh_avx2_n(const __m256 *x, __m256 *y, const int nv) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 e[NV];
    for (int v = 0; v < nv; v++)
        e[v] = _mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_min_ps(_mm256_andnot_ps(sign, x[v]), _mm256_set1_ps(44.0f)));
    exp_avx2_n(e, nv);
    for (int v = 0; v < nv; v++) {
        const __m256 ax = _mm256_andnot_ps(sign, x[v]);
        const __m256 z = _mm256_mul_ps(x[v], x[v]);
        __m256 p = _mm256_set1_ps(T0);
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T1));
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T2));
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T3));
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T4));
        const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x[v], x[v]);
        const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e[v], _mm256_set1_ps(1.0f))));
        const __m256 large = _mm256_or_ps(t, _mm256_and_ps(sign, x[v]));
        y[v] = _mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    }
}

AVX2_INLINE __m256 sigmoid_avx2(__m256 z) { sigmoid_avx2_n(&z, 1); return z; }

AVX2_INLINE __m256 tanh_avx2(__m256 x) { tanh_avx2_n(&x, &x, 1); return x; }

AVX2_INLINE void gate_avx2_n(__m256 *z, const int nv, int kind) {
    switch (kind) {
    case 0: sigmoid_avx2_n(z, nv); return;
    case 1:
        for (int v = 0; v < nv; v++)
            z[v] = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(_mm256_div_ps(z[v], _mm256_set1_ps(6.0f)), _mm256_set1_ps(0.5f)),
                                               _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
        return;
    default: return;
    }
}

// y[v] = the cell activation of x[v]; y may be x.
AVX2_INLINE void cell_avx2_n(const __m256 *x, __m256 *y, const int nv, int kind) {
    if (kind == 0) { tanh_avx2_n(x, y, nv); return; }
    for (int v = 0; v < nv; v++) y[v] = x[v];
}

AVX2_INLINE __m256 clip_avx2(__m256 s, float clip) {
    const __m256 hi = _mm256_set1_ps(clip), lo = _mm256_set1_ps(-clip);
    s = _mm256_blendv_ps(s, lo, _mm256_cmp_ps(s, lo, _CMP_LT_OQ));
    return _mm256_blendv_ps(s, hi, _mm256_cmp_ps(s, hi, _CMP_GT_OQ));
}

// The forward element-wise pass of nv vectors of 8 units: vector v's gates at z[v] + q·zs, its S_{t−1}, S_t and h
// at cp[v], cb[v], hb[v], its peepholes (when peep) at peep[v] + q·ps; the activated gates written back only when
// `store` (the training stash keeps them; inference does not).
// Peepholes (Gers & Schmidhuber): i and f see S_{t-1}, o sees S_t: z_i += p_i ⊙ S_{t-1}, z_f += p_f ⊙ S_{t-1},
// z_o += p_o ⊙ S_t (a product, then a sum, in every path).
AVX2_INLINE void forward_avx2_n(float *const *z, ptrdiff_t zs, const float *const *cp, float *const *cb,
                                float *const *hb, const int nv, int gate, int cell, float clip,
                                const float *const *peep, ptrdiff_t ps, int store) {
    __m256 c[NV], i[NV], f[NV], g[NV], o[NV], s[NV], t[NV];
    for (int v = 0; v < nv; v++) {
        c[v] = _mm256_loadu_ps(cp[v]);
        i[v] = _mm256_loadu_ps(z[v]); f[v] = _mm256_loadu_ps(z[v] + zs);
        g[v] = _mm256_loadu_ps(z[v] + 2 * zs); o[v] = _mm256_loadu_ps(z[v] + 3 * zs);
        if (peep) {
            i[v] = _mm256_add_ps(i[v], _mm256_mul_ps(_mm256_loadu_ps(peep[v]), c[v]));
            f[v] = _mm256_add_ps(f[v], _mm256_mul_ps(_mm256_loadu_ps(peep[v] + ps), c[v]));
        }
    }
    gate_avx2_n(i, nv, gate);
    gate_avx2_n(f, nv, gate);
    cell_avx2_n(g, g, nv, cell);
    for (int v = 0; v < nv; v++) {
        s[v] = _mm256_add_ps(_mm256_mul_ps(f[v], c[v]), _mm256_mul_ps(i[v], g[v]));
        if (clip > 0.0f) s[v] = clip_avx2(s[v], clip);
        if (peep) o[v] = _mm256_add_ps(o[v], _mm256_mul_ps(_mm256_loadu_ps(peep[v] + 2 * ps), s[v]));
    }
    gate_avx2_n(o, nv, gate);
    cell_avx2_n(s, t, nv, cell);
    for (int v = 0; v < nv; v++) {
        if (store) {
            _mm256_storeu_ps(z[v], i[v]); _mm256_storeu_ps(z[v] + zs, f[v]);
            _mm256_storeu_ps(z[v] + 2 * zs, g[v]); _mm256_storeu_ps(z[v] + 3 * zs, o[v]);
        }
        _mm256_storeu_ps(cb[v], s[v]);
        _mm256_storeu_ps(hb[v], _mm256_mul_ps(o[v], t[v]));
    }
}

// `H` units from z (gate q of unit j at z[q·zs + j]), peepholes at peep[q·ps + j]: 32 units at a time, then 8; the
// rest (returned: where the portable code takes over) is left.
__attribute__((target("avx2,fma")))
static ptrdiff_t forward_row_avx2(float *z, ptrdiff_t zs, const float *cp, float *cb, float *hb, ptrdiff_t H, int gate,
                                  int cell, float clip, const float *peep, ptrdiff_t ps, int store) {
    ptrdiff_t j = 0;
    float *zv[NV], *cbv[NV], *hbv[NV];
    const float *cpv[NV], *pv[NV];
    for (; j + 8 <= H; ) {
        const int nv = j + 32 <= H ? 4 : 1;
        for (int v = 0; v < nv; v++) {
            zv[v] = z + j + 8 * v; cpv[v] = cp + j + 8 * v; cbv[v] = cb + j + 8 * v; hbv[v] = hb + j + 8 * v;
            pv[v] = peep ? peep + j + 8 * v : NULL;
        }
        if (nv == 4) forward_avx2_n(zv, zs, cpv, cbv, hbv, 4, gate, cell, clip, peep ? pv : NULL, ps, store);
        else forward_avx2_n(zv, zs, cpv, cbv, hbv, 1, gate, cell, clip, peep ? pv : NULL, ps, store);
        j += 8 * nv;
    }
    return j;
}
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

// One row of units: AVX2 for whole vectors (unless portable), the portable loop for the rest.
static void forward_row(float *z, ptrdiff_t zs, const float *cp, float *cb, float *hb, ptrdiff_t units, int gate,
                        int cell, float clip, const float *peep, ptrdiff_t ps, int store, int portable) {
    ptrdiff_t from = 0;
#ifdef LSTMK_X86
    if (!portable && lstmk_sgemm_level() >= 2) from = forward_row_avx2(z, zs, cp, cb, hb, units, gate, cell, clip, peep, ps, store);
#endif
    forward_row_portable(z, zs, cp, cb, hb, from, units, gate, cell, clip, peep, ps, store);
    (void)portable;
}

void lstmk_pointwise_forward(float *gates, const float *cprev, float *c, float *h, ptrdiff_t B, ptrdiff_t H,
                             int gate, int cell, float clip, const float *peep, int portable) {
    for (ptrdiff_t b = 0; b < B; b++)
        forward_row(gates + b * 4 * H, H, cprev + b * H, c + b * H, h + b * H, H, gate, cell, clip, peep, H, 1, portable);
}

#ifdef LSTMK_X86
// Rows of 16 units (a group of the gate-interleaved layout), two at a time: four independent vectors. Returns the
// rows done (all but an odd last one).
__attribute__((target("avx2,fma")))
static ptrdiff_t forward_pairs_avx2(float *z, ptrdiff_t ldz, ptrdiff_t zs, float *c, ptrdiff_t ldc, float *h,
                                    ptrdiff_t ldh, ptrdiff_t rows, int gate, int cell, float clip, const float *peep,
                                    ptrdiff_t ps) {
    ptrdiff_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        float *zv[NV], *cbv[NV], *hbv[NV];
        const float *cpv[NV], *pv[NV];
        for (int v = 0; v < NV; v++) {
            const ptrdiff_t row = r + v / 2, j = 8 * (v % 2);
            zv[v] = z + row * ldz + j; cbv[v] = c + row * ldc + j; cpv[v] = cbv[v]; hbv[v] = h + row * ldh + j;
            pv[v] = peep ? peep + j : NULL;
        }
        forward_avx2_n(zv, zs, cpv, cbv, hbv, 4, gate, cell, clip, peep ? pv : NULL, ps, 0);
    }
    return r;
}
#endif

void lstmk_pointwise_forward_units(float *z, ptrdiff_t ldz, ptrdiff_t zs, float *c, ptrdiff_t ldc, float *h,
                                   ptrdiff_t ldh, ptrdiff_t rows, ptrdiff_t units, int gate, int cell, float clip,
                                   const float *peep, ptrdiff_t ps, int portable) {
    ptrdiff_t r = 0;
#ifdef LSTMK_X86
    if (!portable && lstmk_sgemm_level() >= 2 && units == 16)
        r = forward_pairs_avx2(z, ldz, zs, c, ldc, h, ldh, rows, gate, cell, clip, peep, ps);
#endif
    for (; r < rows; r++)
        forward_row(z + r * ldz, zs, c + r * ldc, c + r * ldc, h + r * ldh, units, gate, cell, clip, peep, ps, 0, portable);
}

#ifdef LSTMK_X86
__attribute__((target("avx2,fma")))
static ptrdiff_t activation_avx2(int function, const float *x, float *y, ptrdiff_t n) {
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 v = _mm256_loadu_ps(x + k);
        _mm256_storeu_ps(y + k, function == 0 ? sigmoid_avx2(v) : tanh_avx2(v));
    }
    return k;
}
#endif

void lstmk_activation(int function, const float *x, float *y, ptrdiff_t n, int portable) {
    ptrdiff_t k = 0;
#ifdef LSTMK_X86
    if (!portable && lstmk_sgemm_level() >= 2) k = activation_avx2(function, x, y, n);
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

#ifdef LSTMK_X86
__attribute__((target("avx2,fma")))
static inline __m256 gate_derivative_avx2(__m256 a, int kind) {
    switch (kind) {
    case 0: return _mm256_mul_ps(a, _mm256_sub_ps(_mm256_set1_ps(1.0f), a));
    case 1: {
        const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GT_OQ),
                                            _mm256_cmp_ps(a, _mm256_set1_ps(1.0f), _CMP_LT_OQ));
        return _mm256_and_ps(inside, _mm256_set1_ps(1.0f / 6.0f));
    }
    default: return _mm256_set1_ps(1.0f);
    }
}

__attribute__((target("avx2,fma")))
static ptrdiff_t backward_row_avx2(const float *a, const float *cprev, const float *c, const float *dout,
                                   const float *dcarry, float *dc, float *dz, ptrdiff_t H, int gate, int cell,
                                   float clip, const float *peep) {
    const __m256 one = _mm256_set1_ps(1.0f);
    ptrdiff_t j = 0;
    for (; j + 8 <= H; j += 8) {
        const __m256 i = _mm256_loadu_ps(a + j), f = _mm256_loadu_ps(a + H + j);
        const __m256 g = _mm256_loadu_ps(a + 2 * H + j), o = _mm256_loadu_ps(a + 3 * H + j);
        __m256 dh = _mm256_loadu_ps(dcarry + j);
        if (dout) dh = _mm256_add_ps(_mm256_loadu_ps(dout + j), dh);
        const __m256 s = _mm256_loadu_ps(c + j);
        const __m256 tc = cell == 0 ? tanh_avx2(s) : s;
        const __m256 dzo = _mm256_mul_ps(_mm256_mul_ps(dh, tc), gate_derivative_avx2(o, gate));
        __m256 dho = _mm256_mul_ps(dh, o);
        if (cell == 0) dho = _mm256_mul_ps(dho, _mm256_sub_ps(one, _mm256_mul_ps(tc, tc)));
        __m256 dS = _mm256_add_ps(dho, _mm256_loadu_ps(dc + j));
        if (peep) dS = _mm256_add_ps(dS, _mm256_mul_ps(dzo, _mm256_loadu_ps(peep + 2 * H + j)));
        if (clip > 0.0f) {
            const __m256 held = _mm256_or_ps(_mm256_cmp_ps(s, _mm256_set1_ps(-clip), _CMP_LE_OQ),
                                             _mm256_cmp_ps(s, _mm256_set1_ps(clip), _CMP_GE_OQ));
            dS = _mm256_andnot_ps(held, dS);
        }
        const __m256 dzi = _mm256_mul_ps(_mm256_mul_ps(dS, g), gate_derivative_avx2(i, gate));
        const __m256 dzf = _mm256_mul_ps(_mm256_mul_ps(dS, _mm256_loadu_ps(cprev + j)), gate_derivative_avx2(f, gate));
        _mm256_storeu_ps(dz + j, dzi);
        _mm256_storeu_ps(dz + H + j, dzf);
        __m256 dg = _mm256_mul_ps(dS, i);
        if (cell == 0) dg = _mm256_mul_ps(dg, _mm256_sub_ps(one, _mm256_mul_ps(g, g)));
        _mm256_storeu_ps(dz + 2 * H + j, dg);
        _mm256_storeu_ps(dz + 3 * H + j, dzo);
        __m256 carry = _mm256_mul_ps(dS, f);
        if (peep) {
            carry = _mm256_add_ps(carry, _mm256_mul_ps(dzi, _mm256_loadu_ps(peep + j)));
            carry = _mm256_add_ps(carry, _mm256_mul_ps(dzf, _mm256_loadu_ps(peep + H + j)));
        }
        _mm256_storeu_ps(dc + j, carry);
    }
    return j;
}
#endif

void lstmk_pointwise_backward(const float *gates, const float *cprev, const float *c, const float *dout,
                              const float *dcarry, float *dc, float *dz, ptrdiff_t B, ptrdiff_t H, int gate, int cell,
                              float clip, const float *peep, int portable) {
    for (ptrdiff_t b = 0; b < B; b++) {
        const float *a = gates + b * 4 * H, *cp = cprev + b * H, *s = c + b * H, *dc_in = dcarry + b * H;
        const float *d_out = dout ? dout + b * H : NULL;
        float *d_c = dc + b * H, *d_z = dz + b * 4 * H;
        ptrdiff_t from = 0;
#ifdef LSTMK_X86
        if (!portable && lstmk_sgemm_level() >= 2) from = backward_row_avx2(a, cp, s, d_out, dc_in, d_c, d_z, H, gate, cell, clip, peep);
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

void lstmk_adam(float *p, const float *g, float *m, float *v, ptrdiff_t n, const float *constants, int mode,
                int portable) {
    ptrdiff_t i = 0;
#ifdef LSTMK_X86
    if (!portable && lstmk_sgemm_level() >= 2) i = adam_avx2(p, g, m, v, n, constants, mode);
#endif
    (void)portable;
    adam_portable(p, g, m, v, i, n, constants, mode);
}
