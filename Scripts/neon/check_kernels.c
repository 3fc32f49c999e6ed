// Checks the AArch64 (NEON) kernels of Sources/_LSTMKernels bit for bit against a plain fmaf triple loop and the
// portable path, on awkward shapes, every transpose, with and without accumulation, plain and prepacked, M = 1.
// Run by Scripts/neon/check.sh (cross-compiled, under qemu-aarch64 on an x86-64 machine, or natively on AArch64).
#include "LSTMKernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long state = 88172645463325252ull;
static float next(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (float)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void reference(int M, int N, int K, const float *A, long rsa, long csa, const float *B, long rsb, long csb,
                      float *C, long ldc, int accumulate) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = accumulate ? C[i * ldc + j] : 0.0f;
            for (int k = 0; k < K; k++) acc = fmaf(A[i * rsa + k * csa], B[k * rsb + j * csb], acc);
            C[i * ldc + j] = acc;
        }
}

int main(void) {
    printf("kernel level %d (1 = NEON)\n", lstmk_sgemm_level());
    const int shapes[][3] = {{1, 1, 1}, {3, 17, 1}, {17, 3, 255}, {255, 17, 3}, {7, 255, 33}, {1, 1023, 5},
                             {37, 40, 1023}, {6, 16, 1024}, {13, 33, 300}, {151, 20, 300}, {1, 100, 600}, {64, 96, 70}};
    long failures = 0, checked = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++) {
                    const long lda = ta ? M + 1 : K + 2, ldb = tb ? K + 3 : N + 1, ldc = N + 5;
                    float *A = malloc(sizeof(float) * (ta ? K : M) * lda), *B = malloc(sizeof(float) * (tb ? N : K) * ldb);
                    float *C0 = malloc(sizeof(float) * M * ldc), *R = malloc(sizeof(float) * M * ldc);
                    float *F = malloc(sizeof(float) * M * ldc), *P = malloc(sizeof(float) * M * ldc);
                    for (long i = 0; i < (ta ? K : M) * lda; i++) A[i] = next();
                    for (long i = 0; i < (tb ? N : K) * ldb; i++) B[i] = next();
                    for (long i = 0; i < M * ldc; i++) C0[i] = next();
                    const long rsa = ta ? 1 : lda, csa = ta ? lda : 1, rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
                    memcpy(R, C0, sizeof(float) * M * ldc);
                    reference(M, N, K, A, rsa, csa, B, rsb, csb, R, ldc, acc);
                    memcpy(F, C0, sizeof(float) * M * ldc);
                    lstmk_sgemm(M, N, K, A, rsa, csa, B, rsb, csb, F, ldc, acc);
                    memcpy(P, C0, sizeof(float) * M * ldc);
                    float *packed = malloc(sizeof(float) * lstmk_sgemm_packed_size(N, K));
                    lstmk_sgemm_pack_b(N, K, B, rsb, csb, packed);
                    lstmk_sgemm_prepacked(M, 0, N, N, K, A, rsa, csa, packed, P, ldc, acc, NULL);
                    checked += 2;
                    if (memcmp(R, F, sizeof(float) * M * ldc) != 0) {
                        failures++;
                        printf("MISMATCH plain M=%d N=%d K=%d ta=%d tb=%d acc=%d\n", M, N, K, ta, tb, acc);
                    }
                    if (memcmp(R, P, sizeof(float) * M * ldc) != 0) {
                        failures++;
                        printf("MISMATCH prepacked M=%d N=%d K=%d ta=%d tb=%d acc=%d\n", M, N, K, ta, tb, acc);
                    }
                    free(A); free(B); free(C0); free(R); free(F); free(P); free(packed);
                }
    }
    printf("%ld products checked bit for bit, %ld mismatches\n", checked, failures);
    return failures == 0 ? 0 : 1;
}
