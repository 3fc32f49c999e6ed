import _LSTMKernels

/// `LSTM.forward` and `LSTM.backward`: the layer loop, and one direction of one layer over a window of steps.
///
/// The equations are in `LSTM.swift`. Per direction and step t (B_t rows, packed row `base = offsets[t]`):
/// ```
/// forward:  Z_t += h_prev·W_hhᵀ        (B_t, P)·(P, 4H), Z_t already holds x_t·W_ihᵀ + b for all steps
///           pointwise: gates, S_t, m_t   (h_t = m_t, or h_t = m_t·W_hrᵀ (B_t, H)·(H, P))
/// backward: δh_t = δ(from above) + carry          carry (B, P): from the step visited before
///           δm_t = δh_t (or δh_t·W_hr)            pointwise: δZ_t, δS carry
///           carry[0..<B_t] = δZ_t·W_hh (⊙ m)      rows past B_t keep what they hold (see below)
/// ```
/// "prev" is t−1 for the forward direction and t+1 for the reverse one. Rows are sorted longest first, so the rows
/// running at step t are a prefix, and in the forward direction they are a prefix of step t−1's rows. In the
/// reverse direction rows *start* at their last real step: at step t the rows [B_{t+1}, B_t) take (h0, c0), the
/// others step t+1's state (`previousState`). The carries make the final states and their δ come out right without
/// special cases: a row's carry is only written while the row runs, so it holds δ(h_n, c_n) until the row's last
/// real step is reached (forward direction), and after its first step is done it holds δ(h0, c0) (both).
///
/// Windows and memory-lean BPTT. The passes run over a window of steps [first, end) whose rows sit in the stash's
/// buffers from row 0. Normally there is one window, the whole sequence. With `LSTM.checkpointInterval` k the
/// sequence is cut into windows of k steps; forward keeps only each window's starting (h, c) of every layer (a
/// checkpoint) and backward, window by window from the last, recomputes the window's forward pass from its
/// checkpoint (the same operations on the same values, so the same bits) and runs backward through it, the carries
/// passing from one window to the one before. Every gradient is accumulated in the order backward visits the rows
/// — the forward direction's rows from the last packed row down to the first — one chain across windows, so any k
/// gives bitwise the gradients of the full stash (products: `accumulateTransposedProduct`).
extension LSTM {
    /// Runs all layers over the whole sequence.
    ///
    /// Arguments:
    /// - `x`: (T, B, I), or (B, T, I) with `layout: .batchFirst`; values at padded positions are ignored.
    /// - `lengths`: the real steps of each row, 1...T, in any order (PyTorch's `pack_padded_sequence` with
    ///     `enforce_sorted=False`); nil means every row has T.
    /// - `initial`: (h0, c0) of every layer and direction; zero when nil.
    /// - `stash`: keeps what `backward` needs; pass the same stash to `backward`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func forward<S: LSTMScalar>(
        _ x: [S], steps T: Int, batch B: Int, lengths: [Int]? = nil, initial: LSTMState<S>? = nil,
        layout sequenceLayout: SequenceLayout = .timeMajor,
        parameters: ParameterBuffer<S>, stash: LSTMStash<S>, dropoutSeed: UInt64? = nil
    ) -> LSTMOutput<S> {
        let L = layerCount, D = directions, U = stateCount, H = hiddenSize, P = outputSize, I = inputSize
        checkArguments("LSTM.forward", x.count, steps: T, batch: B, lengths: lengths, initial: initial,
                       parameters: parameters)
        let schedule = SequenceSchedule(steps: T, batch: B, lengths: lengths, window: checkpointInterval)
        let N = schedule.rows
        stash.prepare(self, schedule: schedule)
        stash.sequenceLayout = sequenceLayout
        stash.dropoutActive = dropout > 0 && dropoutSeed != nil && L > 1
        if stash.dropoutActive, let dropoutSeed {
            // One mask value per output of every layer but the last, drawn in (layer, packed row, j) order.
            let n = (L - 1) * N * D * P
            stash.dropoutMasks.reserve(n)
            var random = RandomSource(seed: dropoutSeed)
            let scale = S(1 / (1 - dropout))
            for k in 0..<n { stash.dropoutMasks.pointer[k] = random.uniform(0, 1) < dropout ? 0 : scale }
        }
        stash.recurrentDropoutActive = recurrentDropout > 0 && dropoutSeed != nil
        if stash.recurrentDropoutActive, let dropoutSeed {
            // One (B, P) mask per layer and direction, from its own stream of the seed, drawn in batch order (so a
            // row's mask does not depend on the other rows' lengths) and kept in sorted order.
            var random = RandomSource(seed: dropoutSeed ^ 0x5DEE_CE66_D1CE_4E5B)
            let scale = S(1 / (1 - recurrentDropout))
            let drawn = (0..<(U * B * P)).map { _ in random.uniform(0, 1) < recurrentDropout ? 0 : scale }
            stash.recurrentMasks.reserve(U * B * P)
            drawn.withUnsafeBufferPointer {
                schedule.sortRows($0.baseAddress!, stash.recurrentMasks.pointer, units: U, width: P, toSorted: true)
            }
        }
        x.withUnsafeBufferPointer { xs in
            schedule.pack(xs.baseAddress!, stash.input.pointer, width: I, layout: sequenceLayout, window: schedule.whole,
                          threads: stash.threads)
        }
        // (h0, c0), sorted rows: the first window's starting state (with checkpoints, checkpoint 0).
        let h0 = stash.checkpointing ? stash.checkpoints.pointer : stash.initialHidden.pointer
        let c0 = stash.checkpointing ? stash.checkpoints.pointer + U * B * P : stash.initialCell.pointer
        schedule.sortState(initial, hidden: h0, cell: c0, units: U, hiddenWidth: P, cellWidth: H)

        var final = LSTMState<S>(for: self, batch: B)
        var output: [S] = schedule.paddedOutput(width: D * P, layout: sequenceLayout)
        if T == 0 {
            for u in 0..<U {
                for r in 0..<B {
                    let b = schedule.order[r]
                    for k in 0..<P { final.hidden[(u * B + b) * P + k] = h0[(u * B + r) * P + k] }
                    for k in 0..<H { final.cell[(u * B + b) * H + k] = c0[(u * B + r) * H + k] }
                }
            }
            return LSTMOutput(output: output, final: final)
        }
        parameters.storage.withUnsafeBufferPointer { p in
            output.withUnsafeMutableBufferPointer { out in
                prepareWeights(forward: true, parameters: p.baseAddress!, stash: stash)
                for (w, window) in schedule.windows.enumerated() {
                    stash.window = window
                    stash.windowIndex = w
                    forwardWindow(parameters: p.baseAddress!, stash: stash)
                    let top = layerOutput(L - 1, stash)
                    schedule.unpack(top, out.baseAddress!, width: D * P, layout: sequenceLayout, window: window,
                                    threads: stash.threads)
                    // Each row's state after its last real step (forward direction) or after t = 0 (reverse).
                    let Nw = window.rows
                    for u in 0..<U {
                        for r in 0..<B {
                            let step = layers[u].reverse ? 0 : schedule.lengths[r] - 1
                            guard step >= window.first && step < window.end else { continue }
                            let row = schedule.offsets[step] + r - window.rowBase, b = schedule.order[r]
                            let h = stash.hiddens.pointer + (u * Nw + row) * P, c = stash.cells.pointer + (u * Nw + row) * H
                            for k in 0..<P { final.hidden[(u * B + b) * P + k] = h[k] }
                            for k in 0..<H { final.cell[(u * B + b) * H + k] = c[k] }
                        }
                    }
                    if stash.checkpointing && w + 1 < schedule.windows.count {
                        // The next window starts from this one's last step (rows still running there).
                        let next = stash.checkpoints.pointer + (w + 1) * U * B * (P + H)
                        next.update(from: stash.checkpoints.pointer + w * U * B * (P + H), count: U * B * (P + H))
                        let last = window.end - 1, n = schedule.batchSizes[last]
                        let row = schedule.offsets[last] - window.rowBase
                        for u in 0..<U {
                            (next + u * B * P).update(from: stash.hiddens.pointer + (u * Nw + row) * P, count: n * P)
                            (next + U * B * P + u * B * H).update(from: stash.cells.pointer + (u * Nw + row) * H,
                                                                   count: n * H)
                        }
                    }
                }
            }
        }
        return LSTMOutput(output: output, final: final)
    }

    /// Whether a step (of B_t = `rows` rows) runs as one dispatch over blocks of rows, each part its rows' product
    /// and element-wise pass, instead of the product split by columns and then the element-wise pass split by rows:
    /// when W_hh is at most 1 MB (H = 256 without projection), so that every part reading all of it from its L2
    /// costs less than the two dispatches and two waits per step it saves (and a uniform window then runs as one
    /// dispatch per pass, see `forwardDirection`). Measured on the 2-core AVX-512 host (2 MB of L2 per core), forward
    /// + backward alternated in one process against the old 256 KB bound: the main job's LSTM (I = 64, H = 256, two
    /// layers, B = 32, T = 64) faster in 25, 29 and 23 of 30 pairs (medians 47.5 → 44.8, 44.5 → 42.6, 45.3 → 44.2 ms),
    /// H = 192 in 28 of 30, B = 16 in 30 of 30; H = 320 (1.6 MB) 15, 18 and 7 of 20, H = 512 even (10 of 20).
    /// Rows are independent in both passes, so the bits are the same either way.
    func splitsStepsByRows<S>(_: S.Type, rows n: Int, threads: Int) -> Bool {
        S.self == Float.self && outputSize * 4 * hiddenSize <= 1 << 18 && threads >= 2 && n >= 12
    }

    /// A row-split window's rows over the threads: one block per thread (at least `minimumRows` rows each), sized
    /// by `split` from how fast each thread ran its block in the previous windows (`AdaptiveSplit`). Small's
    /// forward + backward, in-process alternated runs against four equal blocks dealt from a queue: faster in 142
    /// and 139 of 201 pairs (medians 6.85 → 6.68 and 6.73 → 6.28 ms), inference in 150 of 201 (2.34 → 2.19 ms).
    static func rowWindow(_ B: Int, threads: Int, minimumRows: Int, split: AdaptiveSplit,
                          _ body: (Int, Int) -> Void) {
        split.run(B, parts: max(1, min(threads, B / minimumRows)), granule: 4, body)
    }

    /// The checks `forward` and `infer` make of their arguments (a message naming `caller` when one fails).
    func checkArguments<S>(_ caller: String, _ count: Int, steps T: Int, batch B: Int, lengths: [Int]?,
                           initial: LSTMState<S>?, parameters: ParameterBuffer<S>) {
        let U = stateCount, H = hiddenSize, P = outputSize, I = inputSize
        require(T >= 0 && B >= 1, "\(caller): need steps ≥ 0 and batch ≥ 1")
        require(count == T * B * I, "\(caller): x has \(count) values, expected T·B·I = \(T * B * I)")
        require(parameters.layout.count >= parameterEnd, "\(caller): parameter buffer does not hold this LSTM's tensors")
        if let lengths {
            require(lengths.count == B, "\(caller): \(lengths.count) lengths for a batch of \(B)")
            require(lengths.allSatisfy { $0 >= 1 && $0 <= T }, "\(caller): every length must be in 1...\(T)")
        }
        if let initial {
            require(initial.layers == U && initial.batch == B && initial.hiddenSize == P && initial.cellSize == H,
                    "\(caller): initial state must be (L·D, B, P) = (\(U), \(B), \(P)) and cells (\(U), \(B), \(H))")
        }
    }

    /// Where each direction's prepared weights sit in `LSTMStash.weights`.
    enum WeightSlot: Int, CaseIterable {
        case inputTransposed, recurrentTransposed, projectionTransposed   // forward: x·W_ihᵀ, h·W_hhᵀ, m·W_hrᵀ
        case recurrent, projection                                         // backward: δZ·W_hh, δh·W_hr
    }

    /// Packs (Float) or points at (Double) the weights the forward or the backward products read, for every
    /// direction, once per call: every window and every step reuses them.
    func prepareWeights<S: LSTMScalar>(forward: Bool, parameters p: UnsafePointer<S>, stash: LSTMStash<S>) {
        let H = hiddenSize, P = outputSize
        while stash.packedWeights.count < layers.count {
            stash.packedWeights.append(WeightSlot.allCases.map { _ in AlignedBuffer<S>() })
            stash.weights.append([GEMM.PreparedOperand<S>?](repeating: nil, count: WeightSlot.allCases.count))
        }
        for (u, layer) in layers.enumerated() {
            let buffer = stash.packedWeights[u]
            func put(_ slot: WeightSlot, _ operand: GEMM.PreparedOperand<S>?) { stash.weights[u][slot.rawValue] = operand }
            if forward {
                put(.inputTransposed, GEMM.prepare(transposeB: true, K: layer.inputSize, N: 4 * H, p + layer.weightIH.offset,
                                                   ldb: layer.inputSize, buffer: buffer[0], threads: stash.threads))
                put(.recurrentTransposed, GEMM.prepare(transposeB: true, K: P, N: 4 * H, p + layer.weightHH.offset, ldb: P,
                                                       buffer: buffer[1], threads: stash.threads))
                put(.projectionTransposed, layer.weightHR.map {
                    GEMM.prepare(transposeB: true, K: H, N: P, p + $0.offset, ldb: H, buffer: buffer[2],
                                 threads: stash.threads)
                })
            } else {
                put(.recurrent, GEMM.prepare(transposeB: false, K: 4 * H, N: P, p + layer.weightHH.offset, ldb: P,
                                             buffer: buffer[3], threads: stash.threads))
                put(.projection, layer.weightHR.map {
                    GEMM.prepare(transposeB: false, K: P, N: H, p + $0.offset, ldb: H, buffer: buffer[4],
                                 threads: stash.threads)
                })
            }
        }
    }

    /// All layers over the stash's current window (from its starting state), filling the window's buffers.
    func forwardWindow<S: LSTMScalar>(parameters p: UnsafePointer<S>, stash: LSTMStash<S>) {
        let L = layerCount, D = directions, P = outputSize, w = stash.window, Nw = w.rows, N = stash.schedule.rows
        for l in 0..<L {
            if l > 0 && stash.dropoutActive {
                // The layer below's outputs, dropped out: x = h ⊙ mask.
                let h = layerOutput(l - 1, stash)
                let m = stash.dropoutMasks.pointer + ((l - 1) * N + w.rowBase) * D * P
                let dropped = stash.droppedHiddens.pointer + (l - 1) * Nw * D * P
                for k in 0..<(Nw * D * P) { dropped[k] = h[k] * m[k] }
            }
            let input = layerInput(l, stash)
            if D == 2 && stash.threads >= 2 {
                // The directions are independent: one per core, each product on its own thread (any thread count
                // gives the same bits), instead of every per-step product split in two.
                let threads = stash.threads / 2
                WorkerPool.shared(threads: 2).run(parts: 2) { d in
                    forwardDirection(l * D + d, input: input, parameters: p, stash: stash, threads: threads)
                }
            } else {
                for d in 0..<D { forwardDirection(l * D + d, input: input, parameters: p, stash: stash, threads: stash.threads) }
            }
            if D == 2 {
                // [h(forward), h(reverse)] side by side: the layer's output.
                let out = stash.layerOutputs.pointer + l * Nw * 2 * P
                let hf = stash.hiddens.pointer + (2 * l) * Nw * P, hr = stash.hiddens.pointer + (2 * l + 1) * Nw * P
                for r in 0..<Nw {
                    (out + r * 2 * P).update(from: hf + r * P, count: P)
                    (out + r * 2 * P + P).update(from: hr + r * P, count: P)
                }
            }
        }
    }

    /// Layer l's output in the current window, (Nw, D·P): its direction's h, or both side by side.
    func layerOutput<S>(_ l: Int, _ stash: LSTMStash<S>) -> UnsafePointer<S> {
        let Nw = stash.window.rows, P = outputSize
        return directions == 1 ? UnsafePointer(stash.hiddens.pointer + l * Nw * P)
                               : UnsafePointer(stash.layerOutputs.pointer + l * Nw * 2 * P)
    }

    /// Layer l's input in the current window, (Nw, I) or (Nw, D·P): x, or the layer below's output (after dropout,
    /// when active).
    func layerInput<S>(_ l: Int, _ stash: LSTMStash<S>) -> UnsafePointer<S> {
        let w = stash.window
        if l == 0 { return UnsafePointer(stash.input.pointer + w.rowBase * inputSize) }
        return stash.dropoutActive ? UnsafePointer(stash.droppedHiddens.pointer + (l - 1) * w.rows * outputWidth)
                                   : layerOutput(l - 1, stash)
    }

    /// The (h, S) direction u starts the current window from, (B, P) and (B, H) in sorted rows: (h0, c0), or the
    /// window's checkpoint.
    func windowStart<S>(_ u: Int, _ stash: LSTMStash<S>) -> (hidden: UnsafePointer<S>, cell: UnsafePointer<S>) {
        let B = stash.schedule.batch, U = stateCount, H = hiddenSize, P = outputSize
        if stash.checkpointing {
            let start = stash.checkpoints.pointer + stash.windowIndex * U * B * (P + H)
            return (UnsafePointer(start + u * B * P), UnsafePointer(start + U * B * P + u * B * H))
        }
        return (UnsafePointer(stash.initialHidden.pointer + u * B * P), UnsafePointer(stash.initialCell.pointer + u * B * H))
    }

    /// (h, S) of the step before step t (t−1, or t+1 in the reverse direction) for step t's B_t rows: the
    /// neighbouring step's first B_t rows, the window's starting state, or, where some rows start at t (reverse
    /// direction, variable lengths), both assembled in the stash's `previousHidden`/`previousCell`.
    func previousState<S>(_ u: Int, step t: Int, _ stash: LSTMStash<S>) -> (hidden: UnsafePointer<S>, cell: UnsafePointer<S>) {
        let s = stash.schedule, w = stash.window, Nw = w.rows, B = s.batch, H = hiddenSize, P = outputSize
        let start = windowStart(u, stash)
        let hiddens = stash.hiddens.pointer + u * Nw * P, cells = stash.cells.pointer + u * Nw * H
        if !layers[u].reverse {
            if t == w.first { return start }
            let row = s.offsets[t - 1] - w.rowBase
            return (UnsafePointer(hiddens + row * P), UnsafePointer(cells + row * H))
        }
        if t == w.end - 1 { return start }
        let n = s.batchSizes[t], running = s.batchSizes[t + 1], next = s.offsets[t + 1] - w.rowBase
        if running == n { return (UnsafePointer(hiddens + next * P), UnsafePointer(cells + next * H)) }
        let ph = stash.previousHidden.pointer + B * P, pc = stash.previousCell.pointer + B * H   // the reverse direction's part
        ph.update(from: hiddens + next * P, count: running * P)
        (ph + running * P).update(from: start.hidden + running * P, count: (n - running) * P)
        pc.update(from: cells + next * H, count: running * H)
        (pc + running * H).update(from: start.cell + running * H, count: (n - running) * H)
        return (UnsafePointer(ph), UnsafePointer(pc))
    }

    /// The steps of the current window in the order direction u's forward pass visits them.
    func forwardSteps<S>(_ u: Int, _ stash: LSTMStash<S>) -> [Int] {
        let w = stash.window
        return layers[u].reverse ? Array((w.first..<w.end).reversed()) : Array(w.first..<w.end)
    }

    /// One direction of one layer, forward, over the current window: fills its gates, cells, hiddens (and m_t, and
    /// the normalization's x̂ and r).
    func forwardDirection<S: LSTMScalar>(_ u: Int, input: UnsafePointer<S>, parameters p: UnsafePointer<S>,
                                         stash: LSTMStash<S>, threads: Int) {
        let layer = layers[u]
        // The two directions of a layer may run at once: each has its own part of the per-step scratch.
        let d = layer.reverse ? 1 : 0
        let s = stash.schedule, w = stash.window, N = w.rows, B = s.batch, H = hiddenSize, P = outputSize
        let In = layer.inputSize
        let Z = stash.gates.pointer + u * N * 4 * H       // (Nw, 4H)
        let cells = stash.cells.pointer + u * N * H       // (Nw, H)
        let hiddens = stash.hiddens.pointer + u * N * P   // (Nw, P)
        let cellOutputs = stash.cellOutputs.pointer + u * N * H
        // Weights packed once per call (prepareWeights) and reused by every product below.
        let weightIH = stash.weights[u][WeightSlot.inputTransposed.rawValue]!
        let weightHH = stash.weights[u][WeightSlot.recurrentTransposed.rawValue]!
        let weightHR = stash.weights[u][WeightSlot.projectionTransposed.rawValue]
        // Input projection for all steps at once (layer-normalized, when on), then both biases.
        GEMM.gemm(transposeA: false, M: N, input, lda: In, weightIH, Z, ldc: 4 * H, accumulate: false,
                  threads: threads)
        let norm = layer.layerNormGates.map { p + $0.offset }   // (4, 4H) γ_x, β_x, γ_h, β_h
        let cellNorm = layer.layerNormCell.map { p + $0.offset } // (2, H) γ_c, β_c
        let inverse = stash.inverseDeviations.pointer + u * 3 * N
        let normalizedRecurrent = stash.normalizedRecurrent.pointer + u * N * 4 * H
        let normalizedCell = stash.normalizedCell.pointer + u * N * H
        if let norm {
            LayerNorm.forward(Z, rows: N, width: 4 * H, gamma: norm, beta: norm + 4 * H,
                              normalized: stash.normalizedInput.pointer + u * N * 4 * H, inverseDeviation: inverse,
                              output: Z, replace: true)
        }
        let biasSum = stash.biasSum.pointer + d * 4 * H
        for j in 0..<(4 * H) { biasSum[j] = p[layer.biasIH.offset + j] + p[layer.biasHH.offset + j] }
        let bias = UnsafePointer(biasSum)
        // Without layer normalization the recurrent product adds into Z_t directly: it starts from Z_t + b (the
        // tiles add b as they load Z_t, the same one rounding as a pass of its own).
        let foldsBias = norm == nil
        func addBias(rows r0: Int, _ r1: Int) {
            for r in r0..<r1 {
                let row = Z + r * 4 * H
                for j in 0..<(4 * H) { row[j] += bias[j] }
            }
        }
        let mask = stash.recurrentMasks.pointer + u * B * P
        let peepholes = layer.peephole.map { p + $0.offset }
        // One part's share of a step split by rows (splitsStepsByRows): rows r0..<r1 of the step whose rows start at
        // `base` get += h_{t-1}·W_hhᵀ, then their element-wise pass, on this thread.
        func forwardRows(_ base: Int, _ hPrev: UnsafePointer<S>, _ cPrev: UnsafePointer<S>, _ r0: Int, _ r1: Int) {
            let m = weightHR == nil ? hiddens + base * P : cellOutputs + base * H
            GEMM.gemm(transposeA: false, M: r1 - r0, hPrev + r0 * P, lda: P, weightHH, Z + (base + r0) * 4 * H,
                      ldc: 4 * H, accumulate: true, threads: 1, bias: foldsBias ? bias : nil)
            LSTMPointwise.forward(gates: Z + (base + r0) * 4 * H, previousCell: cPrev + r0 * H,
                                  cell: cells + (base + r0) * H, hidden: m + r0 * H, batch: r1 - r0, hidden: H,
                                  gate: layer.activations.gate, cellActivation: layer.activations.cell,
                                  cellClip: layer.activations.cellClip, peepholes: peepholes, threads: 1)
        }
        // A window of a small unidirectional LSTM whose every step splits by rows (a uniform batch): each part takes
        // its rows through all the steps in one dispatch instead of one per step, adding the bias to its rows of Z
        // just before their product.
        let byRows = norm == nil && cellNorm == nil && !layer.reverse && !stash.recurrentDropoutActive && s.uniform
            && splitsStepsByRows(S.self, rows: B, threads: threads)
        if byRows {
            let steps = forwardSteps(u, stash)
            LSTM.rowWindow(B, threads: threads, minimumRows: 6, split: stash.rowSplits.forward) { r0, r1 in
                for t in steps {
                    let base = s.offsets[t] - w.rowBase, (hPrev, cPrev) = previousState(u, step: t, stash)
                    forwardRows(base, hPrev, cPrev, r0, r1)
                    if let weightHR {
                        GEMM.gemm(transposeA: false, M: r1 - r0, UnsafePointer(cellOutputs + (base + r0) * H), lda: H,
                                  weightHR, hiddens + (base + r0) * P, ldc: P, accumulate: false, threads: 1)
                    }
                }
            }
        } else if !foldsBias {
            // (Folded: each step's recurrent product below adds it.) Rows in blocks over the threads (each element
            // the same one add): N × 4H adds, 13 M for a charrnn layer, were a serial pass while the other core spun.
            let parts = N * 4 * H >= 1 << 16 && threads > 1 ? min(threads, max(1, N / 4)) : 1
            GEMM.rowBlocks(N, parts: parts) { r0, r1 in addBias(rows: r0, r1) }
        }
        // The window step by step (no steps left when it ran by rows above).
        for t in byRows ? [] : forwardSteps(u, stash) {
            let n = s.batchSizes[t], base = s.offsets[t] - w.rowBase
            var (hPrev, cPrev) = previousState(u, step: t, stash)
            if stash.recurrentDropoutActive {
                // The recurrent product sees h_{t-1} ⊙ m.
                let masked = stash.recurrentInput.pointer + d * B * P
                for k in 0..<(n * P) { masked[k] = hPrev[k] * mask[k] }
                hPrev = UnsafePointer(masked)
            }
            let Zt = Z + base * 4 * H
            let m = weightHR == nil ? hiddens + base * P : cellOutputs + base * H
            let fusedRows = norm == nil && cellNorm == nil && splitsStepsByRows(S.self, rows: n, threads: threads)
            if let norm {
                // Z_t += LN(h_{t-1}·W_hhᵀ; γ_h, β_h)
                let product = stash.recurrentGates.pointer + d * B * 4 * H
                GEMM.gemm(transposeA: false, M: n, hPrev, lda: P, weightHH, product, ldc: 4 * H, accumulate: false,
                          threads: threads)
                LayerNorm.forward(product, rows: n, width: 4 * H, gamma: norm + 8 * H, beta: norm + 12 * H,
                                  normalized: normalizedRecurrent + base * 4 * H, inverseDeviation: inverse + N + base,
                                  output: Zt, replace: false)
            } else if fusedRows {
                // Each part its rows' product, then their element-wise pass (splitsStepsByRows).
                GEMM.rowBlocks(n, parts: min(threads, n / 6)) { r0, r1 in forwardRows(base, hPrev, cPrev, r0, r1) }
            } else {
                GEMM.gemm(transposeA: false, M: n, hPrev, lda: P, weightHH, Zt, ldc: 4 * H, accumulate: true,
                          threads: threads, bias: bias)
            }
            if !fusedRows {
                LSTMPointwise.forward(gates: Zt, previousCell: cPrev, cell: cells + base * H, hidden: m, batch: n,
                                      hidden: H, gate: layer.activations.gate, cellActivation: layer.activations.cell,
                                      cellClip: layer.activations.cellClip,
                                      peepholes: peepholes, threads: threads)
            }
            if let cellNorm {
                // m_t = o ⊙ cellAct(LN(S_t; γ_c, β_c)), replacing the plain pass's o ⊙ cellAct(S_t).
                LSTMPointwise.normalizedCellForward(
                    gates: Zt, cell: cells + base * H, hidden: m, batch: n, hidden: H,
                    cellActivation: layer.activations.cell, gamma: cellNorm, beta: cellNorm + H,
                    normalized: normalizedCell + base * H, inverseDeviation: inverse + 2 * N + base,
                    scratch: stash.normalizedScratch.pointer + d * B * H)
            }
            if let weightHR {
                // h_t = m_t·W_hrᵀ   (B_t, H)·(H, P)
                GEMM.gemm(transposeA: false, M: n, UnsafePointer(m), lda: H, weightHR, hiddens + base * P, ldc: P,
                          accumulate: false, threads: threads)
            }
        }
    }

    /// Backpropagation through time over the sequence of the last `forward` with this stash.
    ///
    /// Arguments:
    /// - `dOutput`: δ of the top layer's outputs, in the forward input's layout (values at padding are ignored);
    ///     nil means zero.
    /// - `dFinal`: δ of the final (h, c) of every layer and direction; nil means zero (truncated BPTT windows pass nil).
    /// - `gradients`: parameter gradients are *added* here, so several backward calls accumulate.
    /// - `inputGradient`: false skips δx — the first layer's δZ·W_ih, (rows, 4H)·(4H, I), about I / (3(I + H)) of a
    ///     one-layer training step's arithmetic — when nothing reads it (x is data, not an embedding's output); the
    ///     returned `input` is then empty. The parameter gradients are the same bits either way.
    /// Returns δx (zero at padding) and δ(h0, c0).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func backward<S: LSTMScalar>(
        dOutput: [S]?, dFinal: LSTMState<S>? = nil,
        parameters: ParameterBuffer<S>, stash: LSTMStash<S>, gradients: inout ParameterBuffer<S>,
        inputGradient: Bool = true
    ) -> LSTMInputGradients<S> {
        let D = directions, U = stateCount, H = hiddenSize, P = outputSize, I = inputSize
        let s = stash.schedule, T = s.steps, B = s.batch
        if let dOutput {
            require(dOutput.count == T * B * D * P, "LSTM.backward: dOutput has \(dOutput.count) values, expected \(T * B * D * P)")
        }
        if let dFinal {
            require(dFinal.layers == U && dFinal.batch == B && dFinal.hiddenSize == P && dFinal.cellSize == H,
                         "LSTM.backward: dFinal must be (L·D, B, P) = (\(U), \(B), \(P)) and cells (\(U), \(B), \(H))")
        }
        require(gradients.layout == parameters.layout, "LSTM.backward: gradients must share the parameters' layout")
        require(parameters.layout.count >= parameterEnd, "LSTM.backward: parameter buffer does not hold this LSTM's tensors")
        // δ(h_n, c_n) in sorted rows: the carries of every direction, (L·D, B, P) and (L·D, B, H).
        let dh = stash.dHiddenCarry.pointer, dc = stash.dCellCarry.pointer
        s.sortState(dFinal, hidden: dh, cell: dc, units: U, hiddenWidth: P, cellWidth: H)
        // Σ δZ over all rows per direction, added to both biases at the end (one chain across windows).
        stash.biasSums.zero(U * 4 * H)
        var dInput: [S] = inputGradient ? s.paddedOutput(width: I, layout: stash.sequenceLayout) : []

        parameters.storage.withUnsafeBufferPointer { p in
            gradients.storage.withUnsafeMutableBufferPointer { g in
                dInput.withUnsafeMutableBufferPointer { dx in
                    let p = p.baseAddress!, g = g.baseAddress!
                    prepareWeights(forward: false, parameters: p, stash: stash)
                    if stash.checkpointing { prepareWeights(forward: true, parameters: p, stash: stash) }
                    for (w, window) in s.windows.enumerated().reversed() {
                        if stash.checkpointing && (stash.window != window || stash.windowIndex != w) {
                            // Memory-lean: this window's forward pass again, from its checkpoint.
                            stash.window = window
                            stash.windowIndex = w
                            forwardWindow(parameters: p, stash: stash)
                        }
                        stash.window = window
                        stash.windowIndex = w
                        backwardWindow(dOutput: dOutput, inputGradient: inputGradient, parameters: p, gradients: g,
                                       stash: stash)
                        if inputGradient {
                            s.unpack(stash.dAbove.pointer, dx.baseAddress!, width: I, layout: stash.sequenceLayout,
                                     window: window, threads: stash.threads)
                        }
                    }
                    for (u, layer) in layers.enumerated() {
                        let sum = stash.biasSums.pointer + u * 4 * H
                        for j in 0..<(4 * H) {
                            g[layer.biasIH.offset + j] += sum[j]
                            g[layer.biasHH.offset + j] += sum[j]
                        }
                    }
                }
            }
        }
        var dInitial = LSTMState<S>(for: self, batch: B)
        dInitial.hidden.withUnsafeMutableBufferPointer { s.sortRows(dh, $0.baseAddress!, units: U, width: P, toSorted: false) }
        dInitial.cell.withUnsafeMutableBufferPointer { s.sortRows(dc, $0.baseAddress!, units: U, width: H, toSorted: false) }
        return LSTMInputGradients(input: dInput, initial: dInitial)
    }

    /// All layers backward over the current window, top down; leaves δ of the window's input rows in `dAbove`
    /// (when `inputGradient`).
    func backwardWindow<S: LSTMScalar>(dOutput: [S]?, inputGradient: Bool, parameters p: UnsafePointer<S>,
                                       gradients g: UnsafeMutablePointer<S>, stash: LSTMStash<S>) {
        let L = layerCount, D = directions, P = outputSize, H = hiddenSize
        let s = stash.schedule, w = stash.window, Nw = w.rows, N = s.rows
        var dAbove = stash.dAbove, dBelow = stash.dBelow
        // δ of the top layer's outputs in this window: without padding, in time-major order, the caller's rows are
        // already the packed ones and are read where they are; otherwise packed into dAbove.
        let direct = dOutput != nil && s.uniform && stash.sequenceLayout == .timeMajor
        if let dOutput, !direct {
            dOutput.withUnsafeBufferPointer { d in
                s.pack(d.baseAddress!, dAbove.pointer, width: D * P, layout: stash.sequenceLayout, window: w)
            }
        }
        var hasAbove = dOutput != nil
        for l in stride(from: L - 1, through: 0, by: -1) {
            // This layer's δ(output), (Nw, D·P): the caller's array for the top layer when direct.
            func withAbove(_ body: (UnsafePointer<S>?) -> Void) {
                if !hasAbove { return body(nil) }
                if l == L - 1 && direct {
                    dOutput!.withUnsafeBufferPointer { body($0.baseAddress! + w.rowBase * D * P) }
                } else {
                    body(UnsafePointer(dAbove.pointer))
                }
            }
            withAbove { above in
                // A bidirectional layer's directions each take their half of every row, contiguous, copied on the
                // thread that runs the direction.
                func share(_ d: Int) -> UnsafePointer<S>? {
                    guard let above else { return nil }
                    if D == 1 { return above }
                    let split = stash.dAboveSplit.pointer + d * Nw * P
                    for r in 0..<Nw { (split + r * P).update(from: above + r * 2 * P + d * P, count: P) }
                    return UnsafePointer(split)
                }
                if D == 2 && stash.threads >= 2 {
                    // The directions are independent (own tensors, carries and scratch): one per core.
                    let threads = stash.threads / 2
                    WorkerPool.shared(threads: 2).run(parts: 2) { d in
                        backwardDirection(l * D + d, dAbove: share(d), parameters: p, gradients: g, stash: stash,
                                          threads: threads)
                    }
                } else {
                    for d in 0..<D {
                        backwardDirection(l * D + d, dAbove: share(d), parameters: p, gradients: g, stash: stash,
                                          threads: stash.threads)
                    }
                }
            }
            // δ of the layer's input: Σ_d δZ_d · W_ih,d   (Nw, 4H)·(4H, In), the directions in turn.
            if l == 0 && !inputGradient { break }
            for (d, layer) in layers[(l * D)..<(l * D + D)].enumerated() {
                GEMM.gemm(transposeA: false, transposeB: false, M: Nw, N: layer.inputSize, K: 4 * H,
                          stash.dGates.pointer + d * Nw * 4 * H, lda: 4 * H, p + layer.weightIH.offset, ldb: layer.inputSize,
                          dBelow.pointer, ldc: layer.inputSize, accumulate: d > 0, threads: stash.threads)
            }
            if l > 0 && stash.dropoutActive {
                // Through the dropout of the layer below: δh = δx ⊙ mask.
                let m = stash.dropoutMasks.pointer + ((l - 1) * N + w.rowBase) * D * P
                for k in 0..<(Nw * D * P) { dBelow.pointer[k] *= m[k] }
            }
            swap(&dAbove, &dBelow)
            hasAbove = true
        }
        if inputGradient && dAbove !== stash.dAbove {
            // An odd number of layers left the δ of the input in the other buffer.
            stash.dAbove.pointer.update(from: dAbove.pointer, count: Nw * inputSize)
        }
    }

    /// One direction of one layer, backward over the current window. On entry the direction's carries hold δ of
    /// (h, c) after the window (δ(h_n, c_n) for the last one), on exit δ of the window's starting state. Adds the
    /// parameter gradients into `g` (biases into `stash.biasSums`) and leaves δZ in its part of `stash.dGates`
    /// for δ of the layer input.
    func backwardDirection<S: LSTMScalar>(
        _ u: Int, dAbove: UnsafePointer<S>?, parameters p: UnsafePointer<S>, gradients g: UnsafeMutablePointer<S>,
        stash: LSTMStash<S>, threads: Int
    ) {
        let layer = layers[u], l = u / directions
        let s = stash.schedule, w = stash.window, N = w.rows, B = s.batch, H = hiddenSize, P = outputSize
        // The two directions of a layer may run at once: each has its own part of the scratch.
        let d = layer.reverse ? 1 : 0
        let In = layer.inputSize, A = layer.activations
        // Gradients are accumulated in the order backward visits the rows (see the type's comment).
        let descending = !layer.reverse
        let gates = UnsafePointer(stash.gates.pointer + u * N * 4 * H)
        let cells = UnsafePointer(stash.cells.pointer + u * N * H)
        let hiddens = UnsafePointer(stash.hiddens.pointer + u * N * P)
        let cellOutputs = UnsafePointer(stash.cellOutputs.pointer + u * N * H)
        let dZ = stash.dGates.pointer + d * N * 4 * H
        let dh = stash.dHiddenCarry.pointer + u * B * P, dc = stash.dCellCarry.pointer + u * B * H
        let mask = UnsafePointer(stash.recurrentMasks.pointer + u * B * P)
        let dHiddens = stash.dHiddens.pointer + d * N * P, dCellOutput = stash.dCellOutput.pointer + d * B * H
        let weightHH = stash.weights[u][WeightSlot.recurrent.rawValue]!
        let weightHR = stash.weights[u][WeightSlot.projection.rawValue]
        let norm = layer.layerNormGates.map { p + $0.offset }, dNorm = layer.layerNormGates.map { g + $0.offset }
        let cellNorm = layer.layerNormCell.map { p + $0.offset }, dCellNorm = layer.layerNormCell.map { g + $0.offset }
        let inverse = UnsafePointer(stash.inverseDeviations.pointer + u * 3 * N)
        let normalizedRecurrent = UnsafePointer(stash.normalizedRecurrent.pointer + u * N * 4 * H)
        let normalizedCell = UnsafePointer(stash.normalizedCell.pointer + u * N * H)
        // What W_hh saw at each step: δZ, or with layer normalization δ(W_hh·h_{t-1}) through it.
        let dProduct = norm == nil ? dZ : stash.dRecurrent.pointer + d * N * 4 * H
        // In the plain layout δW_hh reads h_prev in place (below); otherwise each step's h_prev (⊙ m) is gathered here.
        let gathersPrevious = !(s.uniform && !stash.recurrentDropoutActive)
        let previous = stash.recurrentInput.pointer + d * max(N, B) * P   // (Nw, P), when gathered
        // As in the forward pass: a small unidirectional LSTM's uniform window, with no peepholes (their gradients
        // sum over the rows in one order) and no projection, in one dispatch, each part its rows through all steps:
        // the element-wise pass, then δh_prev = δZ_t·W_hh on those rows of the carry.
        let byRows = norm == nil && cellNorm == nil && weightHR == nil && layer.peephole == nil && !layer.reverse
            && !stash.recurrentDropoutActive && s.uniform && splitsStepsByRows(S.self, rows: B, threads: threads)
        let peepholes = layer.peephole.map { p + $0.offset }
        // One part's share of a step split by rows (splitsStepsByRows): rows r0..<r1 of the step whose rows start
        // at `base` get their element-wise pass, then δh_prev = δZ_t·W_hh, which reads and overwrites only those
        // rows of the carry.
        func backwardRows(_ base: Int, _ cPrev: UnsafePointer<S>, _ above: UnsafePointer<S>?, _ dm: UnsafePointer<S>,
                          _ r0: Int, _ r1: Int) {
            let dZt = dZ + (base + r0) * 4 * H
            LSTMPointwise.backward(
                gates: gates + (base + r0) * 4 * H, previousCell: cPrev + r0 * H, cell: cells + (base + r0) * H,
                dOutput: above.map { $0 + r0 * P }, dHiddenCarry: dm + r0 * P, dCellCarry: dc + r0 * H, dGates: dZt,
                batch: r1 - r0, hidden: H, gate: A.gate, cellActivation: A.cell, cellClip: A.cellClip,
                peepholes: peepholes, threads: 1)
            GEMM.gemm(transposeA: false, M: r1 - r0, UnsafePointer(dZt), lda: 4 * H, weightHH, dh + r0 * P, ldc: P,
                      accumulate: false, threads: 1)
        }
        if byRows {
            let steps = forwardSteps(u, stash).reversed()
            LSTM.rowWindow(B, threads: threads, minimumRows: 6, split: stash.rowSplits.backward) { r0, r1 in
                for t in steps {
                    let base = s.offsets[t] - w.rowBase
                    backwardRows(base, previousState(u, step: t, stash).cell, dAbove.map { $0 + base * P },
                                 UnsafePointer(dh), r0, r1)
                }
            }
        }
        // The window step by step (no steps left when it ran by rows above).
        for t in byRows ? [] : Array(forwardSteps(u, stash).reversed()) {
            let n = s.batchSizes[t], base = s.offsets[t] - w.rowBase
            let (hPrev, cPrev) = previousState(u, step: t, stash)
            if gathersPrevious {
                if stash.recurrentDropoutActive {
                    for k in 0..<(n * P) { previous[base * P + k] = hPrev[k] * mask[k] }
                } else {
                    (previous + base * P).update(from: hPrev, count: n * P)
                }
            }
            let dZt = dZ + base * 4 * H
            let fusedRows = norm == nil && cellNorm == nil && weightHR == nil
                && splitsStepsByRows(S.self, rows: n, threads: threads)
            // δh_t = δ(from above) + carry, kept for δW_hr with a projection; δm_t = δh_t (·W_hr).
            var dm = UnsafePointer(dh)
            var above = dAbove.map { $0 + base * P }
            if weightHR != nil || cellNorm != nil {
                let dHt = weightHR != nil ? dHiddens + base * P : dCellOutput
                if let dAbove {
                    for k in 0..<(n * P) { dHt[k] = dAbove[base * P + k] + dh[k] }
                } else {
                    dHt.update(from: dh, count: n * P)
                }
                dm = UnsafePointer(dHt)
                above = nil
                if let weightHR {
                    GEMM.gemm(transposeA: false, M: n, UnsafePointer(dHt), lda: P, weightHR, dCellOutput,
                              ldc: H, accumulate: false, threads: threads)
                    dm = UnsafePointer(dCellOutput)
                }
            }
            if let cellNorm, let dCellNorm {
                LSTMPointwise.backwardNormalizedCell(
                    gates: gates + base * 4 * H, previousCell: cPrev, cell: cells + base * H,
                    normalized: normalizedCell + base * H, inverseDeviation: inverse + 2 * N + base,
                    gamma: cellNorm, beta: cellNorm + H, dHidden: dm, dCellCarry: dc, dGates: dZt,
                    dGamma: dCellNorm, dBeta: dCellNorm + H, scratch: stash.normalizedScratch.pointer + d * B * H,
                    batch: n, hidden: H, gate: A.gate, cellActivation: A.cell, cellClip: A.cellClip,
                    peepholes: peepholes)
            } else if fusedRows {
                // Each part its rows (splitsStepsByRows).
                GEMM.rowBlocks(n, parts: min(threads, n / 6)) { r0, r1 in backwardRows(base, cPrev, above, dm, r0, r1) }
            } else {
                LSTMPointwise.backward(
                    gates: gates + base * 4 * H, previousCell: cPrev, cell: cells + base * H, dOutput: above,
                    dHiddenCarry: dm, dCellCarry: dc, dGates: dZt,
                    batch: n, hidden: H, gate: A.gate, cellActivation: A.cell, cellClip: A.cellClip,
                    peepholes: peepholes, threads: threads)
            }
            if let norm, let dNorm {
                // Through LN(W_hh·h_{t-1}; γ_h, β_h).
                LayerNorm.backward(dOutput: dZt, rows: n, width: 4 * H, gamma: norm + 8 * H,
                                   normalized: normalizedRecurrent + base * 4 * H, inverseDeviation: inverse + N + base,
                                   dGamma: dNorm + 8 * H, dBeta: dNorm + 12 * H, dInput: dProduct + base * 4 * H,
                                   descending: false)
            }
            // δh_prev = δ(product) · W_hh   (B_t, 4H)·(4H, P)
            if !fusedRows {
                GEMM.gemm(transposeA: false, M: n, UnsafePointer(dProduct + base * 4 * H), lda: 4 * H, weightHH, dh,
                          ldc: P, accumulate: false, threads: threads)
            }
            if stash.recurrentDropoutActive {
                // … through the recurrent dropout: ⊙ m.
                for k in 0..<(n * P) { dh[k] *= mask[k] }
            }
            if let peephole = layer.peephole {
                // δp_i += Σ δz_i ⊙ S_{t-1}, δp_f += Σ δz_f ⊙ S_{t-1}, δp_o += Σ δz_o ⊙ S_t, rows in backward's order.
                let gp = g + peephole.offset, cNow = cells + base * H
                for i in 0..<n {
                    let b = descending ? n - 1 - i : i
                    let dz = dZt + b * 4 * H
                    for j in 0..<H {
                        gp[j] += dz[j] * cPrev[b * H + j]
                        gp[H + j] += dz[H + j] * cPrev[b * H + j]
                        gp[2 * H + j] += dz[3 * H + j] * cNow[b * H + j]
                    }
                }
            }
        }
        // δW_hh += Σ δ(product)_tᵀ·h_prev(t) (⊙ m). In the plain layout h_prev of all steps is the hiddens shifted
        // by one step with the window's starting state at one end; otherwise it is assembled.
        let gHH = g + layer.weightHH.offset
        let start = windowStart(u, stash).hidden
        // Without layer normalization δ(product) is δZ, the A of δW_ih += δZᵀ·X too: both products run together
        // (in Float each block of δZᵀ packed once for both; the same bits as one after the other).
        let input = layerInput(l, stash), gIH = g + layer.weightIH.offset
        let pairsWeights = norm == nil
        // δb_ih and δb_hh both receive Σ δZ over rows (added to the parameters' gradients after the last window),
        // each column one chain over the rows in backward's order. In Float with the pair below, its packing of δZᵀ
        // adds them (each row of δZ while it is in L1; a pass of its own over δZ was 1.2–1.5 % of `small`'s step).
        let sum = stash.biasSums.pointer + u * 4 * H
        let sumsInPair = pairsWeights && S.self == Float.self
        let pairSums = sumsInPair ? UnsafeMutableRawPointer(sum).assumingMemoryBound(to: Float.self) : nil
        // δW_hh (and with pairsWeights δW_ih) over rows r0..<r0+count of the window; the window's bulk (not its
        // first step's rows, too short to time) in blocks sized by how fast each thread ran them last time.
        func weightGradients(rows r0: Int, count: Int, previous: UnsafePointer<S>) {
            let rows = UnsafePointer(dProduct + r0 * 4 * H)
            if pairsWeights {
                accumulateTransposedPair(M: 4 * H, K: count, rows, lda: 4 * H, N1: In, input + r0 * In, ldb1: In, gIH,
                                         N2: P, previous, ldb2: P, gHH, descending: descending, threads: threads,
                                         split: count > 2 * B && directions == 1 ? stash.rowSplits.weights : nil,
                                         sums: pairSums)
            } else {
                accumulateTransposedProduct(M: 4 * H, N: P, K: count, rows, lda: 4 * H, previous, ldb: P, gHH, ldc: P,
                                            descending: descending, threads: threads)
            }
        }
        if !gathersPrevious {
            // Two pieces in packed row order: (first row, their h_prev, count); visited in backward's order.
            let shifted = N - B
            let pieces: [(Int, UnsafePointer<S>, Int)] = layer.reverse
                ? [(0, hiddens + B * P, shifted), (shifted, start, B)] : [(0, start, B), (B, hiddens, shifted)]
            for (r0, previous, count) in descending ? pieces.reversed() : pieces where count > 0 {
                weightGradients(rows: r0, count: count, previous: previous)
            }
        } else {
            weightGradients(rows: 0, count: N, previous: previous)
        }
        if let weightHRSpec = layer.weightHR {
            // δW_hr += Σ δh_tᵀ·m_t   (P, Nw)·(Nw, H)
            accumulateTransposedProduct(M: P, N: H, K: N, dHiddens, lda: P, cellOutputs, ldb: H,
                                        g + weightHRSpec.offset, ldc: H, descending: descending, threads: threads)
        }
        if !sumsInPair {
            // Otherwise a pass of its own, split by columns over the threads (each column one chain over the rows, in
            // backward's order, as on one).
            let sumParts = N * 4 * H >= 1 << 15 ? max(1, min(threads, 4 * H / 16)) : 1
            let deltas = UnsafePointer(dZ)
            WorkerPool.blocks(4 * H, parts: sumParts, granule: 16) { j0, j1 in
                if S.self == Float.self {
                    // The same chains by the C kernel: 256 columns' sums in registers over all rows (the Swift loop
                    // stored every sum back at every row: 7 % of small's training step).
                    let first = UnsafeRawPointer(deltas).assumingMemoryBound(to: Float.self)
                        + (descending ? (N - 1) * 4 * H : 0)
                    lstmk_column_sums(first + j0, N, descending ? -4 * H : 4 * H, j1 - j0,
                                      UnsafeMutableRawPointer(sum).assumingMemoryBound(to: Float.self) + j0, 0)
                    return
                }
                for i in 0..<N {
                    let row = deltas + (descending ? N - 1 - i : i) * 4 * H
                    for j in j0..<j1 { sum[j] += row[j] }
                }
            }
        }
        if let norm, let dNorm {
            // Through LN(W_ih·x_t; γ_x, β_x), in place: δZ becomes δ(W_ih·x_t).
            LayerNorm.backward(dOutput: dZ, rows: N, width: 4 * H, gamma: norm,
                               normalized: stash.normalizedInput.pointer + u * N * 4 * H, inverseDeviation: inverse,
                               dGamma: dNorm, dBeta: dNorm + 4 * H, dInput: dZ, descending: descending)
        }
        // δW_ih += δZᵀ·X over the window's rows (δX = δZ·W_ih follows in backwardWindow, both directions in turn),
        // unless it ran with δW_hh above.
        if !pairsWeights {
            accumulateTransposedProduct(M: 4 * H, N: In, K: N, dZ, lda: 4 * H, input, ldb: In, gIH, ldc: In,
                                        descending: descending, threads: threads)
        }
    }

    /// `accumulateTransposedProduct` for two products that share A: C1 (M, N1) += Aᵀ·B1 and C2 (M, N2) += Aᵀ·B2,
    /// C1 and C2 with row strides N1 and N2 (`GEMM.accumulateTransposedPair`).
    func accumulateTransposedPair<S: LSTMScalar>(
        M: Int, K: Int, _ A: UnsafePointer<S>, lda: Int, N1: Int, _ B1: UnsafePointer<S>, ldb1: Int,
        _ C1: UnsafeMutablePointer<S>, N2: Int, _ B2: UnsafePointer<S>, ldb2: Int, _ C2: UnsafeMutablePointer<S>,
        descending: Bool, threads: Int, split: AdaptiveSplit? = nil, sums: UnsafeMutablePointer<Float>? = nil
    ) {
        guard K > 0 else { return }
        let last = descending ? K - 1 : 0, sign = descending ? -1 : 1
        GEMM.accumulateTransposedPair(M: M, K: K, A + last * lda, lda: sign * lda, N1: N1, B1 + last * ldb1,
                                      ldb1: sign * ldb1, C1, ldc1: N1, N2: N2, B2 + last * ldb2, ldb2: sign * ldb2,
                                      C2, ldc2: N2, threads: threads, split: split, sums: sums)
    }

    /// C (M, N) += Aᵀ·B over K rows, A (K, M) and B (K, N) row-major, the rows taken last to first when
    /// `descending` (negative strides: each element's fma chain then runs from row K−1 down to row 0, so windows
    /// visited from the last one continue one chain).
    func accumulateTransposedProduct<S: LSTMScalar>(
        M: Int, N: Int, K: Int, _ A: UnsafePointer<S>, lda: Int, _ B: UnsafePointer<S>, ldb: Int,
        _ C: UnsafeMutablePointer<S>, ldc: Int, descending: Bool, threads: Int
    ) {
        guard K > 0 else { return }
        if descending {
            GEMM.gemm(transposeA: true, transposeB: false, M: M, N: N, K: K, A + (K - 1) * lda, lda: -lda,
                      B + (K - 1) * ldb, ldb: -ldb, C, ldc: ldc, accumulate: true, threads: threads)
        } else {
            GEMM.gemm(transposeA: true, transposeB: false, M: M, N: N, K: K, A, lda: lda, B, ldb: ldb, C, ldc: ldc,
                      accumulate: true, threads: threads)
        }
    }
}
