// The innermost numeric kernels of LSTMKit, in C so that they can carry per-function target attributes
// (AVX2 + FMA) without unsafe build flags; everything around them is Swift.
#ifndef LSTMKIT_KERNELS_H
#define LSTMKIT_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Which implementation lstmk_sgemm uses on this CPU: 3 = AVX-512, 2 = AVX2 + FMA, 1 = NEON (AArch64), 0 = portable
/// C. The environment variable LSTMKIT_KERNEL=avx2 or =portable caps it (read once).
int lstmk_sgemm_level(void);

/// lstmk_sgemm / lstmk_sgemm_prepacked with the kernels of `level` (3, 2 or 0; capped at what this CPU has): the
/// tests check every level gives the same bits.
void lstmk_sgemm_at_level(int level, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t rsa,
                          ptrdiff_t csa, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *C, ptrdiff_t ldc,
                          int accumulate);
void lstmk_sgemm_prepacked_at_level(int level, ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                                    const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                                    float *C, ptrdiff_t ldc, int accumulate, const float *bias);

/// C (M, N) = op(A)·op(B), or C += op(A)·op(B) when accumulate != 0, all row-major.
/// op(A)[i, k] = A[i*rsa + k*csa]; op(B)[k, j] = B[k*rsb + j*csb]; C[i, j] = C[i*ldc + j].
/// Every element is computed as acc = fma(op(A)[i,k], op(B)[k,j], acc) for k = 0, 1, …, K-1, starting from
/// C[i,j] (accumulate) or 0, whatever the implementation, tile position or M and N: the result is the same bits on
/// every CPU and for every split of the columns.
void lstmk_sgemm(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                 const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                 float *C, ptrdiff_t ldc, int accumulate);

/// C1 (M, N1) (+)= op(A)·op(B1) and C2 (M, N2) (+)= op(A)·op(B2): the bits of two lstmk_sgemm calls, with each
/// block of A packed once for both products (δW_ih and δW_hh, which share δZᵀ). When `sums` is not NULL, also
/// sums[i] += op(A)[i, k] for k = 0, 1, … in turn (M values; each one chain of adds: δb = Σ δZ over the same rows).
void lstmk_sgemm_pair(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                      ptrdiff_t N1, const float *B1, ptrdiff_t rsb1, ptrdiff_t csb1, float *C1, ptrdiff_t ldc1,
                      ptrdiff_t N2, const float *B2, ptrdiff_t rsb2, ptrdiff_t csb2, float *C2, ptrdiff_t ldc2,
                      int accumulate, float *sums);

/// lstmk_sgemm with the portable kernel whatever the CPU: the tests check it gives the same bits as the AVX2 one.
void lstmk_sgemm_portable(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                          const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                          float *C, ptrdiff_t ldc, int accumulate);

/// Floats needed to hold op(B) (K, N) packed by lstmk_sgemm_pack_b.
size_t lstmk_sgemm_packed_size(ptrdiff_t N, ptrdiff_t K);

/// Packs op(B)[k, j] = B[k*rsb + j*csb] (K, N) once, for many lstmk_sgemm_prepacked calls.
void lstmk_sgemm_pack_b(ptrdiff_t N, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed);
/// The panels of columns j0..<j1 only (j0 a multiple of 16): disjoint ranges of one packed B on several threads.
void lstmk_sgemm_pack_b_columns(ptrdiff_t N, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed,
                                ptrdiff_t j0, ptrdiff_t j1);

/// Columns j0..<j1 (j0 a multiple of 16) of C (M, N) = op(A)·B, or C += …, with B packed by lstmk_sgemm_pack_b;
/// the same chains, hence the same bits, as lstmk_sgemm. With `bias` (N floats; only with accumulate != 0) every
/// chain starts from C + b rounded once — as a pass C += b before the product would — the AVX-512 tiles adding it
/// as they load C.
void lstmk_sgemm_prepacked(ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                           const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                           float *C, ptrdiff_t ldc, int accumulate, const float *bias);

/// lstmk_sgemm_prepacked with the portable kernels whatever the CPU (tests).
void lstmk_sgemm_prepacked_portable(ptrdiff_t M, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t N, ptrdiff_t K,
                                    const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *packed,
                                    float *C, ptrdiff_t ldc, int accumulate, const float *bias);

/// The element-wise pass of `units` units of `rows` rows, inference: gate q of unit j of row r at
/// z[r·ldz + q·zs + j], peepholes (when given) at peep[q·ps + j]; S updated in place in c (row stride ldc), h
/// written (row stride ldh), the activated gates not kept. The same operations as lstmk_pointwise_forward, so the
/// same bits. `portable`: 0 this CPU's widest vectors, 1 the portable code, 2 at most AVX2 (every width gives the same
/// bits; tests compare them).
void lstmk_pointwise_forward_units(float *z, ptrdiff_t ldz, ptrdiff_t zs, float *c, ptrdiff_t ldc, float *h,
                                   ptrdiff_t ldh, ptrdiff_t rows, ptrdiff_t units, int gate, int cell, float clip,
                                   const float *peep, ptrdiff_t ps, int portable);

/// Packs W (4H, K) (row j of gate q at B[(q·H + j)·csb + k·rsb]) for lstmk_sgemm_prepacked with its columns in the
/// gate-interleaved order: for each group of 16 units, the 16 columns of i, then f, g, o (zero past H), N = 4·Hpad,
/// Hpad = H rounded up to 16. A product against it gives each element the chain of the plain product, so the same
/// bits, at column 64·(j/16) + 16·q + j%16.
void lstmk_sgemm_pack_b_gates(ptrdiff_t H, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *packed);
/// Unit groups g0..<g1 (16 units each) of lstmk_sgemm_pack_b_gates only: disjoint ranges on several threads.
void lstmk_sgemm_pack_b_gates_groups(ptrdiff_t H, ptrdiff_t K, const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                                     float *packed, ptrdiff_t g0, ptrdiff_t g1);

/// One step of the stash-free inference pass for the unit groups g0..<g1 (16 units each) of a gate-interleaved
/// layout: Z (n rows, stride ldz) += bias (when given: one add per element), then Z += A (n, K, stride lda)·W_hhᵀ
/// (packed by lstmk_sgemm_pack_b_gates), each group's element-wise pass applied as soon as its columns are done
/// (while they are in L1): c (n, H) updated in place, h (n rows, stride ldh) written for those units. level: as
/// lstmk_sgemm_at_level (-1: this CPU's best). A few rows (n ≤ 4 at AVX-512, 3 at AVX2, 1 otherwise) go through
/// the columns in runs of two groups, each through all of K, the last run first when `reverse` is set (callers
/// alternate it by step, so that a step starts on the weights the previous step left in L2); the same bits either
/// way.
void lstmk_lstm_step(int level, ptrdiff_t n, ptrdiff_t g0, ptrdiff_t g1, ptrdiff_t H, ptrdiff_t K, const float *A,
                     ptrdiff_t lda, const float *packed, const float *bias, float *Z, ptrdiff_t ldz, float *c, float *h,
                     ptrdiff_t ldh, int gate, int cell, float clip, const float *peep, int reverse);

/// One batch-1 streaming step of one layer for the unit groups g0..<g1 of a gate-interleaved layout (both weights
/// packed by lstmk_sgemm_pack_b_gates, In and K rows): z = x (In)·W_ihᵀ, + bias (when given), += hprev (K)·W_hhᵀ,
/// then each group's element-wise pass (c (H) in place, h written for those units) — the chains and operations of
/// lstmk_sgemm_prepacked (accumulate 0) followed by lstmk_lstm_step with n = 1, so the same bits. The columns go in
/// runs of two groups, each run through all of K; `reverse` takes the runs last to first (a stream alternates it, so
/// each step starts on the weights the previous one read last, still in L2).
void lstmk_lstm_stream_step(int level, ptrdiff_t g0, ptrdiff_t g1, ptrdiff_t H, ptrdiff_t In, const float *x,
                            const float *packed_ih, ptrdiff_t K, const float *hprev, const float *packed_hh,
                            const float *bias, float *z, float *c, float *h, int gate, int cell, float clip,
                            const float *peep, int reverse);

/// lstmk_lstm_step for part `part` of `parts` (unit groups part·G/parts ..< (part+1)·G/parts of G = ⌈H/16⌉, K = H:
/// A = h_{t−1} of this layer) in a job whose parts all run at once, each on its own thread, through the same steps:
/// instead of a join after every step, each KC block of the product first waits until every other part that owns
/// units of that block has published `step` (progress[q·16] ≥ step, acquire), and the part publishes step + 1
/// (progress[part·16], release) once its units' h are written. A part whose own units come first in K starts the
/// next step while the others finish theirs. A few rows (as in lstmk_lstm_step) wait for all of h_{t−1} first, then
/// run as lstmk_lstm_step with `reverse` = step's parity. The same chains as lstmk_lstm_step, so the same bits. `progress`:
/// 16·parts longs, zero (or the job's first step) before the job.
void lstmk_lstm_step_pipelined(int level, ptrdiff_t n, ptrdiff_t part, ptrdiff_t parts, ptrdiff_t H, const float *A,
                               ptrdiff_t lda, const float *packed, const float *bias, float *Z, ptrdiff_t ldz,
                               float *c, float *h, ptrdiff_t ldh, int gate, int cell, float clip, const float *peep,
                               long *progress, long step);

/// One forward step of the LSTM element-wise pass for B rows of width H (see LSTMPointwise.swift for the equations):
/// gates (B, 4H) pre-activations in, activated i, f, g, o out; c (B, H) = S_t; h (B, H) = h_t. `cprev` may equal
/// `c`. gate: 0 σ, 1 hard σ, 2 identity; cell: 0 tanh, 1 identity. clip > 0 limits S_t to [−clip, clip] (0: off).
/// peep (3H: p_i, p_f, p_o) adds peepholes, NULL: none. portable: 0 this CPU's widest vectors (AVX-512, AVX2), 1 the
/// portable path, 2 at most AVX2; every one gives the same bits.
void lstmk_pointwise_forward(float *gates, const float *cprev, float *c, float *h, ptrdiff_t B, ptrdiff_t H,
                             int gate, int cell, float clip, const float *peep, int portable);

/// One backward step of the element-wise pass (LSTMPointwise.swift): gates = activated i, f, g, o (B, 4H); cprev =
/// S_{t-1}, c = S_t (B, H); dout = δh_t from above (NULL: zero); dcarry = δh_t from step t+1; dc = δS_{t+1}⊙f_{t+1}
/// in, δS_t⊙f_t out; dz = δZ_t (B, 4H) out; clip as in the forward pass (δS is 0 where S_t is held at ±clip). The
/// same operations in the same order as the Swift pass. portable: as in lstmk_pointwise_forward.
void lstmk_pointwise_backward(const float *gates, const float *cprev, const float *c, const float *dout,
                              const float *dcarry, float *dc, float *dz, ptrdiff_t B, ptrdiff_t H, int gate, int cell,
                              float clip, const float *peep, int portable);

/// y = σ(x) (function 0) or tanh(x) (function 1), elementwise, with the kernels' approximations. portable: as in
/// lstmk_pointwise_forward.
void lstmk_activation(int function, const float *x, float *y, ptrdiff_t n, int portable);

/// One Adam/AdamW update of n parameters in place (p, m, v; g read): the operations of Optimizer.step, same order,
/// same bits. constants: shrink, wd, b1 (1 − β1), β2, 1 − β2, √(1 − β2ᵗ), ε, the step size lr / (1 − β1ᵗ).
/// mode 1: p ← p·shrink first (AdamW); 2: g ← g + wd·p first (Adam with weight decay); 0: neither.
/// portable != 0 runs the scalar path whatever the CPU (tests).
void lstmk_adam(float *p, const float *g, float *m, float *v, ptrdiff_t n, const float *constants, int mode,
                int portable);

/// tanh with the kernels' approximation (the backward pass recomputes tanh(S_t) with it).
float lstmk_tanh(float x);

/// sum[j] += A[i·lda + j] for j < cols, rows i = 0, 1, … in turn (lda may be negative: rows last to first): each
/// column one chain of adds, the same bits on every path (a bias gradient, Σ over rows of δZ). portable != 0 runs
/// the scalar loop whatever the CPU (tests).
void lstmk_column_sums(const float *A, ptrdiff_t rows, ptrdiff_t lda, ptrdiff_t cols, float *sum, int portable);

/// Runs `iterations` rounds of independent FMAs with the best instructions this CPU has; returns the number of
/// floating-point operations done (2 per FMA). `sink` receives a result so the loop is not optimized away.
double lstmk_fma_peak_run(long iterations, float *sink);

/// A persistent pool of worker threads that spin briefly after each job and then park (see pool.c).
typedef struct lstmk_pool lstmk_pool;
typedef void (*lstmk_task_fn)(void *context, ptrdiff_t part);

/// Starts `workers` threads (the caller of lstmk_pool_run is one more); NULL if out of memory.
lstmk_pool *lstmk_pool_create(int workers);
/// Threads actually started.
int lstmk_pool_workers(const lstmk_pool *pool);
/// How long an idle worker spins before it parks (default 1 ms).
void lstmk_pool_set_spin(lstmk_pool *pool, long nanoseconds);
/// Stops and joins the workers; no job may be running.
void lstmk_pool_destroy(lstmk_pool *pool);

/// lstmk_pool_run, but only if every part can have a thread of its own at once (parts − 1 ≤ workers, the pool not
/// busy with another job, not a call from inside a part): parts that wait for each other (lstmk_lstm_step_pipelined)
/// would never finish if run in turn on one thread. Returns 0 without running anything otherwise.
int lstmk_pool_run_together(lstmk_pool *pool, ptrdiff_t parts, lstmk_task_fn fn, void *context);
/// glibc only: serves blocks up to 32 MB from the heap and never trims it, so memory a process frees stays mapped
/// for its next allocation. 1 if both settings took, 0 otherwise (another C library: nothing changed).
int lstmk_retain_freed_memory(void);
/// 1 when this library was built with AddressSanitizer or ThreadSanitizer, whose malloc replaces the C library's
/// (lstmk_retain_freed_memory then returns 0: there is nothing of glibc's to tune).
int lstmk_sanitizer_allocator(void);
/// Runs fn(context, part) for part = 0 ..< parts on the caller and the workers and returns when all are done; each
/// thread takes its home part first (the caller 0, worker w part w + 1). If the pool is busy with another caller's
/// job (or this is a nested call), the parts run on the caller, in order.
void lstmk_pool_run(lstmk_pool *pool, ptrdiff_t parts, lstmk_task_fn fn, void *context);

#ifdef __cplusplus
}
#endif

#endif
