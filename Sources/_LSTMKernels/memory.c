// Process-wide allocator tuning for training processes (see ProcessMemory.swift).

#include "LSTMKernels.h"

#if defined(__linux__)
#include <features.h>  // defines __GLIBC__ on glibc
#endif
#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
#endif

int lstmk_retain_freed_memory(void) {
#if defined(__GLIBC__)
    // Blocks up to 32 MB (glibc's largest mmap threshold) from the heap, and a heap top that is never trimmed.
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#else
    return 0;
#endif
}
