import _LSTMKernels

/// Process-wide memory settings for a training process.
public enum ProcessMemory {
    /// Keeps memory the process frees for its next allocation instead of handing it back to the kernel. Call it
    /// once, at the start of a process that trains; `lstm` does. Returns whether the setting took (glibc only;
    /// other C libraries are left as they are — macOS's allocator keeps freed blocks already — and so is the
    /// allocator of a build with AddressSanitizer or ThreadSanitizer).
    ///
    /// A training step allocates its outputs and gradients afresh — the LSTM's output, a head's output and δ of its
    /// input, the loss's δ: about 3 MB per step for the `small` benchmark configuration, over 30 MB for `charrnn`.
    /// glibc serves such blocks with mmap, or from the top of its heap, which it trims once more than twice the last
    /// freed block is free there, so every step faults all those pages in again (the kernel zeroes each one) while
    /// the other cores wait: measured, 12 % of a `small` training step (6.4 → 5.6 ms, alternated runs of 41) and the
    /// better part of a `charrnn` head's time. Afterwards blocks up to 32 MB (glibc's largest mmap threshold) come
    /// from a heap that is never trimmed: the process keeps its peak footprint, which a training loop reaches in its
    /// first step. The same as running with
    /// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647`.
    @discardableResult
    public static func retainFreedMemory() -> Bool {
        lstmk_retain_freed_memory() == 1
    }
}
