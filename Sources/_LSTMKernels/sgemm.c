// Single-precision GEMM for LSTMKit: B packed into panels of 16 columns, a 6×16 register-blocked micro-kernel
// (12 AVX2 accumulators, 12 FMAs per k), runtime dispatch between AVX2+FMA and portable C.
//
// Determinism: each C element is one chain acc ← fma(a_k, b_k, acc), k ascending, from C or 0. The AVX2 kernel
// does exactly that per lane and the portable kernel per scalar (fmaf is correctly rounded, as is vfmadd), so both
// give the same bits, and so does any split of the columns over threads.

#include "LSTMKernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LSTMK_X86 1
#endif

enum { MR = 6, NR = 16 };

// op(A)[i, k] for rows i0..i0+5 (rows past M repeat the last valid row; their results are never stored).
static inline const float *row_pointer(const float *A, ptrdiff_t rsa, ptrdiff_t i, ptrdiff_t last) {
    return A + (i <= last ? i : last) * rsa;
}

// Copies op(B)[:, j0..j0+15] into a K×16 panel, zero-padding columns past N.
static void pack_panel(ptrdiff_t K, ptrdiff_t n, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *panel) {
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *src = B + k * rsb;
        float *dst = panel + k * NR;
        if (csb == 1 && n == NR) {
            // A plain 64-byte copy; a memcpy call per row of the panel costs more than the copy.
            for (int j = 0; j < NR; j++) dst[j] = src[j];
            continue;
        }
        ptrdiff_t j = 0;
        for (; j < n; j++) dst[j] = src[j * csb];
        for (; j < NR; j++) dst[j] = 0.0f;
    }
}

// Portable micro-kernel: the same chains as the AVX2 one, one scalar at a time.
static void tile_portable(ptrdiff_t K, const float *const *a, ptrdiff_t csa, const float *panel,
                          float *C, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate) {
    float acc[MR][NR];
    for (ptrdiff_t r = 0; r < MR; r++)
        for (ptrdiff_t c = 0; c < NR; c++)
            acc[r][c] = (accumulate && r < m && c < n) ? C[r * ldc + c] : 0.0f;
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *b = panel + k * NR;
        for (ptrdiff_t r = 0; r < MR; r++) {
            float av = a[r][k * csa];
            for (ptrdiff_t c = 0; c < NR; c++) acc[r][c] = fmaf(av, b[c], acc[r][c]);
        }
    }
    for (ptrdiff_t r = 0; r < m; r++)
        for (ptrdiff_t c = 0; c < n; c++) C[r * ldc + c] = acc[r][c];
}

#ifdef LSTMK_X86
__attribute__((target("avx2,fma")))
static void tile_avx2(ptrdiff_t K, const float *const *a, ptrdiff_t csa, const float *panel,
                      float *C, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    float edge[MR][NR];
    if (accumulate) {
        // Start every chain from C (a zero for rows and columns outside the tile, never stored).
        for (ptrdiff_t r = 0; r < MR; r++)
            for (ptrdiff_t c = 0; c < NR; c++) edge[r][c] = (r < m && c < n) ? C[r * ldc + c] : 0.0f;
        c00 = _mm256_loadu_ps(edge[0]); c01 = _mm256_loadu_ps(edge[0] + 8);
        c10 = _mm256_loadu_ps(edge[1]); c11 = _mm256_loadu_ps(edge[1] + 8);
        c20 = _mm256_loadu_ps(edge[2]); c21 = _mm256_loadu_ps(edge[2] + 8);
        c30 = _mm256_loadu_ps(edge[3]); c31 = _mm256_loadu_ps(edge[3] + 8);
        c40 = _mm256_loadu_ps(edge[4]); c41 = _mm256_loadu_ps(edge[4] + 8);
        c50 = _mm256_loadu_ps(edge[5]); c51 = _mm256_loadu_ps(edge[5] + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (ptrdiff_t k = 0; k < K; k++) {
        const __m256 b0 = _mm256_loadu_ps(panel + k * NR);
        const __m256 b1 = _mm256_loadu_ps(panel + k * NR + 8);
        const ptrdiff_t o = k * csa;
        __m256 av = _mm256_broadcast_ss(a0 + o);
        c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a1 + o);
        c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a2 + o);
        c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a3 + o);
        c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a4 + o);
        c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a5 + o);
        c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    if (m == MR && n == NR) {
        _mm256_storeu_ps(C + 0 * ldc, c00); _mm256_storeu_ps(C + 0 * ldc + 8, c01);
        _mm256_storeu_ps(C + 1 * ldc, c10); _mm256_storeu_ps(C + 1 * ldc + 8, c11);
        _mm256_storeu_ps(C + 2 * ldc, c20); _mm256_storeu_ps(C + 2 * ldc + 8, c21);
        _mm256_storeu_ps(C + 3 * ldc, c30); _mm256_storeu_ps(C + 3 * ldc + 8, c31);
        _mm256_storeu_ps(C + 4 * ldc, c40); _mm256_storeu_ps(C + 4 * ldc + 8, c41);
        _mm256_storeu_ps(C + 5 * ldc, c50); _mm256_storeu_ps(C + 5 * ldc + 8, c51);
        return;
    }
    _mm256_storeu_ps(edge[0], c00); _mm256_storeu_ps(edge[0] + 8, c01);
    _mm256_storeu_ps(edge[1], c10); _mm256_storeu_ps(edge[1] + 8, c11);
    _mm256_storeu_ps(edge[2], c20); _mm256_storeu_ps(edge[2] + 8, c21);
    _mm256_storeu_ps(edge[3], c30); _mm256_storeu_ps(edge[3] + 8, c31);
    _mm256_storeu_ps(edge[4], c40); _mm256_storeu_ps(edge[4] + 8, c41);
    _mm256_storeu_ps(edge[5], c50); _mm256_storeu_ps(edge[5] + 8, c51);
    for (ptrdiff_t r = 0; r < m; r++)
        for (ptrdiff_t c = 0; c < n; c++) C[r * ldc + c] = edge[r][c];
}
#endif

int lstmk_sgemm_level(void) {
#ifdef LSTMK_X86
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 2 : 0;
    }
    return level;
#else
    return 0;
#endif
}

// One row of C (M = 1, B with contiguous rows): c[j] ← fma(a_k, B[k, j], c[j]) for k ascending, vectorized over
// j. The same chains as the tiled kernel, without computing five unused rows (batch-1 streaming).
static void row_portable(ptrdiff_t N, ptrdiff_t K, const float *a, ptrdiff_t csa, const float *B, ptrdiff_t rsb,
                         float *c, int accumulate) {
    if (!accumulate) memset(c, 0, (size_t)N * sizeof(float));
    for (ptrdiff_t k = 0; k < K; k++) {
        const float av = a[k * csa];
        const float *b = B + k * rsb;
        for (ptrdiff_t j = 0; j < N; j++) c[j] = fmaf(av, b[j], c[j]);
    }
}

#ifdef LSTMK_X86
__attribute__((target("avx2,fma")))
static void row_avx2(ptrdiff_t N, ptrdiff_t K, const float *a, ptrdiff_t csa, const float *B, ptrdiff_t rsb,
                     float *c, int accumulate) {
    if (!accumulate) memset(c, 0, (size_t)N * sizeof(float));
    ptrdiff_t j0 = 0;
    // Blocks of 32 columns kept in registers across all k, then the tail one column at a time.
    for (; j0 + 32 <= N; j0 += 32) {
        __m256 c0 = _mm256_loadu_ps(c + j0), c1 = _mm256_loadu_ps(c + j0 + 8);
        __m256 c2 = _mm256_loadu_ps(c + j0 + 16), c3 = _mm256_loadu_ps(c + j0 + 24);
        for (ptrdiff_t k = 0; k < K; k++) {
            const __m256 av = _mm256_broadcast_ss(a + k * csa);
            const float *b = B + k * rsb + j0;
            c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b), c0);
            c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 8), c1);
            c2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 16), c2);
            c3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 24), c3);
        }
        _mm256_storeu_ps(c + j0, c0); _mm256_storeu_ps(c + j0 + 8, c1);
        _mm256_storeu_ps(c + j0 + 16, c2); _mm256_storeu_ps(c + j0 + 24, c3);
    }
    for (; j0 + 8 <= N; j0 += 8) {
        __m256 c0 = _mm256_loadu_ps(c + j0);
        for (ptrdiff_t k = 0; k < K; k++)
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k * csa), _mm256_loadu_ps(B + k * rsb + j0), c0);
        _mm256_storeu_ps(c + j0, c0);
    }
    for (; j0 < N; j0++) {
        float acc = c[j0];
        for (ptrdiff_t k = 0; k < K; k++) acc = fmaf(a[k * csa], B[k * rsb + j0], acc);
        c[j0] = acc;
    }
}
#endif

// Cache blocking (GotoBLAS order): a block of B, KC rows × NC columns, is packed once into 16-column panels that
// stay in L2; every 6-row tile of A is then used against all panels of the block while it sits in L1. Blocking k
// keeps the chains intact: after the first KC block a chain continues from the partial sum stored in C, and a
// float stored and loaded is the same float.
enum { KC = 256, NC = 256 };

// Per-thread packing buffers, allocated on a thread's first product and freed when the thread exits: no
// allocation per call, which matters for the per-step products of the recurrence.
#include <pthread.h>
typedef struct { float *b; float *a; size_t a_capacity; } workspace;
static pthread_key_t workspace_key;
static pthread_once_t workspace_once = PTHREAD_ONCE_INIT;
static void free_workspace(void *p) {
    workspace *w = (workspace *)p;
    free(w->b);
    free(w->a);
    free(w);
}
static void make_workspace_key(void) { pthread_key_create(&workspace_key, free_workspace); }
static workspace *thread_workspace(void) {
    pthread_once(&workspace_once, make_workspace_key);
    workspace *w = (workspace *)pthread_getspecific(workspace_key);
    if (!w) {
        w = (workspace *)calloc(1, sizeof(workspace));
        if (!w) abort();
        w->b = (float *)aligned_alloc(64, (size_t)KC * NC * sizeof(float));
        w->a = (float *)aligned_alloc(64, (size_t)KC * MR * sizeof(float));
        if (!w->b || !w->a) abort();
        w->a_capacity = (size_t)KC * MR;
        pthread_setspecific(workspace_key, w);
    }
    return w;
}

// Every 6-row tile of A against the panels of one (pc, jc) block: columns from..<to, whose panel for column j
// starts at panels + (j − jc)·kc. Shared by the packing and the prepacked entry points.
static void multiply_block(int level, workspace *w, ptrdiff_t M, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                           ptrdiff_t pc, ptrdiff_t kc, const float *panels, ptrdiff_t jc, ptrdiff_t from,
                           ptrdiff_t to, float *C, ptrdiff_t ldc, int start_from_c) {
    for (ptrdiff_t i0 = 0; i0 < M; i0 += MR) {
        const ptrdiff_t m = M - i0 < MR ? M - i0 : MR;
        const float *a[MR];
        for (ptrdiff_t r = 0; r < MR; r++) a[r] = row_pointer(A, rsa, i0 + r, M - 1) + pc * csa;
        // The tile of A is copied into a k-major MR × kc block: one contiguous stream for the kernel instead of six
        // rows (or, for a transposed A such as δZᵀ in δW = δZᵀ·X, a new cache line every k), which at the large row
        // strides of these products fall into the same L1 sets.
        for (ptrdiff_t k = 0; k < kc; k++)
            for (ptrdiff_t r = 0; r < MR; r++) w->a[k * MR + r] = a[r][k * csa];
        for (ptrdiff_t r = 0; r < MR; r++) a[r] = w->a + r;
        for (ptrdiff_t j = from; j < to; j += NR) {
            const ptrdiff_t n = to - j < NR ? to - j : NR;
            const float *panel = panels + (j - jc) * kc;
            float *c = C + i0 * ldc + j;
#ifdef LSTMK_X86
            if (level == 2) { tile_avx2(kc, a, MR, panel, c, ldc, m, n, start_from_c); continue; }
#endif
            tile_portable(kc, a, MR, panel, c, ldc, m, n, start_from_c);
        }
    }
}

static void sgemm(int level, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                  const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                  const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                  float *C, ptrdiff_t ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (M == 1 && csb == 1 && K > 0) {
#ifdef LSTMK_X86
        if (level == 2) { row_avx2(N, K, A, csa, B, rsb, C, accumulate); return; }
#endif
        row_portable(N, K, A, csa, B, rsb, C, accumulate);
        return;
    }
    if (K <= 0) {
        if (!accumulate)
            for (ptrdiff_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    workspace *w = thread_workspace();
    for (ptrdiff_t jc = 0; jc < N; jc += NC) {
        const ptrdiff_t nc = N - jc < NC ? N - jc : NC;
        for (ptrdiff_t pc = 0; pc < K; pc += KC) {
            const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
            const int start_from_c = accumulate || pc > 0;
            // Pack B[pc : pc+kc, jc : jc+nc] as ceil(nc/16) panels of kc × 16.
            for (ptrdiff_t jp = 0; jp < nc; jp += NR) {
                const ptrdiff_t n = nc - jp < NR ? nc - jp : NR;
                pack_panel(kc, n, B + pc * rsb + (jc + jp) * csb, rsb, csb, w->b + jp * kc);
            }
            multiply_block(level, w, M, A, rsa, csa, pc, kc, w->b, jc, jc, jc + nc, C, ldc, start_from_c);
        }
    }
}

void lstmk_sgemm(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                 const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                 float *C, ptrdiff_t ldc, int accumulate) {
    sgemm(lstmk_sgemm_level(), M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
}

void lstmk_sgemm_portable(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                          const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                          float *C, ptrdiff_t ldc, int accumulate) {
    sgemm(0, M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
}

// ---- Products with B packed once and reused (the recurrent weights across all time steps) ----
//
// Layout: for each NC-column block starting at jc, for each KC-row block starting at pc, ceil(nc/16) panels of
// kc × 16 (zero-padded). A panel at global column j (a multiple of 16) inside block jc starts at
// jc·K + pc·wpad(jc) + (j − jc)·kc, where wpad(jc) is the block's width rounded up to 16.

static ptrdiff_t block_width_padded(ptrdiff_t N, ptrdiff_t jc) {
    const ptrdiff_t nc = N - jc < NC ? N - jc : NC;
    return (nc + NR - 1) / NR * NR;
}

size_t lstmk_sgemm_packed_size(ptrdiff_t N, ptrdiff_t K) {
    if (N <= 0 || K <= 0) return 1;
    const ptrdiff_t last = (N - 1) / NC * NC;
    return (size_t)(last * K + block_width_padded(N, last) * K);
}

void lstmk_sgemm_pack_b(ptrdiff_t N, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed) {
    for (ptrdiff_t jc = 0; jc < N; jc += NC) {
        const ptrdiff_t nc = N - jc < NC ? N - jc : NC, wpad = block_width_padded(N, jc);
        for (ptrdiff_t pc = 0; pc < K; pc += KC) {
            const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
            for (ptrdiff_t jp = 0; jp < nc; jp += NR) {
                const ptrdiff_t n = nc - jp < NR ? nc - jp : NR;
                pack_panel(kc, n, B + pc * rsb + (jc + jp) * csb, rsb, csb, packed + jc * K + pc * wpad + jp * kc);
            }
        }
    }
}

void lstmk_sgemm_prepacked(ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                           const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                           float *C, ptrdiff_t ldc, int accumulate) {
    if (M <= 0 || j1 <= j0) return;
    if (K <= 0) {
        if (!accumulate)
            for (ptrdiff_t i = 0; i < M; i++) memset(C + i * ldc + j0, 0, (size_t)(j1 - j0) * sizeof(float));
        return;
    }
    const int level = lstmk_sgemm_level();
    workspace *w = thread_workspace();
    for (ptrdiff_t jc = j0 / NC * NC; jc < j1; jc += NC) {
        const ptrdiff_t wpad = block_width_padded(N, jc);
        const ptrdiff_t from = j0 > jc ? j0 : jc, to = j1 < jc + NC ? j1 : jc + NC;
        for (ptrdiff_t pc = 0; pc < K; pc += KC) {
            const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
            const int start_from_c = accumulate || pc > 0;
            multiply_block(level, w, M, A, rsa, csa, pc, kc, packed + jc * K + pc * wpad, jc, from, to, C, ldc,
                           start_from_c);
        }
    }
}
