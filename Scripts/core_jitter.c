// How evenly the cores of this machine run at the same moment: every core, pinned, runs the FMA-peak probe's loop
// (lstmk_fma_peak_run, the one `lstm bench` measures the peak with) in slices of about 50 µs at once; each core's
// rate in every 0.5 ms bin, the mean of the cores' rates and the mean of the slowest core's rate per bin. Work split
// statically over the cores and joined every step (the per-step products) runs at the slowest core's pace, so
// "slowest / mean" is about what such a step can reach on this machine; on a quiet dedicated machine it reads ~1.00.
//
//     clang -O2 -I Sources/_LSTMKernels/include Scripts/core_jitter.c Sources/_LSTMKernels/*.c -lm -lpthread \
//         -o /tmp/core_jitter && /tmp/core_jitter [cores] [runs]
//
// Linux (pthread_setaffinity_np). The probe runs the kernel level LSTMKit picks (LSTMKIT_KERNEL caps it).
#define _GNU_SOURCE
#include "LSTMKernels.h"
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

static long iterations_per_slice;
static double flops_per_slice;
typedef struct { int core, pinned; double done[SLICES]; } worker;

static void *run(void *argument) {
    worker *w = (worker *)argument;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->core, &set);
    w->pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    float sink;   // the probe's result, not needed here
    for (int s = 0; s < SLICES; s++) {
        lstmk_fma_peak_run(iterations_per_slice, &sink);
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
    // Slices of about 50 µs at this level's rate: the fastest of five timed calls, after a warm-up.
    float sink;
    double flops = 0, best = 1e30;
    for (int i = 0; i < 8; i++) {
        const double t = now();
        flops = lstmk_fma_peak_run(100000, &sink);
        const double elapsed = now() - t;
        if (i >= 3 && elapsed < best) best = elapsed;
    }
    iterations_per_slice = (long)(100000 * 50e-6 / best);
    if (iterations_per_slice < 100) iterations_per_slice = 100;
    flops_per_slice = flops / 100000 * (double)iterations_per_slice;
    worker *w = calloc((size_t)cores, sizeof(worker));
    if (!w) return 1;
    for (int r = 0; r < runs; r++) {
        pthread_t threads[MAX_CORES];
        const double start = now();
        for (int c = 0; c < cores; c++) {
            w[c].core = c;
            if (pthread_create(&threads[c], NULL, run, &w[c]) != 0) {
                fprintf(stderr, "core_jitter: could not start a thread for core %d\n", c);
                return 1;
            }
        }
        for (int c = 0; c < cores; c++) pthread_join(threads[c], NULL);
        for (int c = 0; c < cores; c++)
            if (!w[c].pinned) {
                fprintf(stderr, "core_jitter: could not pin a thread to core %d; ask for fewer cores\n", c);
                return 1;
            }
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
        printf("run %d: %d bins of 0.5 ms, kernel level %d; mean %.1f GFLOP/s per core, slowest core %.1f (%.3f of the mean); "
               "bins with a core below 70 %% of the mean: %d (%.1f %%)\n",
               r + 1, n, lstmk_sgemm_level(), mean, slowest, slowest / mean, slow, 100.0 * slow / n);
        free(rate);
    }
    free(w);
    return 0;
}
