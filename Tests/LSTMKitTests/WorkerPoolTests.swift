import Foundation
import Testing

@testable import LSTMKit

/// The persistent pool: every part of every job runs exactly once, whether the workers are spinning or parked,
/// with several callers at once (one gets the pool, the others run alone) and with jobs started from inside a part.
struct WorkerPoolTests {
    /// Runs `jobs` jobs of 1…5 parts; each part bumps its own counter (one writer per slot, so no race).
    static func exercise(_ pool: WorkerPool, jobs: Int) -> Bool {
        var ok = true
        for job in 0..<jobs {
            let parts = 1 + job % 5
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: parts)
            counts.initialize(repeating: 0, count: parts)
            nonisolated(unsafe) let c = counts
            pool.run(parts: parts) { part in c[part] += 1 }
            for part in 0..<parts where counts[part] != 1 { ok = false }
            counts.deallocate()
        }
        return ok
    }

    @Test func everyPartOnceSpinningAndParked() {
        let pool = WorkerPool(threads: 3)
        #expect(pool.threads == 3)
        #expect(Self.exercise(pool, jobs: 5000))
        pool.spinMicroseconds = 0  // park after every job: the wake-up path
        #expect(Self.exercise(pool, jobs: 2000))
        pool.spinMicroseconds = 50
        for _ in 0..<20 {
            #expect(Self.exercise(pool, jobs: 10))
            usleep(200)  // long enough to park between bursts
        }
    }

    @Test func concurrentCallersAndNestedJobs() {
        let pool = WorkerPool(threads: 2)
        let results = UnsafeMutablePointer<Bool>.allocate(capacity: 4)
        results.initialize(repeating: false, count: 4)
        defer { results.deallocate() }
        nonisolated(unsafe) let r = results
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            r[caller] = Self.exercise(pool, jobs: 1000)
        }
        #expect(Array(UnsafeBufferPointer(start: results, count: 4)) == [true, true, true, true])
        // A part that starts its own job on the same pool: the inner job runs on that thread.
        var inner = [Int](repeating: 0, count: 6)
        inner.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let p = buffer.baseAddress!
            pool.run(parts: 2) { outer in
                pool.run(parts: 3) { part in p[outer * 3 + part] += 1 }
            }
        }
        #expect(inner == [1, 1, 1, 1, 1, 1])
    }
}
