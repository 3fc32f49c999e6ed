#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import _LSTMKernels

/// The persistent worker threads LSTMKit's products run on (the C pool in `_LSTMKernels/pool.c`).
///
/// A job is a number of independent parts; the calling thread takes parts too. After a job the workers spin for
/// `spinMicroseconds` (a recurrence issues its next product a few microseconds later, and a parked thread takes
/// tens of microseconds to wake — far more on a VM whose idle vCPU the host has descheduled) and then park, so an
/// idle library burns no CPU. The default, 1 ms, outlasts the serial stretches of a training step (the loss, the
/// gradient norm, the next batch): at 200 µs the workers parked in them and `lstm train` ran 4–8 % slower. Each thread has a home part (the
/// caller part 0, the workers 1, 2, …) that it takes first, so on a hot pool part p of every step runs on the same
/// core and finds the same weights in its cache; a thread that is late has its part taken by another, so which
/// thread runs a part is not guaranteed. LSTMKit's parts are column or row blocks with fixed chains, so the results
/// are the same bits whatever thread runs them and whatever the thread count.
///
/// The number of threads used by a product is the `threads` its caller passes (`LSTMStash.threads`,
/// `LSTMStream.threads`, `lstm --threads`); the shared pool grows to the largest count asked for.
public final class WorkerPool: @unchecked Sendable {
    private let pool: OpaquePointer?

    /// Threads of this pool including the caller's.
    public let threads: Int

    /// A pool of `threads` threads in all: `threads − 1` workers plus the caller.
    public init(threads: Int) {
        let workers = max(0, min(threads, 256) - 1)
        pool = workers > 0 ? lstmk_pool_create(Int32(workers)) : nil
        self.threads = 1 + (pool.map { Int(lstmk_pool_workers($0)) } ?? 0)
    }

    deinit { lstmk_pool_destroy(pool) }

    /// How long an idle worker spins before parking (default 1 ms).
    public var spinMicroseconds: Int = 1000 {
        didSet { lstmk_pool_set_spin(pool, max(0, spinMicroseconds) * 1000) }
    }

    /// Runs `body(part)` for every part in 0..<parts, spread over the pool, and returns when all are done. Parts must
    /// be independent. A pool busy with another caller's job runs the parts on the calling thread, in order.
    public func run(parts: Int, _ body: (Int) -> Void) {
        guard parts > 1, let pool else {
            for part in 0..<max(0, parts) { body(part) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { context in
                lstmk_pool_run(pool, parts, { context, part in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
                }, context)
            }
        }
    }

    /// Runs `body(part)` for every part at once, each on a thread of its own, when the pool can give every part a
    /// thread now (`threads ≥ parts`, no other job running, not called from inside a part); returns false without
    /// running anything otherwise. For parts that wait for each other (the pipelined inference steps).
    func runTogether(parts: Int, _ body: (Int) -> Void) -> Bool {
        guard parts > 1 else {
            if parts == 1 { body(0) }
            return true
        }
        guard let pool else { return false }
        return withoutActuallyEscaping(body) { body in
            var task = body
            return withUnsafeMutablePointer(to: &task) { context in
                lstmk_pool_run_together(pool, parts, { context, part in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
                }, context) != 0
            }
        }
    }

    nonisolated(unsafe) private static var sharedPool: WorkerPool?
    private static let lock = Mutex()

    nonisolated(unsafe) private static var sharedRequested = 0

    /// The process-wide pool with at least `threads` threads (created or replaced by a bigger one on demand; if
    /// the system starts fewer threads than asked, that pool is kept rather than rebuilt at every call).
    public static func shared(threads: Int) -> WorkerPool {
        lock.withLock {
            if let pool = sharedPool, sharedRequested >= min(threads, 256) { return pool }
            let pool = WorkerPool(threads: threads)
            sharedPool = pool
            sharedRequested = min(threads, 256)
            return pool
        }
    }
}

/// A plain pthread mutex (Synchronization.Mutex needs macOS 15).
final class Mutex: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

extension WorkerPool {
    /// Runs `body(from, to)` on the shared pool for `parts` blocks of 0..<count, each a whole number of `granule`
    /// items but the last (which takes what is left; a block with nothing in it does not run): the one split behind
    /// rows of 4 (`GEMM.rowBlocks`), 16-column panels, unit groups and rows of a loss. `threads`: the pool's size
    /// when there are more parts than threads (the pool hands the extra parts to whichever thread is free first).
    static func blocks(_ count: Int, parts: Int, granule: Int = 1, threads: Int? = nil, _ body: (Int, Int) -> Void) {
        let chunk = ((count + parts - 1) / max(parts, 1) + granule - 1) / granule * granule
        shared(threads: min(parts, threads ?? parts)).run(parts: parts) { part in
            let from = min(count, part * chunk), to = min(count, from + chunk)
            if from < to { body(from, to) }
        }
    }
}

/// Blocks of rows over the threads in proportion to how fast each thread ran its block the last times, for a job
/// that runs again and again with the same shape (the row-split windows of a small LSTM: each thread its rows
/// through every step).
///
/// On the shared 2-core VM LSTMKit is measured on, one core often runs the same rows 1.5–1.7× slower than the other
/// for seconds at a time (small's windows: 8 rows through 50 steps in ~500 µs on one thread, ~830 µs on the
/// other, in both passes, either thread the slow one from run to run), while each core alone runs at full speed.
/// Equal blocks then leave the fast core waiting a third of every window, and blocks dealt from a queue cannot
/// fix a ratio like that with 4 blocks. Each part here is one thread's (its home part, see `WorkerPool`), timed;
/// the shares follow the measured rows per second (half the old share, half the new). Rows are independent, so
/// the split never changes the bits.
final class AdaptiveSplit: @unchecked Sendable {
    private var shares: [Double] = []
    private var last: [Int] = []

    /// The share of rows part p took in the last split (tests).
    var currentShares: [Double] { shares }

    /// Runs `body(from, to)` for `parts` blocks of 0..<count (whole multiples of `granule` but the last, at least
    /// `granule` rows each while there are enough) on `pool` (nil: the shared pool), and updates the shares from
    /// their times.
    func run(_ count: Int, parts: Int, granule: Int = 4, pool: WorkerPool? = nil, _ body: (Int, Int) -> Void) {
        guard parts > 1, count >= parts * granule else {
            WorkerPool.blocks(count, parts: max(1, parts), granule: granule, body)
            return
        }
        let bounds = self.bounds(count, parts: parts, granule: granule)
        var seconds = [Double](repeating: 0, count: parts)
        seconds.withUnsafeMutableBufferPointer { times in
            nonisolated(unsafe) let t = times.baseAddress!
            (pool ?? WorkerPool.shared(threads: parts)).run(parts: parts) { part in
                let start = AdaptiveSplit.now()
                body(bounds[part], bounds[part + 1])
                t[part] = AdaptiveSplit.now() - start
            }
        }
        record(bounds: bounds, seconds: seconds)
    }

    /// The blocks' bounds (parts + 1 values from 0 to count) for the current shares.
    func bounds(_ count: Int, parts: Int, granule: Int) -> [Int] {
        if shares.count != parts || last.count != parts + 1 || last[parts] != count {
            shares = [Double](repeating: 1 / Double(parts), count: parts)
            last = []
        }
        var bounds = [0]
        var cumulative = 0.0
        for p in 0..<(parts - 1) {
            cumulative += shares[p]
            let ideal = cumulative * Double(count) / Double(granule)
            // A bound moves only when the shares call for at least ¾ of a granule more or less than last time
            // (otherwise measurement noise moved it back and forth by one, and the rows or weights with it).
            let rounded = !last.isEmpty && abs(ideal - Double(last[p + 1] / granule)) < 0.75 ? last[p + 1]
                : Int(ideal.rounded()) * granule
            // Every part at least one granule, room left for the ones after it.
            bounds.append(min(max(rounded, bounds[p] + granule), count - (parts - 1 - p) * granule))
        }
        bounds.append(count)
        last = bounds
        return bounds
    }

    /// Moves the shares halfway to the rows per second each block ran at (`seconds[p]` for rows bounds[p]..<bounds[p+1]).
    func record(bounds: [Int], seconds: [Double]) {
        guard shares.count == seconds.count, seconds.allSatisfy({ $0 > 0 }) else { return }
        let rates = seconds.indices.map { Double(bounds[$0 + 1] - bounds[$0]) / seconds[$0] }
        let total = rates.reduce(0, +)
        for p in shares.indices { shares[p] = 0.5 * shares[p] + 0.5 * rates[p] / total }
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
