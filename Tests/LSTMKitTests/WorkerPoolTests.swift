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

    /// Jobs past the 31 parts a claim mask holds are handed out by a counter: every part still runs once.
    @Test func manyParts() {
        let pool = WorkerPool(threads: 3)
        for parts in [30, 31, 32, 33, 100, 1000] {
            var counts = [Int](repeating: 0, count: parts)
            counts.withUnsafeMutableBufferPointer { buffer in
                nonisolated(unsafe) let c = buffer.baseAddress!
                pool.run(parts: parts) { part in c[part] += 1 }
            }
            #expect(counts == [Int](repeating: 1, count: parts), "\(parts) parts")
        }
    }

    /// Each thread takes its home part first; the caller's part 0 is its own from the start, so on every job part 0
    /// runs on the calling thread (a recurrence's part 0 keeps its weights in the caller's core), and on a hot pool
    /// the workers run theirs. (Before home parts, the caller ran part 0 in 21–42 % of the jobs.) A late worker has
    /// its part taken, so for the workers this counts rather than requires every job.
    @Test func homeParts() {
        for threads in [2, 3] {
            let pool = WorkerPool(threads: threads)
            let caller = pthread_self()
            let jobs = 2000
            var onCaller = 0, notOnCaller = 0
            let runners = UnsafeMutablePointer<pthread_t>.allocate(capacity: threads)
            defer { runners.deallocate() }
            nonisolated(unsafe) let r = runners
            for _ in 0..<jobs {
                pool.run(parts: threads) { part in
                    r[part] = pthread_self()
                    var x = 0.0   // a few µs of work, as a small step's part
                    for i in 0..<2000 { x += Double(i).squareRoot() }
                    if x < 0 { r[part] = caller }
                }
                if pthread_equal(runners[0], caller) != 0 { onCaller += 1 }
                if pthread_equal(runners[threads - 1], caller) == 0 { notOnCaller += 1 }
            }
            #expect(onCaller == jobs, "threads \(threads): part 0 on the caller in \(onCaller) of \(jobs) jobs")
            if threads == 2 {
                // Two threads on two cores: the worker is hot and takes part 1 nearly always.
                #expect(notOnCaller >= jobs / 4, "part 1 on the worker in \(notOnCaller) of \(jobs) jobs")
            }
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
