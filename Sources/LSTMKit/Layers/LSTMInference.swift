import _LSTMKernels

/// `LSTM.infer`: the forward pass when no backward pass follows, keeping nothing per step.
///
/// Per layer and direction it holds the state (h, S) of its B rows, updated in place, and per chunk of steps the
/// gate pre-activations Z of those steps; the outputs of a layer feed the layer above chunk by chunk
/// (unidirectional) or once the whole layer is done (bidirectional: the reverse direction starts from the end).
/// Every thread takes the same groups of 16 units at every step (so its slice of W_hh stays in its own cache), adds
/// h_{t−1}·W_hhᵀ into those units' Z and applies the element-wise pass to them while they are still in L1
/// (`lstmk_lstm_step`); the forward direction runs a chunk's steps as one pass over the worker pool whose threads
/// wait only for the blocks of h_{t−1} they read next (`lstmk_lstm_step_pipelined`), the reverse direction one
/// pass per step. A small unidirectional LSTM splits the batch
/// instead (`splitsSequenceByRows`): each thread takes its rows through all the steps of a chunk in one pass. The
/// weights are packed gate-interleaved — for each 16 units the columns of i, f, g and o side by side — so a
/// thread's columns hold whole units.
///
/// Every value is computed by the same operations in the same order as in `forward`: Z = x·W_ihᵀ (one fma chain
/// per element from 0), + (b_ih + b_hh), then the chain of h_{t−1}·W_hhᵀ continued from Z, then the element-wise
/// pass of the same kernel. So the outputs and final states are bitwise those of `forward`, on any thread count
/// and any kernel level (`InferencePathTests`).
extension LSTM {
    /// Whether `infer` runs the stash-free pass for this LSTM and scalar (Float, no layer normalization); otherwise
    /// it runs `forward` window by window.
    func hasStashFreeInference<S: LSTMScalar>(_: S.Type) -> Bool {
        S.self == Float.self && !layers.contains { $0.layerNormGates != nil || $0.layerNormCell != nil }
    }

    /// The forward pass for inference: the outputs and final states of `forward`, bitwise, without keeping
    /// anything for a backward pass.
    ///
    /// Memory beyond the returned arrays: per layer and direction one (B, H) cell state, and per chunk of steps
    /// the gate pre-activations of those steps; the stash holds these buffers (and the packed weights) for the
    /// next call. A stash used for training keeps its buffers and reuses them here. A `backward` pass cannot
    /// follow this call: run `forward` for that.
    ///
    /// Layer normalization and Double run `forward` window by window (a bounded stash, the same bits).
    /// - Parameters: as `forward(_:steps:batch:lengths:initial:layout:parameters:stash:dropoutSeed:)`, without
    ///   dropout.
    public func infer<S: LSTMScalar>(
        _ x: [S], steps T: Int, batch B: Int, lengths: [Int]? = nil, initial: LSTMState<S>? = nil,
        layout sequenceLayout: SequenceLayout = .timeMajor, parameters: ParameterBuffer<S>, stash: LSTMStash<S>
    ) -> LSTMOutput<S> {
        guard hasStashFreeInference(S.self) else {
            let windowed = bidirectional || checkpointInterval > 0 ? self
                : ((try? withCheckpointInterval(LSTM.inferenceWindow)) ?? self)
            return windowed.forward(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: sequenceLayout,
                                    parameters: parameters, stash: stash)
        }
        let floatX = unsafeBitCast(x, to: [Float].self)
        let floatInitial = initial.map { unsafeBitCast($0, to: LSTMState<Float>.self) }
        let floatParameters = unsafeBitCast(parameters, to: ParameterBuffer<Float>.self)
        let floatStash = unsafeDowncast(stash, to: LSTMStash<Float>.self)
        let out = inferFloat(floatX, steps: T, batch: B, lengths: lengths, initial: floatInitial, layout: sequenceLayout,
                             parameters: floatParameters, stash: floatStash, level: -1, chunk: nil)
        return unsafeBitCast(out, to: LSTMOutput<S>.self)
    }

    /// Steps per window when inference falls back to `forward` (layer normalization, Double).
    static var inferenceWindow: Int { 32 }

    /// Gate pre-activations held per chunk of steps, in floats (per direction): at most about 8 MB and 32 steps, at
    /// least 128 rows, so that a chunk's input product has hundreds of rows while Z stays in the last-level cache.
    static var inferenceChunkFloats: Int { 1 << 21 }

    /// Whether a unidirectional pass splits the batch instead of the units: each thread takes a block of rows
    /// through every step of a chunk (one dispatch per chunk and layer instead of one per step, and no thread reads
    /// the h another wrote), the whole W_hh read by every thread: when W_hh is at most 1 MB (H = 256) for a batch
    /// of equal lengths, as for training (`splitsStepsByRows`), at most 256 KB for lengths that differ, and with at
    /// least 4 rows per thread. Against the previous 256 KB bound, alternated in one process on the 2-core AVX-512
    /// host: H = 160, 192 and 208 faster in 24–27 of 30 pairs (medians 7–12 % lower), H = 224 in 20, H = 256 in 15,
    /// 17, 20, 22 and 24 of 30, H = 320 slower (9 of 30, left out); but `packed` (H = 256, lengths 50–100, sorted
    /// rows: one thread gets the long ones) 13.3 → 18.7 ms, faster in 1–2 of 30. Rows are independent, so the bits
    /// are the same either way.
    func splitsSequenceByRows(batch B: Int, uniform: Bool, threads: Int) -> Bool {
        directions == 1 && outputSize * 4 * hiddenSize <= (uniform ? 1 << 18 : 1 << 16) && threads >= 2 && B >= 8
    }

    /// The stash-free pass; `level` picks the kernels as `GEMM.floatGEMM(level:…)` (−1: this CPU's best), `chunk`
    /// the steps per chunk (nil: from `inferenceChunkFloats`; tests cut short chunks), `rowSplit` whether a
    /// unidirectional pass splits its rows over the threads (nil: `splitsSequenceByRows`; tests force both).
    func inferFloat(
        _ x: [Float], steps T: Int, batch B: Int, lengths: [Int]?, initial: LSTMState<Float>?,
        layout sequenceLayout: SequenceLayout, parameters: ParameterBuffer<Float>, stash: LSTMStash<Float>, level: Int32,
        chunk chunkSteps: Int?, rowSplit: Bool? = nil
    ) -> LSTMOutput<Float> {
        let L = layerCount, D = directions, U = stateCount, H = hiddenSize, P = outputSize, I = inputSize
        checkArguments("LSTM.infer", x.count, steps: T, batch: B, lengths: lengths, initial: initial,
                       parameters: parameters)
        let groups = (H + 15) / 16, width = 4 * groups * 16, ldz = width + 16
        // Unidirectional: the sequence in chunks, each through every layer; bidirectional: each layer over the
        // whole sequence (the reverse direction needs the layer below's last step first), Z still in chunks.
        let chunk = max(1, min(T, chunkSteps ?? max((128 + B - 1) / B, min(32, LSTM.inferenceChunkFloats / (B * ldz)))))
        let schedule = SequenceSchedule(steps: T, batch: B, lengths: lengths, window: D == 1 ? chunk : 0)
        let N = schedule.rows
        stash.schedule = schedule
        stash.sequenceLayout = sequenceLayout
        let segmentRows = schedule.windowRows, chunkRows = D == 1 ? segmentRows : chunk * B
        stash.input.reserve(N * I)
        stash.gates.reserve(D * chunkRows * ldz)
        let outputs = D == 2 ? stash.layerOutputs : stash.hiddens   // (min(L, 2), segment rows, D·P): layer l in l % 2
        outputs.reserve(min(L, 2) * segmentRows * D * P)
        stash.initialHidden.reserve(U * B * P)
        stash.initialCell.reserve(U * B * H)
        stash.finalHidden.reserve(U * B * P)
        stash.previousHidden.reserve(D * B * P)
        if projectionSize > 0 { stash.cellOutputs.reserve(D * B * H) }
        stash.biasSum.reserve(U * width)

        x.withUnsafeBufferPointer { xs in
            schedule.pack(xs.baseAddress!, stash.input.pointer, width: I, layout: sequenceLayout, window: schedule.whole,
                          threads: stash.threads)
        }
        // The state (h, S) of every layer and direction, sorted rows: (h0, c0), updated in place.
        let hState = stash.initialHidden.pointer, cState = stash.initialCell.pointer
        schedule.sortState(initial, hidden: hState, cell: cState, units: U, hiddenWidth: P, cellWidth: H)
        // Each row's h after its last step (forward direction) or after t = 0 (reverse), sorted rows.
        let finalHidden = stash.finalHidden.pointer
        for u in 0..<U { (finalHidden + u * B * P).update(from: hState + u * B * P, count: B * P) }

        let byRows = D == 1
            && (rowSplit ?? splitsSequenceByRows(batch: B, uniform: schedule.uniform, threads: stash.threads))
        let rowParts = byRows ? max(1, min(stash.threads, B / 4)) : 1
        var output: [Float] = schedule.paddedOutput(width: D * P, layout: sequenceLayout)
        let direct = schedule.uniform && sequenceLayout == .timeMajor
        parameters.storage.withUnsafeBufferPointer { pb in
            let p = pb.baseAddress!
            prepareInferenceWeights(parameters: p, stash: stash)
            output.withUnsafeMutableBufferPointer { out in
                for segment in schedule.windows {
                    for l in 0..<L {
                        let below = outputs.pointer + ((l + 1) % 2) * segmentRows * D * P
                        let input = l == 0 ? UnsafePointer(stash.input.pointer + segment.rowBase * I) : UnsafePointer(below)
                        let inputWidth = l == 0 ? I : D * P
                        // The top layer of a plain time-major batch writes straight into the returned array.
                        let above = l == L - 1 && direct ? out.baseAddress! + segment.rowBase * D * P
                                                         : outputs.pointer + (l % 2) * segmentRows * D * P
                        if D == 2 && stash.threads >= 2 {
                            let threads = stash.threads / 2
                            WorkerPool.shared(threads: 2).run(parts: 2) { d in
                                inferDirection(l * D + d, input: input, inputWidth: inputWidth, output: above,
                                               segment: segment, chunk: chunk, ldz: ldz, parameters: p, stash: stash,
                                               threads: threads, level: level, rowParts: 1)
                            }
                        } else {
                            for d in 0..<D {
                                inferDirection(l * D + d, input: input, inputWidth: inputWidth, output: above,
                                               segment: segment, chunk: chunk, ldz: ldz, parameters: p, stash: stash,
                                               threads: stash.threads, level: level, rowParts: rowParts)
                            }
                        }
                    }
                    if !direct {
                        let top = outputs.pointer + ((L - 1) % 2) * segmentRows * D * P
                        schedule.unpack(top, out.baseAddress!, width: D * P, layout: sequenceLayout, window: segment,
                                        threads: stash.threads)
                    }
                }
            }
        }
        var final = LSTMState<Float>(for: self, batch: B)
        final.hidden.withUnsafeMutableBufferPointer {
            schedule.sortRows(finalHidden, $0.baseAddress!, units: U, width: P, toSorted: false)
        }
        final.cell.withUnsafeMutableBufferPointer {
            schedule.sortRows(cState, $0.baseAddress!, units: U, width: H, toSorted: false)
        }
        return LSTMOutput(output: output, final: final)
    }

    /// Packs every direction's W_ihᵀ and W_hhᵀ gate-interleaved (in the buffers `forward` packs them into, which
    /// it packs again on its next call) and W_hrᵀ as `forward` does, and writes each direction's b_ih + b_hh,
    /// gate-interleaved, at `stash.biasSum` + u·width (once per call, not once per chunk).
    func prepareInferenceWeights(parameters p: UnsafePointer<Float>, stash: LSTMStash<Float>) {
        let H = hiddenSize, P = outputSize, width = 4 * ((H + 15) / 16 * 16)
        while stash.packedWeights.count < layers.count {
            stash.packedWeights.append(WeightSlot.allCases.map { _ in AlignedBuffer<Float>() })
            stash.weights.append([GEMM.PreparedOperand<Float>?](repeating: nil, count: WeightSlot.allCases.count))
        }
        for (u, layer) in layers.enumerated() {
            let buffers = stash.packedWeights[u]
            func packGates(_ slot: WeightSlot, _ offset: Int, K: Int) {
                stash.weights[u][slot.rawValue] = LSTM.packGateInterleaved(p + offset, hidden: H, K: K,
                                                                           into: buffers[slot.rawValue],
                                                                           threads: stash.threads)
            }
            packGates(.inputTransposed, layer.weightIH.offset, K: layer.inputSize)
            packGates(.recurrentTransposed, layer.weightHH.offset, K: P)
            LSTM.gateInterleavedBias(layer, hidden: H, parameters: p, into: stash.biasSum.pointer + u * width)
            stash.weights[u][WeightSlot.projectionTransposed.rawValue] = layer.weightHR.map {
                GEMM.prepare(transposeB: true, K: H, N: P, p + $0.offset, ldb: H,
                             buffer: buffers[WeightSlot.projectionTransposed.rawValue], threads: stash.threads)
            }
        }
    }

    /// W (4H, K), row q·H + j for gate q of unit j, packed gate-interleaved (every 16 units' i, f, g, o columns side
    /// by side, padded to whole groups) into `buffer`: the operand of Z = x·Wᵀ for `lstmk_lstm_step`.
    static func packGateInterleaved(_ w: UnsafePointer<Float>, hidden H: Int, K: Int,
                                    into buffer: AlignedBuffer<Float>, threads: Int = 1) -> GEMM.PreparedOperand<Float> {
        let width = 4 * ((H + 15) / 16 * 16)
        buffer.reserve(lstmk_sgemm_packed_size(width, K))
        // Unit groups in blocks over the threads from 32 K floats on (every `infer` call packs its weights).
        let groups = (H + 15) / 16, packed = buffer.pointer
        let parts = width * K >= 1 << 15 ? max(1, min(threads, groups)) : 1
        WorkerPool.blocks(groups, parts: parts) { g0, g1 in
            lstmk_sgemm_pack_b_gates_groups(H, K, w, 1, K, packed, g0, g1)
        }
        return GEMM.PreparedOperand(source: UnsafePointer(buffer.pointer), transposed: false, ld: width, K: K, N: width,
                                    packed: UnsafePointer(buffer.pointer))
    }

    /// b_ih + b_hh of `layer` in the gate-interleaved column order (zero for the padding units), 4·⌈H/16⌉·16 floats.
    static func gateInterleavedBias(_ layer: Layer, hidden H: Int, parameters p: UnsafePointer<Float>,
                                    into bias: UnsafeMutablePointer<Float>) {
        bias.update(repeating: 0, count: 4 * ((H + 15) / 16 * 16))
        for q in 0..<4 {
            for j in 0..<H {
                bias[(j / 16) * 64 + q * 16 + j % 16] =
                    p[layer.biasIH.offset + q * H + j] + p[layer.biasHH.offset + q * H + j]
            }
        }
    }

    /// One direction of one layer over a segment's steps: Z chunk by chunk, then the fused steps — each step split
    /// by units over `threads`, or, with `rowParts` > 1, each part a block of rows through all of a chunk's steps.
    func inferDirection(_ u: Int, input: UnsafePointer<Float>, inputWidth: Int, output: UnsafeMutablePointer<Float>,
                        segment: StepWindow, chunk: Int, ldz: Int, parameters p: UnsafePointer<Float>,
                        stash: LSTMStash<Float>, threads: Int, level: Int32, rowParts: Int) {
        let layer = layers[u], d = layer.reverse ? 1 : 0
        let s = stash.schedule, B = s.batch, H = hiddenSize, P = outputSize, D = directions, ld = D * P
        let groups = (H + 15) / 16, width = 4 * groups * 16
        let chunkRows = D == 1 ? s.windowRows : chunk * B
        let Z = stash.gates.pointer + d * chunkRows * ldz
        let weightIH = stash.weights[u][WeightSlot.inputTransposed.rawValue]!
        let recurrent = stash.weights[u][WeightSlot.recurrentTransposed.rawValue]!.packed!
        let weightHR = stash.weights[u][WeightSlot.projectionTransposed.rawValue]
        let hState = stash.initialHidden.pointer + u * B * P, cState = stash.initialCell.pointer + u * B * H
        let finalHidden = stash.finalHidden.pointer + u * B * P
        let out = output + d * P   // this direction's columns of the layer's output, row stride D·P
        let bias = UnsafePointer(stash.biasSum.pointer + u * width)   // b_ih + b_hh, gate-interleaved
        let peep = layer.peephole.map { p + $0.offset }
        let (gate, cell, clip) = (layer.activations.gate.kernelCode, layer.activations.cell.kernelCode,
                                  Float(layer.activations.cellClip ?? 0))
        let m = stash.cellOutputs.pointer + d * B * H   // m_t, with a projection
        func row(_ t: Int) -> Int { s.offsets[t] - segment.rowBase }

        // Rows r0..<r1 of step t (those of them still running), Z of the chunk starting at step `first`.
        func step(_ t: Int, chunkFirst first: Int, rows r0: Int, _ r1: Int, threads: Int) {
            let n = s.batchSizes[t], rows = min(r1, n) - r0
            guard rows > 0 else { return }
            let hPrev: UnsafePointer<Float>, lda: Int
            if !layer.reverse {
                (hPrev, lda) = t == segment.first ? (UnsafePointer(hState), P)
                                                  : (UnsafePointer(out + row(t - 1) * ld), ld)
            } else if t == s.steps - 1 {
                (hPrev, lda) = (UnsafePointer(hState), P)
            } else if s.batchSizes[t + 1] == n {
                (hPrev, lda) = (UnsafePointer(out + row(t + 1) * ld), ld)
            } else {
                // Rows starting at t take h0; the others step t + 1's h.
                let assembled = stash.previousHidden.pointer + d * B * P, running = s.batchSizes[t + 1]
                for r in r0..<(r0 + rows) {
                    let source = r < running ? out + (row(t + 1) + r) * ld : hState + r * P
                    (assembled + r * P).update(from: source, count: P)
                }
                (hPrev, lda) = (UnsafePointer(assembled), P)
            }
            let zt = Z + (s.offsets[t] - s.offsets[first] + r0) * ldz
            let (h, ldh) = weightHR == nil ? (out + (row(t) + r0) * ld, ld) : (m + r0 * H, H)
            LSTM.inferenceStep(level: level, rows: rows, groups: groups, H: H, K: P, hPrev + r0 * lda, lda: lda,
                               recurrent, bias: bias, zt, ldz: ldz, cell: cState + r0 * H, h, ldh: ldh, gate: gate,
                               cellActivation: cell, clip: clip, peepholes: peep, reverse: t % 2 == 1, threads: threads)
            if let weightHR {
                GEMM.gemm(transposeA: false, M: rows, UnsafePointer(h), lda: H, weightHR, out + (row(t) + r0) * ld,
                          ldc: ld, accumulate: false, threads: threads)
            }
            keepFinal(t, rows: r0, r0 + rows)
        }
        // Rows r0..<r1 that run at step t and end there keep their h (the reverse direction ends at t = 0).
        func keepFinal(_ t: Int, rows r0: Int, _ r1: Int) {
            let n = s.batchSizes[t]
            let ending = layer.reverse ? (t == 0 ? 0 : n) : (t + 1 < s.steps ? s.batchSizes[t + 1] : 0)
            let from = max(r0, ending)
            for r in from..<max(from, min(r1, n)) {
                (finalHidden + r * P).update(from: out + (row(t) + r) * ld, count: P)
            }
        }
        // The forward direction's steps of a chunk as one job whose parts run at once, each through every step with
        // its unit groups, waiting only for the blocks of h_{t−1} it is about to read (`lstmk_lstm_step_pipelined`)
        // instead of a join after every step: a thread that finishes a step early starts the next one on what it
        // can, so a step that runs late on one core costs the other less (charrnn inference, in-process alternated
        // runs on the noisy 2-core host: median 178.4 → 168.6 ms and 181.6 → 176.9 ms, faster in 41 of 70 pairs;
        // large 28 of 44). Where h_{t−1} is read where step t − 1 wrote it (no projection). False when the pool
        // cannot run every part at once (a nested call, a busy pool): then step by step.
        let pipelineParts = !layer.reverse && weightHR == nil && rowParts == 1
            ? LSTM.inferenceParts(rows: B, groups: groups, K: P, threads: threads) : 1
        func pipelined(_ steps: Range<Int>, chunkFirst first: Int) -> Bool {
            guard pipelineParts > 1 else { return false }
            return withUnsafeTemporaryAllocation(of: Int.self, capacity: pipelineParts * 16) { progress in
                progress.initialize(repeating: 0)
                let progress = progress.baseAddress!
                return WorkerPool.shared(threads: pipelineParts).runTogether(parts: pipelineParts) { part in
                    for (index, t) in steps.enumerated() {
                        let (hPrev, lda) = t == segment.first ? (UnsafePointer(hState), P)
                                                              : (UnsafePointer(out + row(t - 1) * ld), ld)
                        lstmk_lstm_step_pipelined(level, s.batchSizes[t], part, pipelineParts, H, hPrev, lda,
                                                  recurrent, bias, Z + (s.offsets[t] - s.offsets[first]) * ldz, ldz,
                                                  cState, out + row(t) * ld, ld, gate, cell, clip, peep, progress,
                                                  index)
                    }
                }
            }
        }

        var starts = Array(stride(from: segment.first, to: segment.end, by: chunk))
        if layer.reverse { starts.reverse() }
        for first in starts {
            let end = min(segment.end, first + chunk), rows = s.offsets[end] - s.offsets[first]
            // The chunk's steps in this direction's order (a stride: nothing allocated per chunk).
            let (from, past, by) = layer.reverse ? (end - 1, first - 1, -1) : (first, end, 1)
            if rowParts > 1 {
                // Each part its block of rows through every step of the chunk: one dispatch per chunk, each step's
                // Z = x_t·W_ihᵀ on the part's rows just before its recurrent product (the same chains as the chunk's
                // product below, computed where they are read).
                LSTM.rowWindow(B, threads: stash.threads, minimumRows: 4, split: stash.rowSplits.inference) { r0, r1 in
                    for t in stride(from: from, to: past, by: by) where min(r1, s.batchSizes[t]) > r0 {
                        GEMM.gemm(transposeA: false, M: min(r1, s.batchSizes[t]) - r0,
                                  input + (row(t) + r0) * inputWidth, lda: inputWidth, weightIH,
                                  Z + (s.offsets[t] - s.offsets[first] + r0) * ldz, ldc: ldz, accumulate: false,
                                  threads: 1)
                        step(t, chunkFirst: first, rows: r0, r1, threads: 1)
                    }
                }
            } else {
                // Z = x·W_ihᵀ for the chunk's rows; each step adds b_ih + b_hh to its rows just before its product.
                GEMM.gemm(transposeA: false, M: rows, input + row(first) * inputWidth, lda: inputWidth,
                          weightIH, Z, ldc: ldz, accumulate: false, threads: threads)
                if !layer.reverse && pipelined(first..<end, chunkFirst: first) {
                    for t in first..<end { keepFinal(t, rows: 0, B) }
                    continue
                }
                for t in stride(from: from, to: past, by: by) {
                    step(t, chunkFirst: first, rows: 0, B, threads: threads)
                }
            }
        }
        if !layer.reverse && segment.end < s.steps {
            // The next segment starts from this one's last step (the rows still running there).
            let last = segment.end - 1
            for r in 0..<s.batchSizes[last] { (hState + r * P).update(from: out + (row(last) + r) * ld, count: P) }
        }
    }

    /// Parts a step of n rows splits its unit groups into: below ~64k multiply-adds a dispatch costs more than it
    /// saves (as in GEMM).
    static func inferenceParts(rows n: Int, groups: Int, K: Int, threads: Int) -> Int {
        n * 64 * groups * K >= 1 << 16 ? max(1, min(threads, groups)) : 1
    }

    /// One fused step over the pool: the unit groups split into contiguous blocks, the same blocks every step.
    /// `reverse` (a few rows): the columns' runs last to first, alternated by step (see `lstmk_lstm_step`).
    static func inferenceStep(level: Int32, rows n: Int, groups: Int, H: Int, K: Int, _ hPrev: UnsafePointer<Float>,
                              lda: Int, _ packed: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                              _ Z: UnsafeMutablePointer<Float>, ldz: Int,
                              cell: UnsafeMutablePointer<Float>, _ h: UnsafeMutablePointer<Float>, ldh: Int,
                              gate: Int32, cellActivation: Int32, clip: Float, peepholes: UnsafePointer<Float>?,
                              reverse: Bool, threads: Int) {
        let parts = inferenceParts(rows: n, groups: groups, K: K, threads: threads), reverse: Int32 = reverse ? 1 : 0
        if parts == 1 {
            lstmk_lstm_step(level, n, 0, groups, H, K, hPrev, lda, packed, bias, Z, ldz, cell, h, ldh, gate,
                            cellActivation, clip, peepholes, reverse)
            return
        }
        nonisolated(unsafe) let (a, b, z, c, hh, peep, bb) = (hPrev, packed, Z, cell, h, peepholes, bias)
        WorkerPool.shared(threads: parts).run(parts: parts) { part in
            lstmk_lstm_step(level, n, part * groups / parts, (part + 1) * groups / parts, H, K, a, lda, b, bb, z, ldz,
                            c, hh, ldh, gate, cellActivation, clip, peep, reverse)
        }
    }
}
