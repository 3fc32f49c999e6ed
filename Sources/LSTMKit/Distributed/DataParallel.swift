import Foundation

/// Data-parallel training: each step's batch split by rows into S gradient shards, each process computing
/// S / P of them, the gradients summed in shard order (`ProcessGroup.reduceInShardOrder`), and every process
/// applying the same update. The processes agree on everything at the start and compare their parameters every
/// `parameterCheckInterval` steps.
extension Trainer {
    /// Splits every following step into `shards` gradient shards over the processes of `group`.
    ///
    /// `shards` = 1 on one process is the plain step, bit for bit. For any other S the model depends on S and the
    /// seed only: 1, 2 or 4 processes with S = 4 write the same bytes.
    /// - Parameters:
    ///   - group: the processes (``ProcessGroup/current()``).
    ///   - shards: S, a multiple of the number of processes.
    /// - Throws: `LSTMKitError.distributed` when S is not a multiple of the process count, or when the processes
    ///   were started with different options, data, model or checkpoint (every process throws the same error).
    public func distribute(over group: ProcessGroup, shards: Int) throws(LSTMKitError) {
        guard shards >= 1 else { throw .invalidConfiguration("the number of gradient shards must be at least 1, got \(shards)") }
        guard shards % group.size == 0 else {
            throw .distributed("\(group.size) processes cannot share \(shards) gradient shards: the shard count must be a multiple of the process count")
        }
        (self.group, self.shards) = (group, shards)
        let all = try group.allGather(Array(agreementText.utf8))
        if let r = all.firstIndex(where: { $0 != all[0] }) {
            let mine = String(decoding: all[r], as: UTF8.self).split(separator: "\n")
            let first = String(decoding: all[0], as: UTF8.self).split(separator: "\n")
            let what = zip(mine, first).first { $0 != $1 }.map { String($0.0.prefix(while: { $0 != "=" })) } ?? "settings"
            throw .distributed("process \(r) was started with other \(what) than process 0; start every process with the same command, data and checkpoint")
        }
    }

    /// What every process of a job must agree on, one `name=value` per line.
    var agreementText: String {
        [
            "options=\(jsonString(options))",
            "shards=\(shards)",
            "data=\(source.fingerprint)",
            "model=\(jsonString(model.configuration))",
            "step=\(step)",
            "parameters=\(parameterHash)",
        ].joined(separator: "\n")
    }

    /// FNV-1a of every parameter's bits.
    var parameterHash: String {
        var f = Fingerprint()
        for v in model.parameters.storage { f.add(v) }
        return f.text
    }

    /// Stops with `.distributed` if any process's parameters differ from process 0's.
    func checkParametersAgree() throws(LSTMKitError) {
        let all = try group.allGather(Array(parameterHash.utf8))
        if let r = all.firstIndex(where: { $0 != all[0] }) {
            throw .distributed("after step \(step) the parameters of process \(r) differ from process 0's (different builds or kernels?); stopping, the last checkpoint is kept")
        }
    }

    /// Whether any process asked to stop (every process must leave the loop at the same step).
    func stopAgreed(_ mine: Bool) throws(LSTMKitError) -> Bool {
        guard group.size > 1 else { return mine }
        return try group.allGather([mine ? 1 : 0]).contains([1])
    }

    /// The rows of the carried state this process computes: its shards' rows of B.
    func ownRows(of B: Int, rank: Int) -> Range<Int> {
        let k = shards / group.size
        return (rank * k * B / shards)..<((rank + 1) * k * B / shards)
    }

    /// Brings every process's rows of the carried state to every process (a checkpoint holds all of them).
    func gatherCarriedState() throws(LSTMKitError) {
        guard group.size > 1, var state = carry else { return }
        let part = state.rows(ownRows(of: state.batch, rank: group.rank))
        let bytes = (part.hidden + part.cell).withUnsafeBytes { Array($0) }
        let all = try group.allGather(bytes)
        for (r, data) in all.enumerated() {
            let rows = ownRows(of: state.batch, rank: r)
            let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let L = state.layers, (P, H) = (state.hiddenSize, state.cellSize), n = L * rows.count * P
            guard values.count == n + L * rows.count * H else {
                throw .distributed("process \(r) sent \(values.count) state values, expected \(n + L * rows.count * H)")
            }
            state.replaceRows(from: rows.lowerBound, with: LSTMState(hidden: Array(values[..<n]), cell: Array(values[n...]),
                                                                    layers: L, batch: rows.count, hiddenSize: P, cellSize: H))
        }
        carry = state
    }

    /// Forward and backward of this process's shards of `batch`, then the gradients summed in shard order into
    /// `model.gradients` on every process. Returns the batch's mean loss and the carried state (this process's
    /// rows updated).
    func shardedLossAndGradients(_ batch: TrainingBatch, dropoutSeed: UInt64?) throws(LSTMKitError) -> (Double, LSTMState<Float>?) {
        let B = batch.input.batch, S = shards
        let width: Int
        if case .classes = batch.targets { width = 1 } else { width = model.configuration.head.outputs }
        let N = model.targetCount(batch.input, targets: batch.targets)
        var local: [[Float]] = [], sums: [Double] = []
        var final = carry
        for s in group.shards(of: S) {
            let rows = (s * B / S)..<((s + 1) * B / S)
            model.zeroGradients()
            guard !rows.isEmpty else {
                local.append(model.gradients.storage)
                sums.append(0)
                continue
            }
            let part = batch.input.rows(rows)
            let targets = batch.targets.rows(rows, of: batch.input, part: part, width: width)
            // Each shard draws its own dropout masks from the step's seed and its index.
            let seed = dropoutSeed.map { seed -> UInt64 in
                var r = RandomSource(seed: seed ^ (0xA24B_AED4_963E_E407 &* UInt64(s + 1)))
                return r.next()
            }
            let r = try model.lossAndGradients(part, targets: targets, initial: carry?.rows(rows), dropoutSeed: seed,
                                               normalizer: N, inputGradient: false)
            local.append(model.gradients.storage)
            sums.append(r.loss * Double(r.count))
            final?.replaceRows(from: rows.lowerBound, with: r.final)
        }
        model.gradients.storage = try group.reduceInShardOrder(local, shards: S)
        let everyone = try group.allGather(sums.withUnsafeBytes { Array($0) })
        var total = 0.0
        for data in everyone { for v in data.withUnsafeBytes({ Array($0.bindMemory(to: Double.self)) }) { total += v } }
        return (N > 0 ? total / Double(N) : 0, final)
    }
}
