// The innermost numeric kernels of LSTMKit, in C so that they can carry per-function target attributes
// (AVX2 + FMA) without unsafe build flags; everything around them is Swift.
#ifndef LSTMKIT_KERNELS_H
#define LSTMKIT_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Which implementation lstmk_sgemm uses on this CPU: 2 = AVX2 + FMA, 0 = portable C.
int lstmk_sgemm_level(void);

/// C (M, N) = op(A)·op(B), or C += op(A)·op(B) when accumulate != 0, all row-major.
/// op(A)[i, k] = A[i*rsa + k*csa]; op(B)[k, j] = B[k*rsb + j*csb]; C[i, j] = C[i*ldc + j].
/// Every element is computed as acc = fma(op(A)[i,k], op(B)[k,j], acc) for k = 0, 1, …, K-1, starting from
/// C[i,j] (accumulate) or 0, whatever the implementation, tile position or M and N: the result is the same bits on
/// every CPU and for every split of the columns.
void lstmk_sgemm(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                 const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                 float *C, ptrdiff_t ldc, int accumulate);

/// lstmk_sgemm with the portable kernel whatever the CPU: the tests check it gives the same bits as the AVX2 one.
void lstmk_sgemm_portable(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                          const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                          float *C, ptrdiff_t ldc, int accumulate);

/// Runs `iterations` rounds of independent FMAs with the best instructions this CPU has; returns the number of
/// floating-point operations done (2 per FMA). `sink` receives a result so the loop is not optimized away.
double lstmk_fma_peak_run(long iterations, float *sink);

#ifdef __cplusplus
}
#endif

#endif
