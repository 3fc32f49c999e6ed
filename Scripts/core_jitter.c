// How evenly the cores of this machine run at the same moment: every core, pinned, runs the FMA-peak loop in short
// slices at once; each core's rate in every 0.5 ms bin, the mean of the cores' rates and the mean of the slowest
// core's rate per bin. Work split statically over the cores and joined every step (the per-step products) runs at
// the slowest core's pace, so "slowest / mean" is about what such a step can reach on this machine; on a quiet
// dedicated machine it reads ~1.00.
//
//     clang -O2 Scripts/core_jitter.c -o /tmp/core_jitter -lpthread && /tmp/core_jitter [cores] [runs]
//
// Linux (pthread_setaffinity_np); x86-64 with FMA (AVX-512 when the CPU has it, as LSTMKit's kernels).
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { SLICES = 4000, MAX_CORES = 64 };
static const double BIN = 0.0005;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// 10 independent chains: both FMA pipes busy. Returns a value so that the loop is not removed.
__attribute__((target("avx512f"))) static float fma512(long iterations) {
    __m512 a0 = _mm512_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(_mm512_add_ps(a6, a7), _mm512_add_ps(a8, a9))));
    return _mm512_reduce_add_ps(a0);
}

__attribute__((target("avx2,fma"))) static float fma256(long iterations) {
    __m256 a0 = _mm256_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y);
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return out[0] + out[1];
}

static int wide;
static double flops_per_slice;
typedef struct { int core; double done[SLICES]; float sink; } worker;

static void *run(void *argument) {
    worker *w = (worker *)argument;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->core, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    volatile long iterations = wide ? 30000 : 60000;   // ~50 µs a slice
    for (int s = 0; s < SLICES; s++) {
        w->sink += wide ? fma512(iterations) : fma256(iterations);
        w->done[s] = now();
    }
    return NULL;
}

int main(int argc, char **argv) {
    const int cores = argc > 1 ? atoi(argv[1]) : 2, runs = argc > 2 ? atoi(argv[2]) : 3;
    if (cores < 1 || cores > MAX_CORES || runs < 1) {
        fprintf(stderr, "usage: core_jitter [cores 1..%d] [runs ≥ 1]\n", MAX_CORES);
        return 2;
    }
    wide = __builtin_cpu_supports("avx512f");
    flops_per_slice = (wide ? 30000.0 * 16 : 60000.0 * 8) * 10 * 2;
    worker *w = calloc((size_t)cores, sizeof(worker));
    if (!w) return 1;
    float sink = 0;
    for (int r = 0; r < runs; r++) {
        pthread_t threads[MAX_CORES];
        const double start = now();
        for (int c = 0; c < cores; c++) {
            w[c].core = c;
            pthread_create(&threads[c], NULL, run, &w[c]);
        }
        for (int c = 0; c < cores; c++) pthread_join(threads[c], NULL);
        // Bins up to the first core's end, skipping the first 10 ms (threads starting).
        double end = w[0].done[SLICES - 1];
        for (int c = 1; c < cores; c++) end = w[c].done[SLICES - 1] < end ? w[c].done[SLICES - 1] : end;
        const int first = (int)(0.010 / BIN), bins = (int)((end - start) / BIN);
        if (bins <= first) continue;
        // Each core's work done by time t, linear between its slices' ends; the work of a bin is its difference at
        // the bin's edges (whole slices counted per bin would read ±10 % from rounding alone).
        double *rate = calloc((size_t)(bins * cores), sizeof(double));
        if (!rate) return 1;
        for (int c = 0; c < cores; c++) {
            int s = 0;
            double previous = 0;
            for (int b = 0; b <= bins; b++) {
                const double t = start + b * BIN;
                while (s < SLICES && w[c].done[s] < t) s++;
                double work;
                if (s == 0) work = 0;
                else if (s == SLICES) work = SLICES;
                else work = s + (t - w[c].done[s - 1]) / (w[c].done[s] - w[c].done[s - 1]);
                if (b > 0) rate[(b - 1) * cores + c] = (work - previous) * flops_per_slice / BIN / 1e9;
                previous = work;
            }
        }
        double mean = 0, slowest = 0;
        int slow = 0;
        for (int b = first; b < bins; b++) {
            double sum = 0, least = 1e30;
            for (int c = 0; c < cores; c++) {
                sum += rate[b * cores + c];
                least = rate[b * cores + c] < least ? rate[b * cores + c] : least;
            }
            mean += sum / cores;
            slowest += least;
        }
        const int n = bins - first;
        mean /= n;
        slowest /= n;
        for (int b = first; b < bins; b++)
            for (int c = 0; c < cores; c++)
                if (rate[b * cores + c] < 0.7 * mean) { slow++; break; }
        printf("run %d: %d bins of 0.5 ms, %s; mean %.1f GFLOP/s per core, slowest core %.1f (%.3f of the mean); "
               "bins with a core below 70 %% of the mean: %d (%.1f %%)\n",
               r + 1, n, wide ? "AVX-512" : "AVX2", mean, slowest, slowest / mean, slow, 100.0 * slow / n);
        free(rate);
    }
    for (int c = 0; c < cores; c++) sink += w[c].sink;
    free(w);
    return sink > 0 ? 0 : 1;
}
