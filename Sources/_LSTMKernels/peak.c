// A loop of independent fused multiply-adds that keeps both FMA pipes busy: what one core can do at best,
// measured in the same run as the benchmarks it is the yardstick for.
#include "LSTMKernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static float peak_avx2(long iterations) {
    // 10 independent chains of 8 lanes: enough to cover the FMA latency (4 cycles) on two pipes.
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(_mm256_add_ps(a6, a7), _mm256_add_ps(a8, a9))));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

// The same with zmm registers: on CPUs with two 512-bit FMA units this doubles the peak; on Zen 4 (512-bit ops
// in two halves) it measures the same as AVX2.
__attribute__((target("avx512f")))
static float peak_avx512(long iterations) {
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(_mm512_add_ps(a6, a7), _mm512_add_ps(a8, a9))));
    return _mm512_reduce_add_ps(s);
}
#endif

double lstmk_fma_peak_run(long iterations, float *sink) {
#if defined(__x86_64__) || defined(_M_X64)
    if (lstmk_sgemm_level() == 3) {
        *sink = peak_avx512(iterations);
        return (double)iterations * 10 * 16 * 2;
    }
    if (lstmk_sgemm_level() == 2) {
        *sink = peak_avx2(iterations);
        return (double)iterations * 10 * 8 * 2;
    }
#endif
    float a[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (long i = 0; i < iterations; i++)
        for (int k = 0; k < 8; k++) a[k] = a[k] * 0.999999f + 1e-7f;
    *sink = a[0];
    return (double)iterations * 8 * 2;
}
