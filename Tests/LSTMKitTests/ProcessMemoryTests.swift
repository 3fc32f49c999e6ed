import Foundation
import Testing

@testable import LSTMKit
import _LSTMKernels

/// ProcessMemory.retainFreedMemory: after it, a loop that allocates, fills and frees the same large blocks (a
/// training step's outputs) no longer faults their pages in again on every pass.
struct ProcessMemoryTests {
    #if os(Linux)
    /// Minor page faults of the calling thread so far (RUSAGE_THREAD: other tests' threads do not count).
    static func faults() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD
        return usage.ru_minflt
    }

    @Test func freedBlocksStayMapped() {
        // Under a sanitizer (Scripts/sanitizers.sh) malloc is the sanitizer's: the setting reports that it did not
        // take, and the page faults are that allocator's.
        let sanitized = lstmk_sanitizer_allocator() == 1
        #expect(ProcessMemory.retainFreedMemory() == !sanitized)
        if sanitized { return }
        func pass() -> Float {
            // Three 8 MB blocks, as a step's output, head output and δ: 6144 pages.
            let blocks = (0..<3).map { i in [Float](repeating: Float(i), count: 2 << 20) }
            return blocks.reduce(0) { $0 + $1[$1.count - 1] }
        }
        _ = pass()  // the heap grows to the peak once
        let before = Self.faults()
        var sum: Float = 0
        for _ in 0..<10 { sum += pass() }
        let faults = Self.faults() - before
        #expect(sum == 30)
        // Without the setting glibc trims the heap top and each pass faults its 6144 pages in again (measured:
        // 61,000 faults for the 10 passes); with it, a handful.
        #expect(faults < 1000, "\(faults) page faults in 10 passes over 24 MB of blocks")
    }
    #endif
}
