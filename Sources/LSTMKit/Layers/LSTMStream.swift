import _LSTMKernels

/// Batch-1 streaming inference: feed one step (or a chunk) at a time, the state carried inside.
///
/// The weights are packed once, when the stream is made (W_ihᵀ (I, 4H) and W_hhᵀ (H, 4H) into the GEMM kernel's
/// 16-column panels, read as sequential streams at every step; b = b_ih + b_hh), and every buffer is allocated then:
/// `step(_:output:)` allocates nothing. Each step runs, per layer, the same operations in the same order as
/// `LSTM.forward` (Z = x·W_ihᵀ, + b, += h·W_hhᵀ, then the element-wise pass), so a stream gives exactly the bits of
/// the whole-sequence forward pass (tested). Without layer normalization the panels are gate-interleaved (as in
/// `LSTM.infer`): each thread takes whole groups of 16 units, both products and the element-wise pass of its units,
/// one pool dispatch per layer and step; it goes through its columns in runs, every other step last run first, so
/// that a step starts on the weights the previous one left in the core's L2 (H = 512: 0.087 → 0.060 ms a step).
/// Weights are copied: change the model's parameters, then make a new stream.
public final class LSTMStream {
    /// The unidirectional LSTM this stream runs (its tensors were copied from the parameters when the stream was made).
    public let lstm: LSTM
    /// Threads for the matrix products of each step (at least 1 when the stream is made).
    public var threads: Int
    private let packedIH: [AlignedBuffer<Float>]    // per layer W_ihᵀ (I_l, 4H), packed (kept alive for weightIHT)
    private let packedHH: [AlignedBuffer<Float>]    // per layer W_hhᵀ (H, 4H), packed (kept alive for weightHHT)
    private let weightIHT: [GEMM.PreparedOperand<Float>]
    private let weightHHT: [GEMM.PreparedOperand<Float>]
    private let bias: [AlignedBuffer<Float>]        // per layer (4H), gate-interleaved (width) when fused
    private let fused: [Bool]                       // per layer: no layer normalization, gate-interleaved panels
    private let width: Int                          // 4·⌈H/16⌉·16, the gate-interleaved row of Z
    private let nextHidden = AlignedBuffer<Float>() // (P) a fused step's h (the parts still read h_{t−1})
    private let peepholes: [AlignedBuffer<Float>?]  // per layer (3H) p_i, p_f, p_o, with peepholes
    private let norms: [AlignedBuffer<Float>?]      // per layer (4·4H + 2H) γ_x, β_x, γ_h, β_h, γ_c, β_c, with LN
    private let normalized = AlignedBuffer<Float>() // (4H) x̂ scratch, with LN (the stream keeps nothing for backward)
    private let recurrent = AlignedBuffer<Float>()  // (4H) h·W_hhᵀ, with LN
    private let packedHR: [AlignedBuffer<Float>]    // per layer W_hrᵀ (H, P), packed, with a projection
    private let weightHRT: [GEMM.PreparedOperand<Float>]
    private let hidden = AlignedBuffer<Float>()     // (L, P)
    private let cell = AlignedBuffer<Float>()       // (L, H)
    private let cellOutput = AlignedBuffer<Float>() // (H) m_t, with a projection
    private let gates = AlignedBuffer<Float>()      // (4H)
    private var reversed = false                    // this step reads the weights' column runs last to first

    /// A stream runs forward in time, so a bidirectional LSTM (whose reverse direction starts at the end) is refused.
    public init(lstm: LSTM, parameters: ParameterBuffer<Float>, threads: Int = 1) {
        require(!lstm.bidirectional, "LSTMStream: a bidirectional LSTM needs the whole sequence; use LSTM.forward")
        self.lstm = lstm
        self.threads = max(1, threads)
        let H = lstm.hiddenSize, P = lstm.outputSize, L = lstm.layerCount
        var pih: [AlignedBuffer<Float>] = [], phh: [AlignedBuffer<Float>] = [], b: [AlignedBuffer<Float>] = []
        var ih: [GEMM.PreparedOperand<Float>] = [], hh: [GEMM.PreparedOperand<Float>] = []
        var phr: [AlignedBuffer<Float>] = [], hr: [GEMM.PreparedOperand<Float>] = []
        var peeps: [AlignedBuffer<Float>?] = [], lns: [AlignedBuffer<Float>?] = []
        let width = 4 * ((H + 15) / 16 * 16)
        parameters.storage.withUnsafeBufferPointer { p in
            let p = p.baseAddress!
            for layer in lstm.layers {
                let wi = AlignedBuffer<Float>(), wh = AlignedBuffer<Float>()
                let bs = AlignedBuffer<Float>(capacity: width)
                if layer.layerNormGates == nil {
                    // Gate-interleaved: 16 units' i, f, g, o columns side by side, so a thread's columns hold whole units.
                    ih.append(LSTM.packGateInterleaved(p + layer.weightIH.offset, hidden: H, K: layer.inputSize,
                                                       into: wi))
                    hh.append(LSTM.packGateInterleaved(p + layer.weightHH.offset, hidden: H, K: P, into: wh))
                    LSTM.gateInterleavedBias(layer, hidden: H, parameters: p, into: bs.pointer)
                } else {
                    // op(B) = W_ihᵀ: W_ih (4H, I) read transposed; the packed copy is all the stream keeps.
                    ih.append(GEMM.prepare(transposeB: true, K: layer.inputSize, N: 4 * H, p + layer.weightIH.offset,
                                           ldb: layer.inputSize, buffer: wi).detached)
                    hh.append(GEMM.prepare(transposeB: true, K: P, N: 4 * H, p + layer.weightHH.offset, ldb: P,
                                           buffer: wh).detached)
                    for j in 0..<(4 * H) { bs.pointer[j] = p[layer.biasIH.offset + j] + p[layer.biasHH.offset + j] }
                }
                if let spec = layer.weightHR {
                    let w = AlignedBuffer<Float>()
                    hr.append(GEMM.prepare(transposeB: true, K: H, N: P, p + spec.offset, ldb: H, buffer: w).detached)
                    phr.append(w)
                }
                pih.append(wi); phh.append(wh); b.append(bs)
                lns.append(layer.layerNormGates.map { gates in
                    let buffer = AlignedBuffer<Float>(capacity: 16 * H + 2 * H)
                    for j in 0..<(16 * H) { buffer.pointer[j] = p[gates.offset + j] }
                    for j in 0..<(2 * H) { buffer.pointer[16 * H + j] = p[layer.layerNormCell!.offset + j] }
                    return buffer
                })
                peeps.append(layer.peephole.map { spec in
                    let buffer = AlignedBuffer<Float>(capacity: 3 * H)
                    for j in 0..<(3 * H) { buffer.pointer[j] = p[spec.offset + j] }
                    return buffer
                })
            }
        }
        packedIH = pih
        fused = lstm.layers.map { $0.layerNormGates == nil }
        self.width = width
        nextHidden.reserve(P)
        packedHH = phh
        weightIHT = ih
        weightHHT = hh
        bias = b
        peepholes = peeps
        norms = lns
        normalized.reserve(4 * H)
        recurrent.reserve(4 * H)
        packedHR = phr
        weightHRT = hr
        hidden.reserve(L * P)
        cell.reserve(L * H)
        cellOutput.reserve(H)
        gates.reserve(width)
        reset()
    }

    /// Back to a zero state.
    public func reset() {
        hidden.zero(lstm.layerCount * lstm.outputSize)
        cell.zero(lstm.layerCount * lstm.hiddenSize)
    }

    /// The carried (h, c) of every layer, batch 1.
    public var state: LSTMState<Float> {
        get {
            let (L, P, H) = (lstm.layerCount, lstm.outputSize, lstm.hiddenSize)
            return LSTMState(hidden: hidden.array(0..<(L * P)), cell: cell.array(0..<(L * H)), layers: L, batch: 1,
                             hiddenSize: P, cellSize: H)
        }
        set {
            require(newValue.batch == 1 && newValue.layers == lstm.layerCount && newValue.hiddenSize == lstm.outputSize
                         && newValue.cellSize == lstm.hiddenSize,
                         "LSTMStream.state: expected (L, 1, P) = (\(lstm.layerCount), 1, \(lstm.outputSize)) and cells (L, 1, \(lstm.hiddenSize))")
            for k in 0..<newValue.hidden.count { hidden.pointer[k] = newValue.hidden[k] }
            for k in 0..<newValue.cell.count { cell.pointer[k] = newValue.cell[k] }
        }
    }

    /// One step: x (I) in, the top layer's h (P) out. Allocates nothing.
    public func step(_ x: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let H = lstm.hiddenSize, P = lstm.outputSize
        reversed.toggle()
        var source = x
        for (l, layer) in lstm.layers.enumerated() {
            let In = layer.inputSize
            let h = hidden.pointer + l * P, c = cell.pointer + l * H
            let z = gates.pointer
            if fused[l] {
                fusedStep(l, layer, x: source, h: h, c: c)
                source = UnsafePointer(h)
                continue
            }
            GEMM.gemm(transposeA: false, M: 1, source, lda: In, weightIHT[l], z, ldc: 4 * H, accumulate: false,
                      threads: threads)
            // The same operations as LSTM.forward's, in its order (with layer normalization: LN, + b, + LN(h·W_hhᵀ)).
            let norm = norms[l].map { UnsafePointer($0.pointer) }
            var inverse: Float = 0
            if let norm {
                LayerNorm.forward(z, rows: 1, width: 4 * H, gamma: norm, beta: norm + 4 * H,
                                  normalized: normalized.pointer, inverseDeviation: &inverse, output: z, replace: true)
            }
            for j in 0..<(4 * H) { z[j] += bias[l].pointer[j] }
            if let norm {
                GEMM.gemm(transposeA: false, M: 1, h, lda: P, weightHHT[l], recurrent.pointer, ldc: 4 * H,
                          accumulate: false, threads: threads)
                LayerNorm.forward(recurrent.pointer, rows: 1, width: 4 * H, gamma: norm + 8 * H, beta: norm + 12 * H,
                                  normalized: normalized.pointer, inverseDeviation: &inverse, output: z, replace: false)
            } else {
                GEMM.gemm(transposeA: false, M: 1, h, lda: P, weightHHT[l], z, ldc: 4 * H, accumulate: true,
                          threads: threads)
            }
            // h is read above before the pass overwrites it; with a projection the pass writes m_t, then h = m_t·W_hrᵀ.
            let m = layer.weightHR == nil ? h : cellOutput.pointer
            LSTMPointwise.forward(gates: z, previousCell: c, cell: c, hidden: m, batch: 1, hidden: H,
                                  gate: layer.activations.gate, cellActivation: layer.activations.cell,
                                  cellClip: layer.activations.cellClip,
                                  peepholes: peepholes[l].map { UnsafePointer($0.pointer) })
            if let norm {
                LSTMPointwise.normalizedCellForward(
                    gates: z, cell: c, hidden: m, batch: 1, hidden: H, cellActivation: layer.activations.cell,
                    gamma: norm + 16 * H, beta: norm + 17 * H, normalized: normalized.pointer,
                    inverseDeviation: &inverse, scratch: recurrent.pointer)
            }
            if layer.weightHR != nil {
                GEMM.gemm(transposeA: false, M: 1, UnsafePointer(m), lda: H, weightHRT[l], h, ldc: P, accumulate: false,
                          threads: threads)
            }
            source = UnsafePointer(h)
        }
        output.update(from: source, count: P)
    }

    /// One layer's step on gate-interleaved panels: each part takes a block of 16-unit groups and, run by run of two
    /// groups (`lstmk_lstm_stream_step`, in reverse order on every other step), computes their columns of
    /// Z = x·W_ihᵀ, + b, += h·W_hhᵀ and their element-wise pass; one pool dispatch. The new
    /// h goes to a scratch row (or m_t, with a projection) while other parts still read h_{t−1}, and is copied back
    /// after.
    private func fusedStep(_ l: Int, _ layer: LSTM.Layer, x: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>,
                           c: UnsafeMutablePointer<Float>) {
        let H = lstm.hiddenSize, P = lstm.outputSize, In = layer.inputSize, groups = (H + 15) / 16
        let projected = layer.weightHR != nil
        let target = projected ? cellOutput.pointer : nextHidden.pointer
        let (gate, cellCode, clip) = (layer.activations.gate.kernelCode, layer.activations.cell.kernelCode,
                                      Float(layer.activations.cellClip ?? 0))
        // Below ~64k multiply-adds a dispatch costs more than it saves (as in GEMM).
        let parts = 64 * groups * (In + P) >= 1 << 16 ? max(1, min(threads, groups)) : 1
        nonisolated(unsafe) let (z, input, previous, cells, out) = (gates.pointer, x, UnsafePointer(h), c, target)
        nonisolated(unsafe) let (wih, whh, b) = (weightIHT[l].packed!, weightHHT[l].packed!, bias[l].pointer)
        nonisolated(unsafe) let peep = peepholes[l].map { UnsafePointer($0.pointer) }
        let reverse: Int32 = reversed ? 1 : 0
        func part(_ part: Int) {
            let g0 = part * groups / parts, g1 = (part + 1) * groups / parts
            lstmk_lstm_stream_step(-1, g0, g1, H, In, input, wih, P, previous, whh, b, z, cells, out, gate, cellCode,
                                   clip, peep, reverse)
        }
        if parts == 1 { part(0) } else { WorkerPool.shared(threads: parts).run(parts: parts) { part($0) } }
        if projected {
            GEMM.gemm(transposeA: false, M: 1, UnsafePointer(cellOutput.pointer), lda: H, weightHRT[l], h, ldc: P,
                      accumulate: false, threads: threads)
        } else {
            h.update(from: nextHidden.pointer, count: P)
        }
    }

    /// One step with arrays: x (I) in, h (P) out.
    @discardableResult
    public func step(_ x: [Float]) -> [Float] {
        require(x.count == lstm.inputSize, "LSTMStream.step: x has \(x.count) values, expected \(lstm.inputSize)")
        var out = [Float](repeating: 0, count: lstm.outputSize)
        x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { step(xs.baseAddress!, output: $0.baseAddress!) } }
        return out
    }

    /// A chunk of T steps: x (T, I) in, h (T, P) out.
    public func feed(_ x: [Float], steps T: Int) -> [Float] {
        let I = lstm.inputSize, H = lstm.outputSize
        require(x.count == T * I, "LSTMStream.feed: x has \(x.count) values, expected T·I = \(T * I)")
        var out = [Float](repeating: 0, count: T * H)
        x.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { o in
                for t in 0..<T { step(xs.baseAddress! + t * I, output: o.baseAddress! + t * H) }
            }
        }
        return out
    }
}
