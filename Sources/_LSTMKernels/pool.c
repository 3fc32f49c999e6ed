// A persistent worker pool for the per-time-step products: fork/join in well under a microsecond while the workers
// are hot, no core burnt while the library is idle.
//
// A job is `parts` independent calls fn(context, part). The caller takes parts too. Every thread has a home part
// (the caller 0, the workers 1, 2, … in the order they started) and claims it first, then whatever is left, lowest
// first; the caller's part 0 is claimed for it when the job is published. On a hot pool the same thread runs the same part at every step, so a recurrence whose part p always
// multiplies the same columns of W_hh keeps them in that core's cache (measured before: on 2 threads the caller ran
// part 1 in 58 % of the jobs of LSTMKit's main job, and the halves of W_hh swapped caches). Which thread runs a part
// is still arbitrary whenever a thread is late, so callers must make parts independent of it (every LSTMKit part
// writes its own block of columns with fixed chains, so the bits do not depend on it).
//
// Claiming parts: one 64-bit ticket holds the job's generation (high 32 bits) and which parts are taken (low 32
// bits), claimed by compare-and-swap: for a job of up to 31 parts a mask (the bits of parts the job does not have are
// set when it is published), for a bigger job (bit 31 set) its number of parts (16 bits) and the next part (16 bits),
// handed out in order. A worker late from an earlier job sees another generation and claims nothing, so no part runs
// twice or is lost. fn and context are written before the ticket is published and rewritten only after every part
// of the job has finished.
//
// Waking: a worker that finished a job spins on the job generation for `spin_ns`, then parks on a condition variable.
// A caller bumps the generation (seq_cst) and then, only if some worker announced it is parking, broadcasts under the
// mutex. The parking worker announces itself (seq_cst) before it re-checks the generation under the same mutex, so
// either the caller sees the announcement or the worker sees the new generation: no wake-up is lost.

#if !defined(_POSIX_C_SOURCE) && !defined(__APPLE__)
#define _POSIX_C_SOURCE 200809L  // clock_gettime under strict C11
#endif

#include "LSTMKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

struct lstmk_pool {
    int workers;
    pthread_t *threads;
    pthread_mutex_t mutex;  // parking and shutdown
    pthread_cond_t wake;
    pthread_mutex_t busy;   // one job at a time; a second caller runs its job alone
    atomic_ullong ticket;
    atomic_int parked;
    atomic_int stop;
    atomic_long spin_ns;
    atomic_int started;     // workers that have started (their home parts are 1, 2, …)
    atomic_int job_parts;   // parts of the current job (a hint for threads deciding whether to join in)
    lstmk_task_fn fn;
    void *context;
    atomic_long finished;   // parts of the current job done
};

enum { MASKED_PARTS = 31 };
#define COUNTED (1ull << 31)

static unsigned long long generation_of(unsigned long long ticket) { return ticket >> 32; }

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

// Claims and runs parts of the job of generation `generation` until none is left. In a job of up to 31 parts: part
// `home` first if it is free, then the lowest free part; a thread whose home lies past the job's parts claims
// nothing (the caller takes whatever no one else does), so it does not take another thread's home part. In a bigger job every thread takes the next part.
static void take_parts(lstmk_pool *pool, unsigned long long generation, int home) {
    unsigned long long ticket = atomic_load(&pool->ticket);
    if (!(ticket & COUNTED) && home >= atomic_load_explicit(&pool->job_parts, memory_order_relaxed)) return;
    for (;;) {
        if (generation_of(ticket) != generation) return;
        ptrdiff_t part;
        unsigned long long claimed;
        if (ticket & COUNTED) {
            const unsigned long long parts = (ticket >> 16) & 0x7FFF, next = ticket & 0xFFFF;
            if (next >= parts) return;
            part = (ptrdiff_t)next;
            claimed = ticket + 1;
        } else {
            const unsigned free = ~(unsigned)ticket & 0x7FFFFFFFu;
            if (free == 0) return;
            part = home < MASKED_PARTS && (free >> home & 1u) ? home : __builtin_ctz(free);
            claimed = ticket | 1ull << part;
        }
        if (!atomic_compare_exchange_weak(&pool->ticket, &ticket, claimed)) continue;
        pool->fn(pool->context, part);
        atomic_fetch_add(&pool->finished, 1);
        ticket = atomic_load(&pool->ticket);
    }
}

static void *worker_main(void *argument) {
    lstmk_pool *pool = (lstmk_pool *)argument;
    const int home = atomic_fetch_add(&pool->started, 1) + 1;
    // Generation 0 is the pool's before its first job: a worker that starts after the first job was published
    // (thread start-up can take longer than a job) still sees that job as new and takes its home part.
    unsigned long long seen = 0;
    for (;;) {
        // Spin while hot.
        const long deadline = now_ns() + atomic_load_explicit(&pool->spin_ns, memory_order_relaxed);
        unsigned long long generation = generation_of(atomic_load(&pool->ticket));
        for (int i = 0; generation == seen && !atomic_load(&pool->stop); i++) {
            cpu_relax();
            if ((i & 255) == 255 && now_ns() > deadline) break;
            generation = generation_of(atomic_load(&pool->ticket));
        }
        if (generation == seen && !atomic_load(&pool->stop)) {
            // Park.
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->parked, 1);
            while ((generation = generation_of(atomic_load(&pool->ticket))) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->parked, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = generation;
        take_parts(pool, generation, home);
    }
}

lstmk_pool *lstmk_pool_create(int workers) {
    if (workers < 0) workers = 0;
    lstmk_pool *pool = (lstmk_pool *)calloc(1, sizeof(lstmk_pool));
    if (!pool) return NULL;
    pool->threads = (pthread_t *)calloc(workers > 0 ? (size_t)workers : 1, sizeof(pthread_t));
    if (!pool->threads) { free(pool); return NULL; }
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_mutex_init(&pool->busy, NULL);
    pthread_cond_init(&pool->wake, NULL);
    atomic_init(&pool->ticket, 0);
    atomic_init(&pool->parked, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->spin_ns, 1000000);
    atomic_init(&pool->finished, 0);
    atomic_init(&pool->started, 0);
    atomic_init(&pool->job_parts, 0);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) break;
        pool->workers = i + 1;
    }
    return pool;
}

int lstmk_pool_workers(const lstmk_pool *pool) { return pool ? pool->workers : 0; }

void lstmk_pool_set_spin(lstmk_pool *pool, long nanoseconds) {
    if (pool) atomic_store(&pool->spin_ns, nanoseconds < 0 ? 0 : nanoseconds);
}

void lstmk_pool_destroy(lstmk_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->workers; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    pthread_mutex_destroy(&pool->busy);
    free(pool->threads);
    free(pool);
}

// Publishes the job and runs it with the busy mutex held; unlocks it when every part is done.
static void run_locked(lstmk_pool *pool, ptrdiff_t parts, lstmk_task_fn fn, void *context);

void lstmk_pool_run(lstmk_pool *pool, ptrdiff_t parts, lstmk_task_fn fn, void *context) {
    if (parts <= 0) return;
    if (!pool || pool->workers == 0 || parts == 1 || parts > 0x7FFF || pthread_mutex_trylock(&pool->busy) != 0) {
        // No workers, nothing to share, or the pool is busy with another caller's job (or this is a nested call
        // from inside a part): run every part here, in order.
        for (ptrdiff_t part = 0; part < parts; part++) fn(context, part);
        return;
    }
    run_locked(pool, parts, fn, context);
}

// Every part gets a thread: the caller runs part 0 and the workers (at least parts − 1, none busy: the mutex is
// ours) each claim one as they see the job; a thread only takes a second part after finishing its first, and then
// every part it could wait for is running or done.
int lstmk_pool_run_together(lstmk_pool *pool, ptrdiff_t parts, lstmk_task_fn fn, void *context) {
    if (parts <= 0) return 1;
    if (parts == 1) { fn(context, 0); return 1; }
    if (!pool || pool->workers < parts - 1 || parts > MASKED_PARTS || pthread_mutex_trylock(&pool->busy) != 0)
        return 0;
    run_locked(pool, parts, fn, context);
    return 1;
}

static void run_locked(lstmk_pool *pool, ptrdiff_t parts, lstmk_task_fn fn, void *context) {
    pool->fn = fn;
    pool->context = context;
    atomic_store(&pool->finished, 0);
    atomic_store_explicit(&pool->job_parts, (int)parts, memory_order_relaxed);
    const unsigned long long generation = (generation_of(atomic_load(&pool->ticket)) + 1) & 0xFFFFFFFFull;
    // With a mask, part 0 is the caller's from the start (it is running; a worker may still be waking up).
    const int masked = parts <= MASKED_PARTS;
    const unsigned long long taken = masked ? (0x7FFFFFFFull & ~((1ull << parts) - 1)) | 1u
                                            : COUNTED | (unsigned long long)parts << 16;
    atomic_store(&pool->ticket, generation << 32 | taken);
    if (atomic_load(&pool->parked) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    if (masked) {
        fn(context, 0);
        atomic_fetch_add(&pool->finished, 1);
    }
    take_parts(pool, generation, 0);
    while (atomic_load(&pool->finished) < parts) cpu_relax();
    pthread_mutex_unlock(&pool->busy);
}
