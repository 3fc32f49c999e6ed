// Single-precision GEMM for LSTMKit: B packed into panels of 16 columns, a 6×16 register-blocked micro-kernel
// (12 AVX2 accumulators, 12 FMAs per k), runtime dispatch between AVX2+FMA and portable C.
//
// Determinism: each C element is one chain acc ← fma(a_k, b_k, acc), k ascending, from C or 0. The AVX2 kernel
// does exactly that per lane and the portable kernel per scalar (fmaf is correctly rounded, as is vfmadd), so both
// give the same bits, and so does any split of the columns over threads.

#include "LSTMKernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LSTMK_X86 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>
#define LSTMK_NEON 1
#endif

enum { MR = 6, NR = 16, MR512 = 8 };

// op(A)[i, k] for rows i0..i0+5 (rows past M repeat the last valid row; their results are never stored).
static inline const float *row_pointer(const float *A, ptrdiff_t rsa, ptrdiff_t i, ptrdiff_t last) {
    return A + (i <= last ? i : last) * rsa;
}

#ifdef LSTMK_X86
// Four rows s0..s3, contiguous in k, into columns 0..3 of a k-major block d (ld floats per k), k = 0 ..< k4 (a
// multiple of 4): SSE 4×4 transposes (every x86-64 CPU). Packing both operands uses it.
static inline void transpose_rows4(const float *s0, const float *s1, const float *s2, const float *s3, ptrdiff_t k4,
                                   float *d, ptrdiff_t ld) {
    for (ptrdiff_t k = 0; k < k4; k += 4) {
        __m128 x0 = _mm_loadu_ps(s0 + k), x1 = _mm_loadu_ps(s1 + k), x2 = _mm_loadu_ps(s2 + k), x3 = _mm_loadu_ps(s3 + k);
        _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
        _mm_storeu_ps(d + k * ld, x0);
        _mm_storeu_ps(d + (k + 1) * ld, x1);
        _mm_storeu_ps(d + (k + 2) * ld, x2);
        _mm_storeu_ps(d + (k + 3) * ld, x3);
    }
}
#endif

// Copies op(B)[:, j0..j0+15] into a K×16 panel, zero-padding columns past N.
static void pack_panel(ptrdiff_t K, ptrdiff_t n, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *panel) {
    ptrdiff_t k0 = 0;
#ifdef LSTMK_X86
    if (rsb == 1 && n == NR) {
        // B transposed (the weights W (4H, K) as Wᵀ): column j of the panel is row j of W, contiguous in k. Four
        // rows and four k at a time instead of one strided float at a time.
        k0 = K / 4 * 4;
        for (ptrdiff_t j = 0; j < NR; j += 4)
            transpose_rows4(B + j * csb, B + (j + 1) * csb, B + (j + 2) * csb, B + (j + 3) * csb, k0, panel + j, NR);
    }
#endif
    for (ptrdiff_t k = k0; k < K; k++) {
        const float *src = B + k * rsb;
        float *dst = panel + k * NR;
        if (csb == 1 && n == NR) {
            // A plain 64-byte copy (a fixed size, so no call: the compiler moves it in vectors).
            memcpy(dst, src, NR * sizeof(float));
            continue;
        }
        ptrdiff_t j = 0;
        for (; j < n; j++) dst[j] = src[j * csb];
        for (; j < NR; j++) dst[j] = 0.0f;
    }
}

// Packs the kc × n block of op(B) at B into ceil(n/16) panels of kc × 16, side by side from dst.
static void pack_block(ptrdiff_t kc, ptrdiff_t n, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *dst) {
    for (ptrdiff_t jp = 0; jp < n; jp += NR)
        pack_panel(kc, n - jp < NR ? n - jp : NR, B + jp * csb, rsb, csb, dst + jp * kc);
}

static ptrdiff_t padded_width(ptrdiff_t N) { return (N + NR - 1) / NR * NR; }

// Portable micro-kernel: the same chains as the AVX2 one, one scalar at a time. `a` is a packed tile of A: K groups
// of MR floats (k-major).
static void tile_portable(ptrdiff_t K, const float *a, ptrdiff_t astride, const float *panel,
                          float *C, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate) {
    float acc[MR][NR];
    for (ptrdiff_t r = 0; r < MR; r++)
        for (ptrdiff_t c = 0; c < NR; c++)
            acc[r][c] = (accumulate && r < m && c < n) ? C[r * ldc + c] : 0.0f;
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *b = panel + k * NR;
        for (ptrdiff_t r = 0; r < MR; r++) {
            float av = a[k * astride + r];
            for (ptrdiff_t c = 0; c < NR; c++) acc[r][c] = fmaf(av, b[c], acc[r][c]);
        }
    }
    for (ptrdiff_t r = 0; r < m; r++)
        for (ptrdiff_t c = 0; c < n; c++) C[r * ldc + c] = acc[r][c];
}

#ifdef LSTMK_X86
// AVX2: a ROWS×16 tile, 2·ROWS accumulators, 2 loads + ROWS broadcasts per 2·ROWS FMAs. One body for two row
// counts: the 6-row tile (12 accumulators), and a 4-row one for the last rows of a block when there are at most 4
// (M = 64 is 10 × 6 + 4; M = 32 ends in 2): 8 accumulators still cover the FMA latency on two pipes, where the 6-row
// tile would run a third or two thirds of its FMAs on rows that do not exist. `a` holds 6 rows per k (packed, or the
// source); the 4-row tile reads the first 4. Every element is the same chain in both, so the bits do not change.
// As the AVX-512 tile (below), it adds the bias as it loads C, fetches the next panel into L2 and the next tile's C
// into L1 a line at a time over its k loop. Until 2026-12-07 it did none of these (multiply_block added the bias in
// a pass of its own and fetched C all at once before the tile); on the Ice Lake host, capped at AVX2, in one process
// alternated with that tile: `large` inference 550 → 461 ms (faster in 20 of 20), training 1549 → 1411 (8 of 8),
// `charrnn` inference 276 → 250 (17 of 20), training 848 → 773 (10 of 10), `bidir` inference 63.6 → 58.5 (28 of 30),
// `small` training 7.58 → 7.28 (77 of 100), the same bits. The pointers step per k: indexed by k·stride (an imul per
// k, with 12 FMAs per k and 15 of the 16 registers taken) the loop ran slower than the old one (small inference
// faster in only 20–34 of 200).
// One k of the AVX2 tile: the panel's two vectors at pk, ROWS broadcasts from ak.
#define LSTMK_AVX2_K(ROWS)                                                                                          \
    {                                                                                                               \
        const __m256 b0 = _mm256_loadu_ps(pk), b1 = _mm256_loadu_ps(pk + 8);                                        \
        for (int r = 0; r < ROWS; r++) {                                                                            \
            const __m256 av = _mm256_broadcast_ss(ak + r);                                                          \
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);                                                         \
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);                                                         \
        }                                                                                                           \
    }
#define LSTMK_TILE_AVX2(NAME, ROWS)                                                                                 \
    __attribute__((target("avx2,fma")))                                                                             \
    static void NAME(ptrdiff_t K, const float *a, ptrdiff_t astride, const float *panel, float *C, ptrdiff_t ldc,  \
                     ptrdiff_t m, ptrdiff_t n, int accumulate, const float *bias, const char *pf,                   \
                     ptrdiff_t pf_lines, const char *const *cpf, ptrdiff_t cpf_n) {                                 \
        __m256 acc[ROWS][2];                                                                                        \
        float edge[ROWS][NR];                                                                                       \
        const int full = m == ROWS && n == NR;                                                                      \
        if (!accumulate) {                                                                                          \
            for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();                             \
        } else if (full) {                                                                                          \
            const __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();                                   \
            const __m256 b1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();                               \
            for (int r = 0; r < ROWS; r++) {                                                                        \
                acc[r][0] = _mm256_loadu_ps(C + r * ldc);                                                           \
                acc[r][1] = _mm256_loadu_ps(C + r * ldc + 8);                                                       \
                /* C + b rounded once, as the separate pass z[j] + b[j] does: the same chains' start. */           \
                if (bias) { acc[r][0] = _mm256_add_ps(acc[r][0], b0); acc[r][1] = _mm256_add_ps(acc[r][1], b1); }  \
            }                                                                                                       \
        } else {                                                                                                    \
            /* Every chain starts from C (+ b) (a zero for rows and columns outside the tile, never stored). */    \
            for (int r = 0; r < ROWS; r++)                                                                          \
                for (int c = 0; c < NR; c++)                                                                        \
                    edge[r][c] = (r < m && c < n) ? (bias ? C[r * ldc + c] + bias[c] : C[r * ldc + c]) : 0.0f;      \
            for (int r = 0; r < ROWS; r++) {                                                                        \
                acc[r][0] = _mm256_loadu_ps(edge[r]);                                                               \
                acc[r][1] = _mm256_loadu_ps(edge[r] + 8);                                                           \
            }                                                                                                       \
        }                                                                                                           \
        /* Four k per iteration, the prefetches tested once per four, as in the AVX-512 tile: one line of the     \
           next panel into L2 every other k (see multiply_block), the next tile's lines of C into L1 one every    \
           fourth k. */                                                                                             \
        ptrdiff_t k = 0;                                                                                            \
        const float *pk = panel, *ak = a;                                                                           \
        for (; k + 4 <= K; k += 4) {                                                                                \
            const ptrdiff_t line = k >> 1, q = k >> 2;                                                              \
            if (line < pf_lines) _mm_prefetch(pf + line * 64, _MM_HINT_T1);                                         \
            if (line + 1 < pf_lines) _mm_prefetch(pf + (line + 1) * 64, _MM_HINT_T1);                               \
            if (q < cpf_n) _mm_prefetch(cpf[q], _MM_HINT_T0);                                                       \
            for (int u = 0; u < 4; u++, pk += NR, ak += astride) LSTMK_AVX2_K(ROWS)                                 \
        }                                                                                                           \
        for (; k < K; k++, pk += NR, ak += astride) {                                                               \
            if (!(k & 1) && (k >> 1) < pf_lines) _mm_prefetch(pf + (k >> 1) * 64, _MM_HINT_T1);                    \
            LSTMK_AVX2_K(ROWS)                                                                                      \
        }                                                                                                           \
        for (ptrdiff_t l = K / 4; l < cpf_n; l++) _mm_prefetch(cpf[l], _MM_HINT_T0);                                \
        if (full) {                                                                                                 \
            for (int r = 0; r < ROWS; r++) {                                                                        \
                _mm256_storeu_ps(C + r * ldc, acc[r][0]);                                                           \
                _mm256_storeu_ps(C + r * ldc + 8, acc[r][1]);                                                       \
            }                                                                                                       \
            return;                                                                                                 \
        }                                                                                                           \
        for (int r = 0; r < ROWS; r++) {                                                                            \
            _mm256_storeu_ps(edge[r], acc[r][0]);                                                                   \
            _mm256_storeu_ps(edge[r] + 8, acc[r][1]);                                                               \
        }                                                                                                           \
        for (ptrdiff_t r = 0; r < m; r++)                                                                           \
            for (ptrdiff_t c = 0; c < n; c++) C[r * ldc + c] = edge[r][c];                                          \
    }
LSTMK_TILE_AVX2(tile_avx2, MR)
LSTMK_TILE_AVX2(tile_avx2_4, 4)
#undef LSTMK_AVX2_K

// AVX-512: an 8×48 tile (24 zmm accumulators) over three adjacent 16-column panels, 3 loads + 8 broadcasts per 24
// FMAs; `a` holds 8 rows per k (stride `astride` per k). The same chains as the other kernels, so the same bits. On
// Zen 4 a zmm FMA is two ymm halves (no more FLOP/s than AVX2), but the tile halves the loads and the traffic from
// L2 per multiply-add. Edges use masked loads and stores.
// Until 2026-12-07 the tile was 12×32 (2 loads + 12 broadcasts per 24 FMAs); on Ice Lake (a 2-core VM, AVX-512
// FMA probe 164–169 GFLOP/s per core) it ran 79 % of the probe in a 1536³ product, where an 8×48 tile over the
// same packed data ran 7–20 % faster in each of six alternated runs (98 % of the probe in L1 and L2).
// One body for two row counts and two widths: 8 and 4 rows (M = 64 is 8 × 8, M = 4 one 4-row tile), three panels or
// two (a 64-column group of the gate-interleaved weights is 32 + 32: a 16-column tile there would run two thirds of
// its loads for a third of the FMAs). Every element is the same chain in every variant, so the bits do not change.
#define LSTMK_TILE_AVX512(NAME, ROWS, PANELS)                                                                       \
    __attribute__((target("avx512f")))                                                                              \
    static void NAME(ptrdiff_t K, const float *a, ptrdiff_t astride, const float *const *p, float *C,              \
                     ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate, const float *bias, const char *pf,    \
                     ptrdiff_t pf_lines, const char *const *cpf, ptrdiff_t cpf_n) {                                 \
        __m512 acc[ROWS][PANELS];                                                                                   \
        __mmask16 mask[PANELS];                                                                                     \
        __m512 bias_v[PANELS];                                                                                      \
        const float *panel[PANELS];                                                                                 \
        for (int c = 0; c < PANELS; c++) {                                                                          \
            const ptrdiff_t left = n - c * NR;                                                                      \
            mask[c] = (__mmask16)(left >= NR ? 0xFFFF : left > 0 ? (1u << left) - 1 : 0);                           \
            bias_v[c] = bias ? _mm512_maskz_loadu_ps(mask[c], bias + c * NR) : _mm512_setzero_ps();                 \
            panel[c] = p[c];                                                                                        \
        }                                                                                                           \
        for (int r = 0; r < ROWS; r++) {                                                                            \
            for (int c = 0; c < PANELS; c++) {                                                                      \
                if (accumulate && r < m && bias) {                                                                  \
                    /* C + b rounded once, as the separate pass z[j] + b[j] does: the same chains' start. */       \
                    acc[r][c] = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[c], C + r * ldc + c * NR), bias_v[c]);     \
                } else if (accumulate && r < m) {                                                                   \
                    acc[r][c] = _mm512_maskz_loadu_ps(mask[c], C + r * ldc + c * NR);                               \
                } else {                                                                                            \
                    acc[r][c] = _mm512_setzero_ps();                                                                \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        /* Four k per iteration, the prefetches tested once per four: one line of the next panels into L2 every   \
           other k (see multiply_block), the next tile's lines of C into L1 one every fourth k. */                 \
        ptrdiff_t k = 0;                                                                                            \
        for (; k + 4 <= K; k += 4) {                                                                                \
            const ptrdiff_t line = k >> 1, q = k >> 2;                                                              \
            if (line < pf_lines) _mm_prefetch(pf + line * 64, _MM_HINT_T1);                                         \
            if (line + 1 < pf_lines) _mm_prefetch(pf + (line + 1) * 64, _MM_HINT_T1);                               \
            if (q < cpf_n) _mm_prefetch(cpf[q], _MM_HINT_T0);                                                       \
            for (int u = 0; u < 4; u++) {                                                                           \
                __m512 b[PANELS];                                                                                   \
                for (int c = 0; c < PANELS; c++) b[c] = _mm512_loadu_ps(panel[c] + (k + u) * NR);                   \
                const float *ak = a + (k + u) * astride;                                                            \
                for (int r = 0; r < ROWS; r++) {                                                                    \
                    const __m512 av = _mm512_set1_ps(ak[r]);                                                        \
                    for (int c = 0; c < PANELS; c++) acc[r][c] = _mm512_fmadd_ps(av, b[c], acc[r][c]);              \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (; k < K; k++) {                                                                                        \
            if (!(k & 1) && (k >> 1) < pf_lines) _mm_prefetch(pf + (k >> 1) * 64, _MM_HINT_T1);                    \
            __m512 b[PANELS];                                                                                       \
            for (int c = 0; c < PANELS; c++) b[c] = _mm512_loadu_ps(panel[c] + k * NR);                             \
            const float *ak = a + k * astride;                                                                      \
            for (int r = 0; r < ROWS; r++) {                                                                        \
                const __m512 av = _mm512_set1_ps(ak[r]);                                                            \
                for (int c = 0; c < PANELS; c++) acc[r][c] = _mm512_fmadd_ps(av, b[c], acc[r][c]);                  \
            }                                                                                                       \
        }                                                                                                           \
        for (ptrdiff_t l = K / 4; l < cpf_n; l++) _mm_prefetch(cpf[l], _MM_HINT_T0);                                \
        for (int r = 0; r < ROWS; r++) {                                                                            \
            if (r >= m) break;                                                                                      \
            for (int c = 0; c < PANELS; c++) _mm512_mask_storeu_ps(C + r * ldc + c * NR, mask[c], acc[r][c]);       \
        }                                                                                                           \
    }
LSTMK_TILE_AVX512(tile_avx512_8x48, 8, 3)
LSTMK_TILE_AVX512(tile_avx512_4x48, 4, 3)
LSTMK_TILE_AVX512(tile_avx512_8x32, 8, 2)
LSTMK_TILE_AVX512(tile_avx512_4x32, 4, 2)
#endif

#ifdef LSTMK_NEON
// NEON (every AArch64 CPU, Apple silicon included): the same 6×16 tile, 24 four-lane accumulators; FMLA by lane
// is a fused multiply-add per lane, so the chains and the bits are those of the other kernels.
static void tile_neon(ptrdiff_t K, const float *a, ptrdiff_t astride, const float *panel,
                      float *C, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate) {
    float32x4_t acc[MR][4];
    float edge[MR][NR];
    const int full = m == MR && n == NR;
    for (int r = 0; r < MR; r++) {
        for (int q = 0; q < 4; q++) {
            if (!accumulate) { acc[r][q] = vdupq_n_f32(0.0f); continue; }
            if (full) { acc[r][q] = vld1q_f32(C + r * ldc + 4 * q); continue; }
            for (int c = 0; c < 4; c++) {
                const int col = 4 * q + c;
                edge[r][col] = (r < m && col < n) ? C[r * ldc + col] : 0.0f;
            }
            acc[r][q] = vld1q_f32(&edge[r][4 * q]);
        }
    }
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *b = panel + k * NR;
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
        const float *ak = a + k * astride;
        const float32x4_t a03 = vld1q_f32(ak);
        const float32x2_t a45 = vld1_f32(ak + 4);
#define LSTMK_ROW(r, fma, vec, lane) \
        acc[r][0] = fma(acc[r][0], b0, vec, lane); acc[r][1] = fma(acc[r][1], b1, vec, lane); \
        acc[r][2] = fma(acc[r][2], b2, vec, lane); acc[r][3] = fma(acc[r][3], b3, vec, lane);
        LSTMK_ROW(0, vfmaq_laneq_f32, a03, 0) LSTMK_ROW(1, vfmaq_laneq_f32, a03, 1)
        LSTMK_ROW(2, vfmaq_laneq_f32, a03, 2) LSTMK_ROW(3, vfmaq_laneq_f32, a03, 3)
        LSTMK_ROW(4, vfmaq_lane_f32, a45, 0) LSTMK_ROW(5, vfmaq_lane_f32, a45, 1)
#undef LSTMK_ROW
    }
    for (int r = 0; r < MR; r++) {
        if (full) {
            for (int q = 0; q < 4; q++) vst1q_f32(C + r * ldc + 4 * q, acc[r][q]);
            continue;
        }
        if (r >= m) break;
        for (int q = 0; q < 4; q++) vst1q_f32(&edge[r][4 * q], acc[r][q]);
        for (ptrdiff_t c = 0; c < n; c++) C[r * ldc + c] = edge[r][c];
    }
}
#endif

// The level is found once; threads that race to find it compute the same value, and the atomic makes that race
// well defined (ThreadSanitizer flagged the plain static).
static _Atomic int detected_level = -1;

static int detect_level(void) {
    const char *cap = getenv("LSTMKIT_KERNEL");
#if defined(LSTMK_NEON)
    return (cap && strcmp(cap, "portable") == 0) ? 0 : 1;
#elif defined(LSTMK_X86)
    __builtin_cpu_init();
    int best = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = 2;
    if (best == 2 && __builtin_cpu_supports("avx512f")) best = 3;
    // LSTMKIT_KERNEL=portable or =avx2 caps the choice (to compare kernels, or to avoid AVX-512 clocks).
    if (cap && strcmp(cap, "portable") == 0) best = 0;
    if (cap && strcmp(cap, "avx2") == 0 && best > 2) best = 2;
    return best;
#else
    (void)cap;
    return 0;
#endif
}

int lstmk_sgemm_level(void) {
    int level = atomic_load_explicit(&detected_level, memory_order_relaxed);
    if (level < 0) {
        level = detect_level();
        atomic_store_explicit(&detected_level, level, memory_order_relaxed);
    }
    return level;
}

// A requested level this CPU can run: itself if available, else the best below it (NEON is level 1, only on
// AArch64; AVX2 2 and AVX-512 3, only on x86-64).
static int clamp_level(int level) {
    const int best = lstmk_sgemm_level();
#ifdef LSTMK_NEON
    return level >= 1 ? best : 0;
#else
    return level < best ? (level == 1 ? 0 : level) : best;
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

// Cache blocking (GotoBLAS/BLIS order): a block of B, KC rows × up to NC columns, is packed into 16-column panels
// (L3); a block of A, MC rows × KC, into 6-row k-major tiles (L2), once per block of B; each 16-column panel of B
// (KC × 16 floats, 16 KB) then sits in L1 while every tile of the A block streams past it. Blocking k keeps the
// chains intact: after the first KC block a chain continues from the partial sum stored in C, and a float stored
// and loaded is the same float.
enum { KC = 256, NC = 4096, MC = 144 };
// How many k ahead the transposed A rows are fetched while packing (see pack_a_tiles).
enum { A_PREFETCH_K = 6 };

// Packed A tiles lie mr·kc + A_TILE_PAD floats apart: at mr·kc alone (8 KB with 8 rows and KC = 256) every tile
// starts in the same L1 set, and packing a transposed A, which writes one k of every tile before the next k, kept
// evicting the lines it was filling (small's δW pair, 256 × (64 + 128) × 1568 per thread: 126–138 → 136–142 GFLOP/s
// with the pad over five runs each, one thread, binaries alternated).
enum { A_TILE_PAD = 16 };

// Per-thread packing buffers, allocated on a thread's first product and freed when the thread exits: no
// allocation per call, which matters for the per-step products of the recurrence.
#include <pthread.h>
typedef struct { float *b; float *a; } workspace;
static pthread_key_t workspace_key;
static pthread_once_t workspace_once = PTHREAD_ONCE_INIT;
static void free_workspace(void *p) {
    workspace *w = (workspace *)p;
    free(w->b);
    free(w->a);
    free(w);
}
static void make_workspace_key(void) { pthread_key_create(&workspace_key, free_workspace); }
static workspace *thread_workspace(int with_b) {
    pthread_once(&workspace_once, make_workspace_key);
    workspace *w = (workspace *)pthread_getspecific(workspace_key);
    if (!w) {
        w = (workspace *)calloc(1, sizeof(workspace));
        if (!w) abort();
        w->a = (float *)aligned_alloc(64, (size_t)(KC * MC + (MC / 4 + 1) * A_TILE_PAD) * sizeof(float));
        if (!w->a) abort();
        pthread_setspecific(workspace_key, w);
    }
    if (with_b && !w->b) {
        w->b = (float *)aligned_alloc(64, (size_t)KC * NC * sizeof(float));
        if (!w->b) abort();
    }
    return w;
}

// Rows of A per tile for a kernel level.
static ptrdiff_t tile_rows(int level) { return level == 3 ? MR512 : MR; }

// How a block of mc rows is cut into tiles: tiles of mr rows, except that a block that would end in a thin tile ends
// in two narrower ones: with 6-row tiles, a last tile of 1 or 2 rows becomes two tiles of 4 (M = 32: 6 + 6 + 6 + 6 +
// 4 + 4 rows, 32 computed, instead of 5 × 6 + a 4-row tile holding 2, 34 computed). The AVX-512 tiles have 8 rows
// (M = 16, 32, 64 whole tiles); a last tile of 1 to 4 rows runs the 4-row kernel. Each element's chain is the same
// in every tile shape, so the cut does not change the bits.
typedef struct { ptrdiff_t tiles, wide, narrow; } tile_plan;

static tile_plan plan_tiles(ptrdiff_t mc, ptrdiff_t mr) {
    const ptrdiff_t whole = (mc + mr - 1) / mr;
    if (mr == MR && mc > MR && (mc % MR == 1 || mc % MR == 2)) return (tile_plan){whole, whole - 2, 4};
    return (tile_plan){whole, whole, mr};
}

// Tile i of a plan: its first row and its row count (at most mr).
static inline ptrdiff_t plan_start(tile_plan p, ptrdiff_t mr, ptrdiff_t i) {
    return i <= p.wide ? i * mr : p.wide * mr + (i - p.wide) * p.narrow;
}

static inline ptrdiff_t plan_rows(tile_plan p, ptrdiff_t mr, ptrdiff_t mc, ptrdiff_t i) {
    const ptrdiff_t rows = mc - plan_start(p, mr, i), most = i < p.wide ? mr : p.narrow;
    return rows < most ? rows : most;
}

// Rows of a block of mc rows that its tiles read (from the block's first): the last tile's start plus what its
// kernel reads — the AVX-512 kernels 4 or 8 rows by the tile's row count, the AVX2 ones 4 or 6, the portable and
// NEON ones always 6. A transposed A is read in place only when that stays inside its M rows (with 8-row tiles, any
// M that is a multiple of 8, such as δW_hh = δZᵀ·H's 4H rows).
static ptrdiff_t tile_reach(int level, ptrdiff_t mc) {
    const ptrdiff_t mr = tile_rows(level);
    const tile_plan plan = plan_tiles(mc, mr);
    const ptrdiff_t i = plan.tiles - 1, t = plan_start(plan, mr, i), m = plan_rows(plan, mr, mc, i);
    const ptrdiff_t read = level == 3 ? (m <= 4 ? 4 : MR512) : level == 2 ? (m <= 4 ? 4 : MR) : MR;
    return t + read;
}

// sums[ic + i] += op(A)[ic + i, k] for i < mc, k = pc ..< pc + kc ascending: each row one chain of adds. A transposed
// (stored K × M, as δZᵀ always is) is the column sums of its stored rows: lstmk_column_sums, in registers.
static void block_sums(const float *A, ptrdiff_t rsa, ptrdiff_t csa, ptrdiff_t ic, ptrdiff_t mc, ptrdiff_t pc,
                       ptrdiff_t kc, float *sums) {
    if (rsa == 1) {
        lstmk_column_sums(A + pc * csa + ic, kc, csa, mc, sums + ic, 0);
        return;
    }
    for (ptrdiff_t k = pc; k < pc + kc; k++)
        for (ptrdiff_t i = ic; i < ic + mc; i++) sums[i] = sums[i] + A[i * rsa + k * csa];
}

// sum[i] += row[i] for i < n: 16 lanes at a time where the 8-row (AVX-512) tiles run, one add per element either way.
#ifdef LSTMK_X86
__attribute__((target("avx512f")))
static void add_row_avx512(float *sum, const float *row, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i += 16) {
        const __mmask16 mask = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(sum + i, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, sum + i),
                                                           _mm512_maskz_loadu_ps(mask, row + i)));
    }
}

// 8 lanes at a time at the AVX2 level.
__attribute__((target("avx2")))
static void add_row_avx2(float *sum, const float *row, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(sum + i, _mm256_add_ps(_mm256_loadu_ps(sum + i), _mm256_loadu_ps(row + i)));
    for (; i < n; i++) sum[i] = sum[i] + row[i];
}
#endif

// The width is the level's (the level the product's tiles run at): the same adds, one per element, at any width.
static inline void add_row(float *sum, const float *row, ptrdiff_t n, int level) {
#ifdef LSTMK_X86
    if (level == 3) { add_row_avx512(sum, row, n); return; }
    if (level == 2) { add_row_avx2(sum, row, n); return; }
#endif
    (void)level;
    for (ptrdiff_t i = 0; i < n; i++) sum[i] = sum[i] + row[i];
}

// Copies rows ic..<ic+mc, columns pc..<pc+kc of op(A) into mr-row tiles (6 for the AVX2 and portable kernels, 8
// for AVX-512), each k-major (mr floats per k): one contiguous stream for the kernel instead of mr rows (or, for a
// transposed A such as δZᵀ in δW = δZᵀ·X, a new cache line every k), which at the large row strides of these
// products fall into the same L1 sets. Rows past M repeat the last valid row; their results are never stored.
static inline __attribute__((always_inline)) void pack_a_tiles(ptrdiff_t M, const float *A, ptrdiff_t rsa,
                                                               ptrdiff_t csa, ptrdiff_t ic, ptrdiff_t mc, ptrdiff_t pc,
                                                               ptrdiff_t kc, float *dst, const ptrdiff_t mr,
                                                               int level, float *sums) {
    // Tile i (rows from plan_start) at dst + i·mr·kc, mr rows per k whatever its row count.
    const tile_plan plan = plan_tiles(mc, mr);
    if (rsa == 1 && ic + (mc + mr - 1) / mr * mr <= M) {
        // A transposed (stored K × M): row k of the stored matrix holds op(A)[ic.., k] contiguously, so read it
        // once and scatter it over the tiles.
        for (ptrdiff_t k = 0; k < kc; k++) {
            const float *src = A + (pc + k) * csa + ic;
            // The stored rows are |csa| floats apart (2 KB for small's δZ, 8 KB for charrnn's) and read backwards
            // by the δW products (negative csa): each k a few lines of a new 4 KB page, which the hardware
            // prefetchers do not follow across pages, from L3 or memory (δZ is 3.2 MB for small, 105 MB for
            // large). Fetch the rows A_PREFETCH_K ahead: the copy's first load had been half of a_block's time;
            // small's training step 5.47 → 5.36 ms (faster in 198 of 300 alternated steps), charrnn 543 → 522 ms
            // (19 of 30), large 950 → 916 ms (8 of 12) on the Ice Lake host.
            if (k + A_PREFETCH_K < kc) {
                // Every line the row touches, from the one holding its first float.
                const float *ahead = src + A_PREFETCH_K * csa;
                const char *end = (const char *)(ahead + mc);
                for (const char *line = (const char *)((uintptr_t)ahead & ~(uintptr_t)63); line < end; line += 64)
                    __builtin_prefetch(line, 0, 3);
            }
            for (ptrdiff_t i = 0; i < plan.tiles; i++) {
                const ptrdiff_t t = plan_start(plan, mr, i);
                // mr is a constant here (the function is inlined per tile height): a fixed-size copy, not a loop
                // of scalar moves.
                memcpy(dst + i * (mr * kc + A_TILE_PAD) + k * mr, src + t, (size_t)mr * sizeof(float));
            }
            // The row sums ride along while the stored row is in L1 (see lstmk_sgemm_pair).
            if (sums) add_row(sums + ic, src, mc, level);
        }
        return;
    }
    if (sums) block_sums(A, rsa, csa, ic, mc, pc, kc, sums);
    for (ptrdiff_t i = 0; i < plan.tiles; i++) {
        const ptrdiff_t t = plan_start(plan, mr, i);
        const float *a[MR512];
        for (ptrdiff_t r = 0; r < mr; r++) a[r] = row_pointer(A, rsa, ic + t + r, M - 1) + pc * csa;
        float *d = dst + i * (mr * kc + A_TILE_PAD);
        if (csa == 1) {
            ptrdiff_t r0 = 0;
#ifdef LSTMK_X86
            // Rows in fours, 4 k at a time: a quarter of the stores of moving one float at a time.
            const ptrdiff_t k4 = kc / 4 * 4;
            for (; r0 + 4 <= mr; r0 += 4) {
                transpose_rows4(a[r0], a[r0 + 1], a[r0 + 2], a[r0 + 3], k4, d + r0, mr);
                for (ptrdiff_t k = k4; k < kc; k++)
                    for (ptrdiff_t r = r0; r < r0 + 4; r++) d[k * mr + r] = a[r][k];
            }
#endif
            for (ptrdiff_t k = 0; k < kc; k++)
                for (ptrdiff_t r = r0; r < mr; r++) d[k * mr + r] = a[r][k];
        } else {
            for (ptrdiff_t k = 0; k < kc; k++)
                for (ptrdiff_t r = 0; r < mr; r++) d[k * mr + r] = a[r][k * csa];
        }
    }
}

static void pack_a(int level, ptrdiff_t M, const float *A, ptrdiff_t rsa, ptrdiff_t csa, ptrdiff_t ic, ptrdiff_t mc,
                   ptrdiff_t pc, ptrdiff_t kc, float *dst, float *sums) {
    if (tile_rows(level) == MR512) pack_a_tiles(M, A, rsa, csa, ic, mc, pc, kc, dst, MR512, level, sums);
    else pack_a_tiles(M, A, rsa, csa, ic, mc, pc, kc, dst, MR, level, sums);
}

// C[i, j] += b[j] for rows 0..<rows and columns j0..<j1: the one rounding a bias takes before the product's chains
// start from C (the AVX-512 tiles do the same add as they load C; every other path calls this first).
static void add_bias(float *C, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t j0, ptrdiff_t j1, const float *bias) {
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t j = j0; j < j1; j++) C[r * ldc + j] = C[r * ldc + j] + bias[j];
}

// Columns of the tile at a column with `left` columns to go: 16 for the AVX2, NEON and portable kernels; for
// AVX-512 three panels (48), except that a run of 4, 7, ... panels takes two first so that none ends in a tile of one
// panel (a 64-column group of the gate-interleaved weights is 32 + 32, 112 columns 32 + 48 + 32).
static inline ptrdiff_t tile_columns(int level, ptrdiff_t left) {
    if (level != 3) return left < NR ? left : NR;
    const ptrdiff_t panels = (left + NR - 1) / NR;
    const ptrdiff_t take = panels >= 4 && panels % 3 == 1 ? 2 : panels < 3 ? panels : 3;
    return take * NR < left ? take * NR : left;
}

// The A block (mc rows from row ic of C, cut by plan_tiles: tile i at apacked + i·tstride + (its first row)·rstride,
// stride astride per k) against the 16-column panels for columns from..<to; the panel for column j starts at
// panels + (j − j_base)·kc.
static void multiply_block(int level, const float *apacked, ptrdiff_t astride, ptrdiff_t tstride, ptrdiff_t rstride,
                           ptrdiff_t mc, ptrdiff_t kc, const float *panels, ptrdiff_t j_base, ptrdiff_t from,
                           ptrdiff_t to, float *C, ptrdiff_t ldc, int start_from_c, const float *bias,
                           ptrdiff_t prefetch_to) {
    const ptrdiff_t mr = tile_rows(level);
    if (bias && level < 2) {
        // C += b first (the AVX-512 and AVX2 tiles add it as they load C, with the same one rounding).
        add_bias(C, ldc, mc, from, to, bias);
        bias = NULL;
    }
    const tile_plan plan = plan_tiles(mc, mr);
    for (ptrdiff_t j = from, n; j < to; j += n) {
        n = tile_columns(level, to - j);
        const float *panel = panels + (j - j_base) * kc;
        // Prepacked weights larger than L2 (a charrnn core's half of W_hh is 2 MB) come from L3 panel by panel, and
        // the first tile on a panel group needs up to 192 B per 12 cycles, more than one core's L3 bandwidth: the
        // tiles on this group fetch the next one (columns below prefetch_to) into L2, a share each, one line every
        // other k.
        const ptrdiff_t after = j + n, width = after < to ? tile_columns(level, to - after) : 3 * NR;
        const ptrdiff_t next = after < prefetch_to ? (prefetch_to - after < width ? prefetch_to - after : width) : 0;
        const char *next_panel = (const char *)(panel + padded_width(n) * kc);
        const ptrdiff_t next_lines = (next + NR - 1) / NR * NR * kc * (ptrdiff_t)sizeof(float) / 64;
        for (ptrdiff_t i = 0; i < plan.tiles; i++) {
            const ptrdiff_t t = plan_start(plan, mr, i), m = plan_rows(plan, mr, mc, i);
            float *c = C + t * ldc + j;
            const float *a = apacked + i * tstride + t * rstride;
            // The next tile's rows of C are fetched while this tile runs: its chains start from them, and a C far
            // larger than the caches would otherwise stall every tile on its loads. The AVX-512 and AVX2 tiles
            // spread them over their k loops: issued all at once here they stalled on full fill buffers (73 % of
            // this function's own time, 4.4 % of bidir inference).
            const char *cpf[3 * MR512];
            ptrdiff_t cpf_n = 0;
            for (ptrdiff_t r = t + m; r < t + m + mr && r < mc; r++) {
                cpf[cpf_n++] = (const char *)(C + r * ldc + j);
                if (n > 2 * NR) cpf[cpf_n++] = (const char *)(C + r * ldc + j + NR);
                cpf[cpf_n++] = (const char *)(C + r * ldc + j + n - 1);
            }
#ifdef LSTMK_X86
            if (level >= 2) {
                // The tile's share of the next panel's lines (see above) and its columns of the bias.
                const float *b = bias ? bias + j : NULL;
                const ptrdiff_t l0 = next_lines * i / plan.tiles, l1 = next_lines * (i + 1) / plan.tiles;
                const char *pf = next_panel + l0 * 64;
                if (level == 2) {
                    if (m <= 4) tile_avx2_4(kc, a, astride, panel, c, ldc, m, n, start_from_c, b, pf, l1 - l0, cpf, cpf_n);
                    else tile_avx2(kc, a, astride, panel, c, ldc, m, n, start_from_c, b, pf, l1 - l0, cpf, cpf_n);
                    continue;
                }
                // Panels past the tile's columns are not read: their (masked-off) loads read the first.
                const float *p[3] = {panel, n > NR ? panel + NR * kc : panel, n > 2 * NR ? panel + 2 * NR * kc : panel};
                if (n > 2 * NR) {
                    if (m <= 4) tile_avx512_4x48(kc, a, astride, p, c, ldc, m, n, start_from_c, b, pf, l1 - l0, cpf, cpf_n);
                    else tile_avx512_8x48(kc, a, astride, p, c, ldc, m, n, start_from_c, b, pf, l1 - l0, cpf, cpf_n);
                } else {
                    if (m <= 4) tile_avx512_4x32(kc, a, astride, p, c, ldc, m, n, start_from_c, b, pf, l1 - l0, cpf, cpf_n);
                    else tile_avx512_8x32(kc, a, astride, p, c, ldc, m, n, start_from_c, b, pf, l1 - l0, cpf, cpf_n);
                }
                continue;
            }
#endif
            for (ptrdiff_t l = 0; l < cpf_n; l++) __builtin_prefetch(cpf[l], 1, 3);
#ifdef LSTMK_NEON
            if (level == 1) { tile_neon(kc, a, astride, panel, c, ldc, m, n, start_from_c); continue; }
#endif
            tile_portable(kc, a, astride, panel, c, ldc, m, n, start_from_c);
        }
    }
}

// The A block as the kernel reads it: packed tiles (stride mr per k, kc·mr per tile), or, for a transposed A whose
// rows are all present (stored K × M: a tile's values at k are contiguous), the source itself (stride csa per k,
// mr floats per tile): no copy. Only when the product's columns (`width`, both B blocks of a pair) fit one tile
// (≤ 48) and rows are at most 2 KB apart. A narrow product's packing costs about as much as its multiply-adds, but
// in place each k of A is a line of its own, at most two to a 4 KB page, which no prefetcher follows across pages:
// on the Ice Lake host the tiles stalled on those loads and wider products ran faster packed — small's δW pair
// (256 × (64 + 128) × 1568 per thread, rows 2 KB apart) 84 → 120 GFLOP/s, 512×64×1600 69 → 82 (one thread,
// alternated in one process) — while N = 48 and below still ran faster in place (89 vs 78 and 90 vs 71 GFLOP/s with
// rows 2 KB and 512 B apart). With rows farther apart (8 KB for δW_ih with H = 512) every k falls into the same few
// L1 sets, evicting the B panel, and packing wins at any width.
static const float *a_block(int level, ptrdiff_t M, const float *A, ptrdiff_t rsa, ptrdiff_t csa, ptrdiff_t ic,
                            ptrdiff_t mc, ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t width, float *work, ptrdiff_t *astride,
                            ptrdiff_t *tstride, ptrdiff_t *rstride, float *sums) {
    const ptrdiff_t mr = tile_rows(level);
    // |csa|: the δW products run their rows last to first (negative strides, see LSTMPasses.swift).
    if (rsa == 1 && width <= 3 * NR && (csa < 0 ? -csa : csa) <= 512 && ic + tile_reach(level, mc) <= M) {
        *astride = csa;
        *tstride = 0;
        *rstride = 1;
        if (sums) block_sums(A, rsa, csa, ic, mc, pc, kc, sums);
        return A + pc * csa + ic;
    }
    pack_a(level, M, A, rsa, csa, ic, mc, pc, kc, work, sums);
    *astride = mr;
    *tstride = mr * kc + A_TILE_PAD;
    *rstride = 0;
    return work;
}

static void sgemm(int level, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                  const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                  const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                  float *C, ptrdiff_t ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (M == 1 && csb == 1 && K > 0) {
#ifdef LSTMK_X86
        if (level >= 2) { row_avx2(N, K, A, csa, B, rsb, C, accumulate); return; }
#endif
        row_portable(N, K, A, csa, B, rsb, C, accumulate);
        return;
    }
    if (K <= 0) {
        if (!accumulate)
            for (ptrdiff_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    workspace *w = thread_workspace(1);
    for (ptrdiff_t jc = 0; jc < N; jc += NC) {
        const ptrdiff_t nc = N - jc < NC ? N - jc : NC;
        for (ptrdiff_t pc = 0; pc < K; pc += KC) {
            const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
            const int start_from_c = accumulate || pc > 0;
            // Pack B[pc : pc+kc, jc : jc+nc] as ceil(nc/16) panels of kc × 16.
            pack_block(kc, nc, B + pc * rsb + jc * csb, rsb, csb, w->b);
            for (ptrdiff_t ic = 0; ic < M; ic += MC) {
                const ptrdiff_t mc = M - ic < MC ? M - ic : MC;
                ptrdiff_t astride, tstride, rstride;
                const float *a = a_block(level, M, A, rsa, csa, ic, mc, pc, kc, nc, w->a, &astride, &tstride, &rstride,
                                         NULL);
                multiply_block(level, a, astride, tstride, rstride, mc, kc, w->b, jc, jc, jc + nc, C + ic * ldc, ldc,
                               start_from_c, NULL, 0);
            }
        }
    }
}

void lstmk_sgemm(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                 const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                 float *C, ptrdiff_t ldc, int accumulate) {
    sgemm(lstmk_sgemm_level(), M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
}

// sgemm's loops for two products that share A (one block of N each, side by side in the packing buffer): every
// block of A is packed (or read in place) once and multiplied against both, each element the same chain as sgemm's.
// Only while both blocks of B together stay within 1 MB (1024 columns of KC rows), half of a 2 MB L2: `large`'s pair
// (512 + 1024 columns, 1.5 MB) ran slower than its two products (2 of 10 alternated pairs faster), the main job's
// (320 and 512) and charrnn's (592 and 1024) faster — measured on a host with 2 MB of L2 per core. Again on the Ice
// Lake host (1.25 MB), one thread, alternated in one process: 1024 × (512 + 512) × 3200 faster paired in 10 of 12,
// (65 + 512) 12 of 12, 512 × (256 + 256) × 2048 13 of 16; past the bound, (512 + 1024) and (512 + 768) slower
// paired (2 of 8 each). With `sums`, each row of op(A) is summed into it as its blocks are packed (one chain of adds
// per row, k ascending: the bits of lstmk_column_sums over δZ's rows), instead of a pass of its own over A.
void lstmk_sgemm_pair(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                      ptrdiff_t N1, const float *B1, ptrdiff_t rsb1, ptrdiff_t csb1, float *C1, ptrdiff_t ldc1,
                      ptrdiff_t N2, const float *B2, ptrdiff_t rsb2, ptrdiff_t csb2, float *C2, ptrdiff_t ldc2,
                      int accumulate, float *sums) {
    const int level = lstmk_sgemm_level();
    const ptrdiff_t n1 = padded_width(N1);
    if (M <= 1 || K <= 0 || N1 <= 0 || N2 <= 0 || n1 + N2 > 1024) {
        sgemm(level, M, N1, K, A, rsa, csa, B1, rsb1, csb1, C1, ldc1, accumulate);
        sgemm(level, M, N2, K, A, rsa, csa, B2, rsb2, csb2, C2, ldc2, accumulate);
        if (sums && M > 0 && K > 0) block_sums(A, rsa, csa, 0, M, 0, K, sums);
        return;
    }
    workspace *w = thread_workspace(1);
    for (ptrdiff_t pc = 0; pc < K; pc += KC) {
        const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
        const int start_from_c = accumulate || pc > 0;
        float *second = w->b + n1 * kc;
        pack_block(kc, N1, B1 + pc * rsb1, rsb1, csb1, w->b);
        pack_block(kc, N2, B2 + pc * rsb2, rsb2, csb2, second);
        for (ptrdiff_t ic = 0; ic < M; ic += MC) {
            const ptrdiff_t mc = M - ic < MC ? M - ic : MC;
            ptrdiff_t astride, tstride, rstride;
            const float *a = a_block(level, M, A, rsa, csa, ic, mc, pc, kc, N1 + N2,
                                     w->a, &astride, &tstride, &rstride, sums);
            multiply_block(level, a, astride, tstride, rstride, mc, kc, w->b, 0, 0, N1, C1 + ic * ldc1, ldc1,
                           start_from_c, NULL, 0);
            multiply_block(level, a, astride, tstride, rstride, mc, kc, second, 0, 0, N2, C2 + ic * ldc2, ldc2,
                           start_from_c, NULL, 0);
        }
    }
}

void lstmk_sgemm_portable(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                          const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                          float *C, ptrdiff_t ldc, int accumulate) {
    sgemm(0, M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
}

// ---- Products with B packed once and reused (the recurrent weights across all time steps) ----
//
// Layout: for each KC-row block starting at pc, ceil(N/16) panels of kc × 16 (zero-padded); the panel at column j
// (a multiple of 16) of block pc starts at pc·Npad + j·kc, Npad = N rounded up to 16.

size_t lstmk_sgemm_packed_size(ptrdiff_t N, ptrdiff_t K) {
    if (N <= 0 || K <= 0) return 1;
    return (size_t)(padded_width(N) * K);
}

void lstmk_sgemm_pack_b(ptrdiff_t N, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed) {
    lstmk_sgemm_pack_b_columns(N, K, B, rsb, csb, packed, 0, N);
}

void lstmk_sgemm_pack_b_columns(ptrdiff_t N, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed,
                                ptrdiff_t j0, ptrdiff_t j1) {
    const ptrdiff_t npad = padded_width(N);
    if (j1 > N) j1 = N;
    for (ptrdiff_t pc = 0; pc < K; pc += KC) {
        const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
        for (ptrdiff_t j = j0; j < j1; j += NR) {
            const ptrdiff_t n = N - j < NR ? N - j : NR;
            pack_panel(kc, n, B + pc * rsb + j * csb, rsb, csb, packed + pc * npad + j * kc);
        }
    }
}

// One row of C (M = 1, batch-1 streaming) against packed panels: c[j] ← fma(a_k, B[k, j], c[j]), k ascending — the
// chains of the tiled kernel. Four panels (64 columns, eight accumulators) at a time, each read as one sequential
// stream, instead of a walk down the rows of a plain B whose stride is a page or more.
static void row_prepacked_portable(ptrdiff_t from, ptrdiff_t to, ptrdiff_t kc, const float *a, const float *panels,
                                   float *c, int start_from_c) {
    for (ptrdiff_t j = from; j < to; j += NR) {
        const ptrdiff_t n = to - j < NR ? to - j : NR;
        const float *panel = panels + j * kc;
        float acc[NR];
        for (ptrdiff_t q = 0; q < NR; q++) acc[q] = (start_from_c && q < n) ? c[j + q] : 0.0f;
        for (ptrdiff_t k = 0; k < kc; k++)
            for (ptrdiff_t q = 0; q < NR; q++) acc[q] = fmaf(a[k], panel[k * NR + q], acc[q]);
        for (ptrdiff_t q = 0; q < n; q++) c[j + q] = acc[q];
    }
}

#ifdef LSTMK_X86
__attribute__((target("avx2,fma")))
static void row_prepacked_avx2(ptrdiff_t from, ptrdiff_t to, ptrdiff_t kc, const float *a, const float *panels,
                               float *c, int start_from_c) {
    ptrdiff_t j = from;
    for (; j + 4 * NR <= to; j += 4 * NR) {
        const float *p0 = panels + j * kc, *p1 = p0 + NR * kc, *p2 = p1 + NR * kc, *p3 = p2 + NR * kc;
        __m256 c0, c1, c2, c3, c4, c5, c6, c7;
        if (start_from_c) {
            c0 = _mm256_loadu_ps(c + j); c1 = _mm256_loadu_ps(c + j + 8);
            c2 = _mm256_loadu_ps(c + j + 16); c3 = _mm256_loadu_ps(c + j + 24);
            c4 = _mm256_loadu_ps(c + j + 32); c5 = _mm256_loadu_ps(c + j + 40);
            c6 = _mm256_loadu_ps(c + j + 48); c7 = _mm256_loadu_ps(c + j + 56);
        } else {
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _mm256_setzero_ps();
        }
        for (ptrdiff_t k = 0; k < kc; k++) {
            const __m256 av = _mm256_broadcast_ss(a + k);
            c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p0 + k * NR), c0);
            c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p0 + k * NR + 8), c1);
            c2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p1 + k * NR), c2);
            c3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p1 + k * NR + 8), c3);
            c4 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p2 + k * NR), c4);
            c5 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p2 + k * NR + 8), c5);
            c6 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p3 + k * NR), c6);
            c7 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p3 + k * NR + 8), c7);
        }
        _mm256_storeu_ps(c + j, c0); _mm256_storeu_ps(c + j + 8, c1);
        _mm256_storeu_ps(c + j + 16, c2); _mm256_storeu_ps(c + j + 24, c3);
        _mm256_storeu_ps(c + j + 32, c4); _mm256_storeu_ps(c + j + 40, c5);
        _mm256_storeu_ps(c + j + 48, c6); _mm256_storeu_ps(c + j + 56, c7);
    }
    for (; j < to; j += NR) {
        const ptrdiff_t n = to - j < NR ? to - j : NR;
        const float *p0 = panels + j * kc;
        float edge[NR];
        for (ptrdiff_t q = 0; q < NR; q++) edge[q] = (start_from_c && q < n) ? c[j + q] : 0.0f;
        __m256 c0 = _mm256_loadu_ps(edge), c1 = _mm256_loadu_ps(edge + 8);
        for (ptrdiff_t k = 0; k < kc; k++) {
            const __m256 av = _mm256_broadcast_ss(a + k);
            c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p0 + k * NR), c0);
            c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(p0 + k * NR + 8), c1);
        }
        _mm256_storeu_ps(edge, c0); _mm256_storeu_ps(edge + 8, c1);
        for (ptrdiff_t q = 0; q < n; q++) c[j + q] = edge[q];
    }
}
#endif


#ifdef LSTMK_X86
// AVX-512: eight panels (128 columns, eight chains: the FMA latency times two pipes) at a time, then four, the rest
// by the AVX2 kernel; the same chains. Half the loads of the AVX2 kernel for the same bytes: weights in L2 (a
// stream of H = 128, 1×512×193) come 21 % faster (3.77 → 2.99 µs); from L3 the rate is the cache's either way.
__attribute__((target("avx512f")))
static void row_prepacked_avx512(ptrdiff_t from, ptrdiff_t to, ptrdiff_t kc, const float *a, const float *panels,
                                 float *c, int start_from_c) {
    ptrdiff_t j = from;
#define LSTMK_ROW512(PANELS)                                                                                        \
    for (; j + PANELS * NR <= to; j += PANELS * NR) {                                                               \
        const float *p = panels + j * kc;                                                                           \
        __m512 acc[PANELS];                                                                                         \
        for (int q = 0; q < PANELS; q++)                                                                            \
            acc[q] = start_from_c ? _mm512_loadu_ps(c + j + q * NR) : _mm512_setzero_ps();                          \
        for (ptrdiff_t k = 0; k < kc; k++) {                                                                        \
            const __m512 av = _mm512_set1_ps(a[k]);                                                                 \
            for (int q = 0; q < PANELS; q++)                                                                        \
                acc[q] = _mm512_fmadd_ps(av, _mm512_loadu_ps(p + q * NR * kc + k * NR), acc[q]);                    \
        }                                                                                                           \
        for (int q = 0; q < PANELS; q++) _mm512_storeu_ps(c + j + q * NR, acc[q]);                                  \
    }
    LSTMK_ROW512(8)
    LSTMK_ROW512(4)
#undef LSTMK_ROW512
    if (j < to) row_prepacked_avx2(j, to, kc, a, panels, c, start_from_c);
}
#endif

#ifdef LSTMK_X86
// ROWS rows of A (stride lda; rows of C stride ldc) against PANELS panels at a time, in vectors V of VW lanes (a
// panel is NR / VW vectors wide): each weight vector loaded once for every row, each element's chain the one-row
// kernel's (start from C or zero, then fma over k ascending). The body of rows_prepacked_avx2 and _avx512.
#define LSTMK_ROWS(V, VW, LOADU, STOREU, SET1, FMADD, ZERO, ROWS, PANELS)                                           \
    for (; j + PANELS * NR <= to; j += PANELS * NR) {                                                               \
        enum { PER = NR / VW };                                                                                     \
        const float *p = panels + j * kc;                                                                           \
        V acc[ROWS][PANELS * PER];                                                                                  \
        for (int r = 0; r < ROWS; r++)                                                                              \
            for (int q = 0; q < PANELS * PER; q++)                                                                  \
                acc[r][q] = start_from_c ? LOADU(c + r * ldc + j + q * VW) : ZERO();                                \
        for (ptrdiff_t k = 0; k < kc; k++) {                                                                        \
            V av[ROWS];                                                                                             \
            for (int r = 0; r < ROWS; r++) av[r] = SET1(a[r * lda + k]);                                            \
            for (int q = 0; q < PANELS * PER; q++) {                                                                \
                const V w = LOADU(p + (q / PER) * NR * kc + k * NR + (q % PER) * VW);                               \
                for (int r = 0; r < ROWS; r++) acc[r][q] = FMADD(av[r], w, acc[r][q]);                              \
            }                                                                                                       \
        }                                                                                                           \
        for (int r = 0; r < ROWS; r++)                                                                              \
            for (int q = 0; q < PANELS * PER; q++) STOREU(c + r * ldc + j + q * VW, acc[r][q]);                     \
    }

// Two or three rows at AVX2 (16 registers): three panels (two rows, 12 chains) or two (three rows, 12 chains) at a
// time, then one; returns the column where it stopped (the rest, less than a panel, is row_chains' to do row by row).
__attribute__((target("avx2,fma")))
static ptrdiff_t rows_prepacked_avx2(ptrdiff_t m, ptrdiff_t from, ptrdiff_t to, ptrdiff_t kc, const float *a,
                                     ptrdiff_t lda, const float *panels, float *c, ptrdiff_t ldc, int start_from_c) {
    ptrdiff_t j = from;
#define LSTMK_ROWS256(ROWS, PANELS)                                                                                 \
    LSTMK_ROWS(__m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_setzero_ps,     \
               ROWS, PANELS)
    if (m == 2) {
        LSTMK_ROWS256(2, 3)
        LSTMK_ROWS256(2, 1)
    } else {
        LSTMK_ROWS256(3, 2)
        LSTMK_ROWS256(3, 1)
    }
#undef LSTMK_ROWS256
    return j;
}

// Two to four rows at AVX-512: eight panels at a time (16 or 24 chains; four rows: four panels, 16 chains), then
// four; returns the column where it stopped (the rest is row_chains' to do row by row). A step of a few rows then
// streams the weights as one row does (against the 4-row tiles at H = 256, whose weights sit in L2 either way: B = 2
// inference 3.62 → 2.69 ms).
__attribute__((target("avx512f")))
static ptrdiff_t rows_prepacked_avx512(ptrdiff_t m, ptrdiff_t from, ptrdiff_t to, ptrdiff_t kc, const float *a,
                                       ptrdiff_t lda, const float *panels, float *c, ptrdiff_t ldc, int start_from_c) {
    ptrdiff_t j = from;
#define LSTMK_ROWS512(ROWS, PANELS)                                                                                 \
    LSTMK_ROWS(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_setzero_ps,   \
               ROWS, PANELS)
    if (m == 2) {
        LSTMK_ROWS512(2, 8)
        LSTMK_ROWS512(2, 4)
    } else if (m == 3) {
        LSTMK_ROWS512(3, 8)
        LSTMK_ROWS512(3, 4)
    } else {
        LSTMK_ROWS512(4, 4)
    }
#undef LSTMK_ROWS512
    return j;
}
#undef LSTMK_ROWS
#endif

#ifdef LSTMK_NEON
static void row_prepacked_neon(ptrdiff_t from, ptrdiff_t to, ptrdiff_t kc, const float *a, const float *panels,
                               float *c, int start_from_c) {
    ptrdiff_t j = from;
    for (; j + 2 * NR <= to; j += 2 * NR) {
        const float *p0 = panels + j * kc, *p1 = p0 + NR * kc;
        float32x4_t acc[8];
        for (int q = 0; q < 8; q++) acc[q] = start_from_c ? vld1q_f32(c + j + 4 * q) : vdupq_n_f32(0.0f);
        for (ptrdiff_t k = 0; k < kc; k++) {
            const float32x4_t av = vdupq_n_f32(a[k]);
            for (int q = 0; q < 4; q++) acc[q] = vfmaq_f32(acc[q], av, vld1q_f32(p0 + k * NR + 4 * q));
            for (int q = 0; q < 4; q++) acc[4 + q] = vfmaq_f32(acc[4 + q], av, vld1q_f32(p1 + k * NR + 4 * q));
        }
        for (int q = 0; q < 8; q++) vst1q_f32(c + j + 4 * q, acc[q]);
    }
    if (j < to) row_prepacked_portable(j, to, kc, a, panels, c, start_from_c);
}
#endif

// Rows 0..<m of C (stride ldc), columns from..<to: c (start_from_c) or 0, then the chains of rows of a (K each,
// stride lda) against the packed panels (N padded to npad), every KC block in turn: the chains of
// lstmk_sgemm_prepacked's one-row path, for each row. AVX-512 takes the rows up to four at a time.
static void row_chains(int level, ptrdiff_t m, ptrdiff_t from, ptrdiff_t to, ptrdiff_t K, const float *a,
                       ptrdiff_t lda, const float *packed, ptrdiff_t npad, float *c, ptrdiff_t ldc, int start_from_c) {
    for (ptrdiff_t pc = 0; pc < K; pc += KC) {
        const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
        const float *panels = packed + pc * npad;
        const int start = start_from_c || pc > 0;
        for (ptrdiff_t r = 0; r < m;) {
            const float *ar = a + r * lda + pc;
            float *cr = c + r * ldc;
#ifdef LSTMK_X86
            if (level >= 2) {
                // Up to four rows a pass at AVX-512, three at AVX2; what a pass leaves (less than its panels), and a
                // lone row, row by row.
                const ptrdiff_t most = level >= 3 ? 4 : 3, rows = m - r < most ? m - r : most;
                ptrdiff_t j = from;
                if (rows > 1)
                    j = level >= 3 ? rows_prepacked_avx512(rows, from, to, kc, ar, lda, panels, cr, ldc, start)
                                   : rows_prepacked_avx2(rows, from, to, kc, ar, lda, panels, cr, ldc, start);
                for (ptrdiff_t q = 0; q < rows && j < to; q++) {
                    if (level >= 3) row_prepacked_avx512(j, to, kc, ar + q * lda, panels, cr + q * ldc, start);
                    else row_prepacked_avx2(j, to, kc, ar + q * lda, panels, cr + q * ldc, start);
                }
                r += rows;
                continue;
            }
#endif
#ifdef LSTMK_NEON
            if (level == 1) { row_prepacked_neon(from, to, kc, ar, panels, cr, start); r++; continue; }
#endif
            row_prepacked_portable(from, to, kc, ar, panels, cr, start);
            r++;
        }
    }
}

// The direction of this thread's next pass over a packed operand: 0, 1, 0, ... per operand (the last eight this
// thread read), so that products on other weights in between (a projection's, the other direction's) do not break
// one operand's alternation.
static int next_direction(const float *packed) {
    static _Thread_local const float *seen[8];
    static _Thread_local int flips[8], victim;
    for (int i = 0; i < 8; i++)
        if (seen[i] == packed) return flips[i] ^= 1;
    const int i = victim;
    victim = (victim + 1) & 7;
    seen[i] = packed;
    return flips[i] = 0;
}

static void sgemm_prepacked(int level, ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                            const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                            float *C, ptrdiff_t ldc, int accumulate, const float *bias) {
    if (M <= 0 || j1 <= j0) return;
    if (bias && (M == 1 || K <= 0)) {
        // C += b first, as the tiles do it (one rounding), on the paths without tiles.
        add_bias(C, ldc, M, j0, j1, bias);
        bias = NULL;
    }
    if (K <= 0) {
        if (!accumulate)
            for (ptrdiff_t i = 0; i < M; i++) memset(C + i * ldc + j0, 0, (size_t)(j1 - j0) * sizeof(float));
        return;
    }
    const ptrdiff_t npad = padded_width(N);
    if (M <= (level == 3 ? 4 : level == 2 ? 3 : 1) && csa == 1) {
        // One to four rows (three at AVX2, one on NEON and portable), rows in place: the row kernels (C + b first, as
        // the tiles add it), the weights read once per call for all the rows, where the 4-row tiles ran slower. A
        // thread whose columns hold more than 512 KB of weights (more than its L2 keeps beside the rest) reads them in
        // runs of 128 columns, each through all of K, the runs last to first on every other call on the same weights
        // (next_direction): a per-step product called again on the same weights (training's forward and backward steps;
        // the pool gives part p of every step to the same thread) then starts on the runs the previous call left in L2.
        // Each element's chain is unchanged, so the same bits. Alternated in one process, training steps (T = 100):
        // H = 512 B = 1 20.4 → 16.0 ms, B = 2 22.9 → 21.3 (the row kernels) → 17.1 (the runs), B = 4 25.4 → 24.5 →
        // 21.1, H = 384 B = 2 7.50 → 6.95 (runs), H = 128 B = 4 2.15 → 2.01; at AVX2 H = 512 B = 2 46.8 → 35.0, B = 3
        // 40.6 → 37.9 (a row at a time), then, with the runs, 23.4 → 19.2 and 31.3 → 21.9 (two or three rows a pass).
        // With the runs at H = 256 (512 KB a thread) B = 2 was even to 12 % slower, hence the bound.
        if (bias) add_bias(C, ldc, M, j0, j1, bias);
        if ((j1 - j0) * K * (ptrdiff_t)sizeof(float) <= (ptrdiff_t)512 << 10) {
            row_chains(level, M, j0, j1, K, A, rsa, packed, npad, C, ldc, accumulate);
            return;
        }
        const int reverse = next_direction(packed);
        const ptrdiff_t runs = (j1 - j0 + 127) / 128;
        for (ptrdiff_t s = 0; s < runs; s++) {
            const ptrdiff_t r = reverse ? runs - 1 - s : s;
            const ptrdiff_t from = j0 + 128 * r, to = from + 128 < j1 ? from + 128 : j1;
            row_chains(level, M, from, to, K, A, rsa, packed, npad, C, ldc, accumulate);
        }
        return;
    }
    if (M == 1) {
        // A strided row (a transposed A): copied into a small stack block per KC rows, each block's chains as above.
        float row[KC];
        for (ptrdiff_t pc = 0; pc < K; pc += KC) {
            const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
            for (ptrdiff_t k = 0; k < kc; k++) row[k] = A[(pc + k) * csa];
            row_chains(level, 1, j0, j1, kc, row, kc, packed + pc * npad, npad, C, ldc, accumulate || pc > 0);
        }
        return;
    }
    workspace *w = thread_workspace(0);
    for (ptrdiff_t pc = 0; pc < K; pc += KC) {
        const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
        const int start_from_c = accumulate || pc > 0;
        for (ptrdiff_t ic = 0; ic < M; ic += MC) {
            const ptrdiff_t mc = M - ic < MC ? M - ic : MC;
            ptrdiff_t astride, tstride, rstride;
            const float *a = a_block(level, M, A, rsa, csa, ic, mc, pc, kc, j1 - j0,
                                     w->a, &astride, &tstride, &rstride, NULL);
            multiply_block(level, a, astride, tstride, rstride, mc, kc, packed + pc * npad, 0, j0, j1, C + ic * ldc, ldc,
                           start_from_c, pc == 0 ? bias : NULL, j1);
        }
    }
}

void lstmk_sgemm_prepacked(ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                           const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                           float *C, ptrdiff_t ldc, int accumulate, const float *bias) {
    sgemm_prepacked(lstmk_sgemm_level(), M, j0, j1, N, K, A, rsa, csa, packed, C, ldc, accumulate, bias);
}

void lstmk_sgemm_prepacked_portable(ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                                    const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                                    float *C, ptrdiff_t ldc, int accumulate, const float *bias) {
    sgemm_prepacked(0, M, j0, j1, N, K, A, rsa, csa, packed, C, ldc, accumulate, bias);
}

void lstmk_sgemm_at_level(int level, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t rsa,
                          ptrdiff_t csa, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *C, ptrdiff_t ldc,
                          int accumulate) {
    sgemm(clamp_level(level), M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
}

void lstmk_sgemm_prepacked_at_level(int level, ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                                    const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                                    float *C, ptrdiff_t ldc, int accumulate, const float *bias) {
    sgemm_prepacked(clamp_level(level), M, j0, j1, N, K, A, rsa, csa, packed, C, ldc, accumulate, bias);
}

// ---- The stash-free inference step: the recurrent product and the element-wise pass, fused ----

void lstmk_sgemm_pack_b_gates(ptrdiff_t H, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed) {
    lstmk_sgemm_pack_b_gates_groups(H, K, B, rsb, csb, packed, 0, (H + NR - 1) / NR);
}

void lstmk_sgemm_pack_b_gates_groups(ptrdiff_t H, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                                     float *packed, ptrdiff_t g0, ptrdiff_t g1) {
    const ptrdiff_t groups = (H + NR - 1) / NR, npad = 4 * groups * NR;
    if (g1 > groups) g1 = groups;
    for (ptrdiff_t pc = 0; pc < K; pc += KC) {
        const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
        for (ptrdiff_t g = g0; g < g1; g++) {
            const ptrdiff_t n = H - g * NR < NR ? H - g * NR : NR;
            for (ptrdiff_t q = 0; q < 4; q++)
                pack_panel(kc, n, B + pc * rsb + (q * H + g * NR) * csb, rsb, csb,
                           packed + pc * npad + (4 * g + q) * NR * kc);
        }
    }
}

// Columns from..<to of Z (rows of the A block) += (b, when given, then) A block · the KC-row block of packed panels
// at `panels`.
static void step_columns(int level, ptrdiff_t n, const float *a, ptrdiff_t astride, ptrdiff_t tstride,
                         ptrdiff_t rstride, ptrdiff_t kc, const float *panels, ptrdiff_t from, ptrdiff_t to, float *Z,
                         ptrdiff_t ldz, const float *bias, ptrdiff_t prefetch_to) {
    if (n == 1) {
        if (bias) add_bias(Z, ldz, 1, from, to, bias);
        row_chains(level, 1, from, to, kc, a, kc, panels, 0, Z, ldz, 1);   // one KC block: npad unused
        return;
    }
    multiply_block(level, a, astride, tstride, rstride, n, kc, panels, 0, from, to, Z, ldz, 1, bias, prefetch_to);
}

// Rows 0..<n (one to four) of a step for the unit groups g0..<g1: z = x (In)·W_ihᵀ when x is given (n = 1; else z
// holds it already), + bias (when given), += hprev (n × K, stride lda)·W_hhᵀ, each group's element-wise pass (c rows
// H apart, h rows ldh apart). The columns in runs of two groups (128 columns: the AVX-512
// row kernel's eight chains), each run through all of K, first to last or (reverse) last to first: at a few rows
// the weights stream from L3, and a step that starts on the runs the previous one read last finds them in L2 (a
// stream of H = 512, 2.4 MB of weights a core: 0.096 → 0.067 ms a step; H = 1024, 8.9 MB a core: 0.384 → 0.362).
// Each element's chain is the KC-blocked one of step_columns, so the same bits either way.
static void row_step(int level, ptrdiff_t n, ptrdiff_t g0, ptrdiff_t g1, ptrdiff_t H, ptrdiff_t In, const float *x,
                     const float *packed_ih, ptrdiff_t K, const float *hprev, ptrdiff_t lda, const float *packed_hh,
                     const float *bias, float *z, ptrdiff_t ldz, float *c, float *h, ptrdiff_t ldh, int gate, int cell,
                     float clip, const float *peep, int reverse) {
    const ptrdiff_t G = 4 * NR, npad = 4 * ((H + NR - 1) / NR) * NR, runs = (g1 - g0 + 1) / 2;
    for (ptrdiff_t s = 0; s < runs; s++) {
        const ptrdiff_t r = reverse ? runs - 1 - s : s;
        const ptrdiff_t u0 = g0 + 2 * r, u1 = u0 + 2 < g1 ? u0 + 2 : g1;
        const ptrdiff_t from = u0 * G, to = u1 * G;
        if (x) {
            if (In > 0) row_chains(level, 1, from, to, In, x, In, packed_ih, npad, z, ldz, 0);
            else memset(z + from, 0, (size_t)(to - from) * sizeof(float));
        }
        if (bias) add_bias(z, ldz, n, from, to, bias);
        if (K > 0) row_chains(level, n, from, to, K, hprev, lda, packed_hh, npad, z, ldz, 1);
        for (ptrdiff_t u = u0; u < u1; u++) {
            const ptrdiff_t units = H - u * NR < NR ? H - u * NR : NR;
            lstmk_pointwise_forward_units(z + u * G, ldz, NR, c + u * NR, H, h + u * NR, ldh, n, units, gate, cell,
                                          clip, peep ? peep + u * NR : NULL, H, level < 2 ? 1 : level == 2 ? 2 : 0);
        }
    }
}

// Spins until *p ≥ need (acquire: the h its owner wrote before publishing is visible after it), yielding the core
// now and then in case the owner's thread is not running.
static void wait_for(const long *p, long need) {
    const _Atomic long *a = (const _Atomic long *)p;
    for (long i = 1; atomic_load_explicit(a, memory_order_acquire) < need; i++) {
#ifdef LSTMK_X86
        _mm_pause();
#endif
        if ((i & 0xFFFF) == 0) sched_yield();
    }
}

// The step for unit groups g0..<g1; with `progress` (a pipelined job: part `part` of `parts`, see
// lstmk_lstm_step_pipelined) each KC block of K first waits for the parts owning that block's units of A = h_{t−1},
// and the part publishes step + 1 when its own units are done.
static void lstm_step(int level, ptrdiff_t n, ptrdiff_t g0, ptrdiff_t g1, ptrdiff_t H, ptrdiff_t K, const float *A,
                      ptrdiff_t lda, const float *packed, const float *bias, float *Z, ptrdiff_t ldz, float *c,
                      float *h, ptrdiff_t ldh, int gate, int cell, float clip, const float *peep, long *progress,
                      ptrdiff_t part, ptrdiff_t parts, long step, int reverse) {
    level = level < 0 ? lstmk_sgemm_level() : clamp_level(level);
    const ptrdiff_t groups = (H + NR - 1) / NR, npad = 4 * groups * NR, G = 4 * NR;
    if (n <= 0 || g1 <= g0 || K <= 0) {
        if (n > 0 && K <= 0 && bias) add_bias(Z, ldz, n, g0 * G, g1 * G, bias);
        if (progress) atomic_store_explicit((_Atomic long *)(progress + part * 16), step + 1, memory_order_release);
        return;
    }
    if (n <= (level == 3 ? 4 : level == 2 ? 3 : 1)) {
        // A few rows: all of h_{t−1} first, then the columns run by run through all of K (row_step). In one process,
        // alternated against the KC blocks below (inference, 100–200 steps, AVX-512): H = 512 B = 1 16.3 → 10.6 ms,
        // B = 2 24.2 → 18.0, B = 3 25.3 → 19.4, B = 4 18.9 → 13.5; H = 1024 B = 2 46.0 → 42.2, B = 4 41.1 → 38.2;
        // H = 256 B = 2 3.62 → 2.69, B = 4 3.31 → 2.95; H = 128 B = 3 1.93 → 1.65; six rows (four and two) slower at
        // H = 1024 (43.5 → 47.8 ms), eight even at H = 512. At AVX2, first a row at a time: H = 512 B = 1 19.4 →
        // 13.9, B = 2 34.3 → 22.7, B = 3 36.8 → 29.5, H = 1024 B = 3 63.4 → 52.6; then two or three rows a pass
        // (rows_prepacked_avx2) against that: H = 512 B = 2 17.5 → 13.3, B = 3 22.6 → 13.4, H = 1024 B = 3 52.8 →
        // 33.2, H = 256 B = 3 5.23 → 2.94; four rows stay on the 4-row tiles at AVX2 (as 3 + 1 or 2 + 2: even at
        // H = 512, 15–24 % slower at H = 256 and 1024). NEON and portable: one row (not measured on more).
        if (progress)
            for (ptrdiff_t q = 0; q < parts; q++)
                if (q != part) wait_for(progress + q * 16, step);
        row_step(level, n, g0, g1, H, 0, NULL, NULL, K, A, lda, packed, bias, Z, ldz, c, h, ldh, gate, cell, clip, peep,
                 reverse);
        if (progress) atomic_store_explicit((_Atomic long *)(progress + part * 16), step + 1, memory_order_release);
        return;
    }
    workspace *w = thread_workspace(0);
    // Z += b on this part's columns as the first KC block's tiles load them (one add, as a separate pass would;
    // a pass of its own stalled on every step's rows of Z coming from L3: 4.6 % of `packed` inference).
    // Rows in blocks of MC (one block up to 144 rows); each block's KC-row blocks of the product, the last one in
    // runs of three unit groups (192 columns), each group's element-wise pass right after its run.
    for (ptrdiff_t ic = 0; ic < n; ic += MC) {
        const ptrdiff_t mc = n - ic < MC ? n - ic : MC;
        float *Zb = Z + ic * ldz;
        for (ptrdiff_t pc = 0; pc < K; pc += KC) {
            const ptrdiff_t kc = K - pc < KC ? K - pc : KC;
            if (progress && ic == 0) {
                // The parts whose unit groups overlap units pc..<pc+kc (part q owns q·groups/parts ..<).
                const ptrdiff_t first = pc / NR, last = (pc + kc - 1) / NR;
                for (ptrdiff_t q = 0; q < parts; q++) {
                    const ptrdiff_t q0 = q * groups / parts, q1 = (q + 1) * groups / parts;
                    if (q != part && q0 <= last && q1 > first) wait_for(progress + q * 16, step);
                }
            }
            ptrdiff_t astride = 1, tstride = 0, rstride = 0;
            const float *a;
            if (mc == 1) {
                a = A + ic * lda + pc;   // one contiguous row
            } else {
                a = a_block(level, n, A, lda, 1, ic, mc, pc, kc, (g1 - g0) * G, w->a, &astride, &tstride, &rstride,
                            NULL);
            }
            const float *panels = packed + pc * npad;
            const float *b = pc == 0 ? bias : NULL;
            if (pc + kc < K) {
                step_columns(level, mc, a, astride, tstride, rstride, kc, panels, g0 * G, g1 * G, Zb, ldz, b, g1 * G);
                continue;
            }
            // Three groups at a time (192 columns: four 8×48 tiles at AVX-512, where one group alone is two 8×32
            // tiles, 2 loads + 8 broadcasts per 16 FMAs), then each group's element-wise pass while its columns of Z
            // are still in L1 or L2. In one process, alternated per call against one group at a time: bidir
            // inference 56.8 → 51.6 ms (faster in 28 of 30), charrnn 244 → 233 (8 of 10), the main job's model
            // (H = 256, B = 32) 26.1 → 25.5 (24 of 30), outputs equal; two groups were slower than three in 22, 9
            // and 21 of those runs' pairs, four even (15 of 30) or slower (4 of 10, 12 of 30).
            for (ptrdiff_t g = g0; g < g1; g += 3) {
                const ptrdiff_t ge = g + 3 < g1 ? g + 3 : g1;
                step_columns(level, mc, a, astride, tstride, rstride, kc, panels, g * G, ge * G, Zb, ldz, b, g1 * G);
                for (ptrdiff_t u = g; u < ge; u++) {
                    const ptrdiff_t units = H - u * NR < NR ? H - u * NR : NR;
                    lstmk_pointwise_forward_units(Zb + u * G, ldz, NR, c + ic * H + u * NR, H, h + ic * ldh + u * NR,
                                                  ldh, mc, units, gate, cell, clip, peep ? peep + u * NR : NULL, H,
                                                  level < 2 ? 1 : level == 2 ? 2 : 0);
                }
            }
        }
    }
    if (progress) atomic_store_explicit((_Atomic long *)(progress + part * 16), step + 1, memory_order_release);
}

void lstmk_lstm_stream_step(int level, ptrdiff_t g0, ptrdiff_t g1, ptrdiff_t H, ptrdiff_t In, const float *x,
                            const float *packed_ih, ptrdiff_t K, const float *hprev, const float *packed_hh,
                            const float *bias, float *z, float *c, float *h, int gate, int cell, float clip,
                            const float *peep, int reverse) {
    level = level < 0 ? lstmk_sgemm_level() : clamp_level(level);
    if (g1 > g0) row_step(level, 1, g0, g1, H, In, x, packed_ih, K, hprev, K, packed_hh, bias, z, 0, c, h, 0, gate,
                          cell, clip, peep, reverse);
}

void lstmk_lstm_step(int level, ptrdiff_t n, ptrdiff_t g0, ptrdiff_t g1, ptrdiff_t H, ptrdiff_t K, const float *A,
                     ptrdiff_t lda, const float *packed, const float *bias, float *Z, ptrdiff_t ldz, float *c, float *h,
                     ptrdiff_t ldh, int gate, int cell, float clip, const float *peep, int reverse) {
    lstm_step(level, n, g0, g1, H, K, A, lda, packed, bias, Z, ldz, c, h, ldh, gate, cell, clip, peep, NULL, 0, 1, 0,
              reverse);
}

void lstmk_lstm_step_pipelined(int level, ptrdiff_t n, ptrdiff_t part, ptrdiff_t parts, ptrdiff_t H, const float *A,
                               ptrdiff_t lda, const float *packed, const float *bias, float *Z, ptrdiff_t ldz,
                               float *c, float *h, ptrdiff_t ldh, int gate, int cell, float clip, const float *peep,
                               long *progress, long step) {
    const ptrdiff_t groups = (H + NR - 1) / NR;
    lstm_step(level, n, part * groups / parts, (part + 1) * groups / parts, H, H, A, lda, packed, bias, Z, ldz, c, h,
              ldh, gate, cell, clip, peep, progress, part, parts, step, (int)(step & 1));
}
