import Foundation
import _LSTMMPI

/// The processes of a data-parallel job: one process, or the world of an MPI job started by `mpirun`.
///
/// MPI is loaded at run time (`dlopen` of Open MPI's `libmpi.so.40` or MPICH's `libmpich.so.12`, or the library
/// named by `LSTMKIT_MPI_LIBRARY`), and only when a launcher started the process (`OMPI_COMM_WORLD_SIZE` or
/// `PMI_SIZE` is set), so a plain run never touches it and LSTMKit builds where no MPI is installed. Only byte
/// exchanges are used: every sum is LSTMKit's own, in a fixed order (``reduceInShardOrder(_:shards:)``).
public final class ProcessGroup: @unchecked Sendable {
    /// This process's index, 0..<size; process 0 prints and writes files.
    public let rank: Int
    /// The number of processes.
    public let size: Int
    /// The MPI library's version line, nil for a single process without MPI.
    public let library: String?

    private init(rank: Int, size: Int, library: String?) {
        (self.rank, self.size, self.library) = (rank, size, library)
    }

    /// One process, no MPI: every exchange is a local copy.
    public static let single = ProcessGroup(rank: 0, size: 1, library: nil)

    /// Whether a launcher (`mpirun`, `mpiexec`, `srun` with PMI) started this process.
    public static var launchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMI_SIZE"] != nil
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var world: ProcessGroup?

    /// The world of the MPI job that started this process (MPI initialised on the first call), or ``single``
    /// when no launcher started it.
    /// - Throws: `LSTMKitError.distributed` when a launcher started the process but MPI cannot be loaded.
    public static func current() throws(LSTMKitError) -> ProcessGroup {
        guard launchedByMPI else { return .single }
        lock.lock()
        defer { lock.unlock() }
        if let world { return world }
        var message = [CChar](repeating: 0, count: 1024)
        let library = ProcessInfo.processInfo.environment["LSTMKIT_MPI_LIBRARY"]
        guard lstmkit_mpi_start(library, &message, Int32(message.count)) == 0 else {
            throw .distributed(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        let group = ProcessGroup(rank: Int(lstmkit_mpi_rank()), size: Int(lstmkit_mpi_size()),
                                 library: String(cString: lstmkit_mpi_library_version()))
        world = group
        return group
    }

    /// Ends MPI (`MPI_Finalize`) if it was started; call once, before the process exits normally.
    public static func finish() {
        lock.lock()
        defer { lock.unlock() }
        if world != nil { lstmkit_mpi_finish() }
    }

    /// Ends every process of the job with `code` (`MPI_Abort`); for a failure only this process saw, when the
    /// others would otherwise wait for it forever. Exits this process alone without MPI.
    public func abort(code: Int32) -> Never {
        if library != nil { lstmkit_mpi_abort(code) }
        exit(code)
    }

    private func check(_ code: Int32, _ what: String) throws(LSTMKitError) {
        if code != 0 { throw .distributed("\(what) failed with MPI error \(code) on process \(rank)") }
    }

    /// Every process's `bytes` (of any length), indexed by rank.
    public func allGather(_ bytes: [UInt8]) throws(LSTMKitError) -> [[UInt8]] {
        guard size > 1 else { return [bytes] }
        var counts = [Int32](repeating: 0, count: size)
        var mine = Int32(bytes.count)
        let offsets = (0..<size).map { Int32($0 * 4) }
        let four = [Int32](repeating: 4, count: size)
        try check(counts.withUnsafeMutableBytes { c in
            lstmkit_mpi_allgatherv(&mine, 4, c.baseAddress, four, offsets)
        }, "allgather of sizes")
        let total = counts.reduce(0) { $0 + Int($1) }
        guard total < Int(Int32.max) else { throw .distributed("allgather of \(total) bytes: more than MPI's int counts hold") }
        var starts = [Int32](repeating: 0, count: size)
        for r in 1..<size { starts[r] = starts[r - 1] + counts[r - 1] }
        var all = [UInt8](repeating: 0, count: total)
        try check(bytes.withUnsafeBytes { b in
            all.withUnsafeMutableBytes { a in
                lstmkit_mpi_allgatherv(b.baseAddress, mine, a.baseAddress, counts, starts)
            }
        }, "allgather")
        return (0..<size).map { r in Array(all[Int(starts[r])..<Int(starts[r] + counts[r])]) }
    }

    /// The shards this process computes when a step's batch is split into `shards` gradient shards: a contiguous
    /// run of `shards / size` of them.
    public func shards(of shards: Int) -> Range<Int> {
        let k = shards / size
        return (rank * k)..<((rank + 1) * k)
    }

    /// The sum of every shard's vector, added in shard order (((g₀ + g₁) + g₂) + …) for each element, on every
    /// process, whatever the number of processes.
    ///
    /// - Parameters:
    ///   - local: this process's shards (``shards(of:)``), each a vector of the same length N.
    ///   - S: the number of shards of the whole job (a multiple of `size`).
    /// - Returns: the N sums. Each process sums its slice of N over the S shards, then the slices are gathered:
    ///   2(P − 1)/P × N values sent per process, as a ring all-reduce, and bitwise the same for any P dividing S.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func reduceInShardOrder<Scalar: LSTMScalar>(_ local: [[Scalar]], shards S: Int) throws(LSTMKitError) -> [Scalar] {
        let P = size, k = S / P
        require(local.count == k && S % P == 0, "reduceInShardOrder: got \(local.count) shards on each of \(P) processes, expected \(S) / \(P)")
        let N = local[0].count
        let bytes = MemoryLayout<Scalar>.stride
        func slice(_ r: Int) -> Range<Int> { (r * N / P)..<((r + 1) * N / P) }
        guard P > 1 else {
            var sum = local[0]
            for s in 1..<S { let g = local[s]; for i in 0..<N { sum[i] += g[i] } }
            return sum
        }
        guard S * N * bytes < Int(Int32.max) else {
            throw .distributed("a gradient of \(N) values × \(S) shards is more than MPI's int counts hold; use fewer shards")
        }
        // Send to process r: slice r of each local shard, shard by shard. Receive from q: my slice of q's shards,
        // so the receive buffer holds my slice of every shard in shard order. The buffers are kept from call to
        // call (fresh pages for every step cost more than the exchange on one machine).
        let mine = slice(rank).count
        let send = scratch(0, bytes: k * N * bytes).bindMemory(to: Scalar.self)
        let received = scratch(1, bytes: S * mine * bytes).bindMemory(to: Scalar.self)
        var sendCounts = [Int32](), sendOffsets = [Int32](), filled = 0
        for r in 0..<P {
            sendOffsets.append(Int32(filled * bytes))
            for g in local {
                g.withUnsafeBufferPointer { g in
                    let part = slice(r)
                    (send.baseAddress! + filled).update(from: g.baseAddress! + part.lowerBound, count: part.count)
                    filled += part.count
                }
            }
            sendCounts.append(Int32(k * slice(r).count * bytes))
        }
        let receiveCounts = [Int32](repeating: Int32(k * mine * bytes), count: P)
        let receiveOffsets = (0..<P).map { Int32($0 * k * mine * bytes) }
        try check(lstmkit_mpi_alltoallv(send.baseAddress, sendCounts, sendOffsets, received.baseAddress, receiveCounts,
                                        receiveOffsets), "alltoallv of gradient slices")
        // My slice of the sum, shard by shard, written where it belongs in the result.
        var all = [Scalar](repeating: 0, count: N)
        let at = slice(rank).lowerBound
        all.withUnsafeMutableBufferPointer { all in
            let sum = all.baseAddress! + at
            sum.update(from: received.baseAddress!, count: mine)
            for s in 1..<S {
                let part = received.baseAddress! + s * mine
                for i in 0..<mine { sum[i] += part[i] }
            }
        }
        let counts = (0..<P).map { Int32(slice($0).count * bytes) }
        let offsets = (0..<P).map { Int32(slice($0).lowerBound * bytes) }
        try check(all.withUnsafeMutableBytes { a in
            lstmkit_mpi_allgatherv_in_place(a.baseAddress, counts, offsets)
        }, "allgather of summed slices")
        return all
    }

    private var scratchBuffers: [UnsafeMutableRawBufferPointer] = []

    /// Buffer `k` of at least `bytes` bytes, kept for the next call.
    private func scratch(_ k: Int, bytes: Int) -> UnsafeMutableRawBufferPointer {
        while scratchBuffers.count <= k { scratchBuffers.append(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
        if scratchBuffers[k].count < bytes {
            scratchBuffers[k].deallocate()
            scratchBuffers[k] = .allocate(byteCount: bytes, alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: scratchBuffers[k][0..<bytes])
    }

    /// The first failure any process reports (nil: none did), on every process, so that all of them stop
    /// together instead of the others waiting for one that stopped alone. A message from a process other than 0
    /// is prefixed with its number.
    public func firstFailure(_ message: String?) throws(LSTMKitError) -> String? {
        guard size > 1 else { return message }
        let all = try allGather(message.map { [1] + Array($0.utf8) } ?? [0])
        guard let r = all.firstIndex(where: { $0.first == 1 }) else { return nil }
        let text = String(decoding: all[r].dropFirst(), as: UTF8.self)
        return r == 0 ? text : "process \(r): \(text)"
    }
}
