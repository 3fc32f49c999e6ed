// Process-wide allocator tuning for training processes (see ProcessMemory.swift).

#include "LSTMKernels.h"

#if defined(__linux__)
#include <features.h>  // defines __GLIBC__ on glibc
#endif
#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
#endif

// Under AddressSanitizer or ThreadSanitizer malloc is the sanitizer's, which glibc's settings do not reach.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LSTMK_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LSTMK_SANITIZER_ALLOCATOR 1
#endif
#endif

int lstmk_sanitizer_allocator(void) {
#if defined(LSTMK_SANITIZER_ALLOCATOR)
    return 1;
#else
    return 0;
#endif
}

int lstmk_retain_freed_memory(void) {
#if defined(__GLIBC__) && !defined(LSTMK_SANITIZER_ALLOCATOR)
    // Blocks up to 32 MB (glibc's largest mmap threshold) from the heap, and a heap top that is never trimmed.
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#else
    return 0;
#endif
}
