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

    /// `runTogether` gives every part a thread at once: parts that each wait until all have arrived finish (run in
    /// turn on one thread, the first would wait forever — here 10 s, then the test fails). It declines, running
    /// nothing, when it cannot: more parts than threads, or from inside a part of another job (the pool is busy).
    @Test func runTogetherRunsPartsAtOnce() {
        for threads in [2, 3] {
            let pool = WorkerPool(threads: threads)
            let lock = Mutex()
            for _ in 0..<200 {
                var arrived = 0, met = [Bool](repeating: false, count: threads)
                let ran = met.withUnsafeMutableBufferPointer { met in
                    nonisolated(unsafe) let m = met.baseAddress!
                    return withUnsafeMutablePointer(to: &arrived) { arrived in
                        nonisolated(unsafe) let a = arrived
                        return pool.runTogether(parts: threads) { part in
                            lock.withLock { a.pointee += 1 }
                            let deadline = Date().addingTimeInterval(10)
                            while lock.withLock({ a.pointee }) < threads && Date() < deadline {}
                            m[part] = lock.withLock { a.pointee } == threads
                        }
                    }
                }
                #expect(ran && met == [Bool](repeating: true, count: threads), "\(threads) threads")
            }
            var ranAnything = false
            #expect(!pool.runTogether(parts: threads + 1) { _ in ranAnything = true })
            var nested: [Bool] = []
            pool.run(parts: 2) { part in
                if part == 0 { nested.append(pool.runTogether(parts: 2) { _ in ranAnything = true }) }
            }
            #expect(nested == [false] && !ranAnything)
        }
    }

    /// An adaptive split moves rows away from a slower part: with the first block timed at 4 s per 16 rows and the
    /// second at 1 s (a core at a quarter of the other's speed), the first block's share goes 0.5 → 0.35 → 0.275 …
    /// toward 0.2, and its bounds follow in whole granules (32 rows: 16, 12, 8), but not a change of less than ¾ of a
    /// granule (measurement noise would move them back and forth). Then a real run over a pool: every
    /// window covers every row once, in blocks of whole granules, whatever the timings.
    @Test func adaptiveSplitFollowsTheFasterPart() {
        let split = AdaptiveSplit()
        #expect(split.bounds(32, parts: 2, granule: 4) == [0, 16, 32])
        split.record(bounds: [0, 16, 32], seconds: [4, 1])
        #expect(split.currentShares == [0.35, 0.65])
        #expect(split.bounds(32, parts: 2, granule: 4) == [0, 12, 32])
        for _ in 0..<10 {
            let bounds = split.bounds(32, parts: 2, granule: 4)
            // Rows per second: the first block 4, the second 16.
            split.record(bounds: bounds, seconds: [Double(bounds[1]) / 4, Double(32 - bounds[1]) / 16])
        }
        #expect(abs(split.currentShares[0] - 0.2) < 0.01)
        #expect(split.bounds(32, parts: 2, granule: 4) == [0, 8, 32])
        // A share that moves the ideal bound by less than ¾ of a granule (0.2 → 0.33 of 32 rows: 8 → 10.6 rows,
        // which alone would round to 12) leaves it at 8.
        split.record(bounds: [0, 8, 32], seconds: [8.0 / 0.46, 24.0 / 0.54])
        #expect(abs(split.currentShares[0] - 0.33) < 0.01)
        #expect(split.bounds(32, parts: 2, granule: 4) == [0, 8, 32])
        // Three parts keep a granule each even when one is far slower.
        let three = AdaptiveSplit()
        _ = three.bounds(12, parts: 3, granule: 4)
        three.record(bounds: [0, 4, 8, 12], seconds: [1000, 1, 1])
        #expect(three.bounds(12, parts: 3, granule: 4) == [0, 4, 8, 12])
        let pool = WorkerPool(threads: 2)
        for count in [32, 33, 9, 3] {
            var covered = [Int](repeating: 0, count: count)
            covered.withUnsafeMutableBufferPointer { cover in
                nonisolated(unsafe) let c = cover.baseAddress!
                for _ in 0..<5 {
                    split.run(count, parts: 2, granule: 4, pool: pool) { r0, r1 in
                        for r in r0..<r1 { c[r] += 1 }
                    }
                }
            }
            #expect(covered == [Int](repeating: 5, count: count), "\(count) rows")
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
    /// runs on the calling thread (a recurrence's part 0 keeps its weights in the caller's core). (Before home parts,
    /// the caller ran part 0 in 21–42 % of the jobs.) Part 0 then holds the caller until every other part has
    /// started (or 5 s pass), so the other parts must run on the workers: a pool whose workers never took a part, or
    /// whose caller took them first, fails. Waiting instead of counting makes this independent of how busy the
    /// machine is (CI runs the suites side by side on two cores, where a hot-worker count failed).
    @Test func homeParts() {
        for threads in [2, 3] {
            let pool = WorkerPool(threads: threads)
            let caller = pthread_self()
            let jobs = 300
            var onCaller = 0, othersOnWorkers = 0, timedOut = 0
            let runners = UnsafeMutablePointer<pthread_t>.allocate(capacity: threads)
            defer { runners.deallocate() }
            nonisolated(unsafe) let r = runners
            let started = NSCondition()
            nonisolated(unsafe) var count = 0
            nonisolated(unsafe) var late = false
            for _ in 0..<jobs {
                count = 0
                late = false
                pool.run(parts: threads) { part in
                    r[part] = pthread_self()
                    started.lock()
                    count += 1
                    if part == 0 {
                        let deadline = Date(timeIntervalSinceNow: 5)
                        while count < threads && started.wait(until: deadline) {}
                        if count < threads { late = true }
                    } else {
                        started.broadcast()
                    }
                    started.unlock()
                }
                if pthread_equal(runners[0], caller) != 0 { onCaller += 1 }
                if late { timedOut += 1; continue }
                if (1..<threads).allSatisfy({ pthread_equal(runners[$0], caller) == 0 }) { othersOnWorkers += 1 }
            }
            #expect(onCaller == jobs, "threads \(threads): part 0 on the caller in \(onCaller) of \(jobs) jobs")
            #expect(timedOut == 0, "threads \(threads): \(timedOut) jobs whose other parts never started")
            #expect(othersOnWorkers == jobs - timedOut,
                    "threads \(threads): the other parts on workers in \(othersOnWorkers) of \(jobs) jobs")
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
