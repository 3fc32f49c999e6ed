/// A stacked LSTM: L layers, each running over T steps of a batch of B sequences.
///
/// Forward, for layer l at step t (gate order i, f, g, o; I_t = [x_t, h_{t-1}], W = [W_ih | W_hh]):
/// ```
/// Z_t = W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh                     // (B, 4H)
/// i = act(z_i)   f = act(z_f)   g = cellAct(z_g)   o = act(z_o)
/// S_t = f ⊙ S_{t-1} + i ⊙ g
/// h_t = o ⊙ cellAct(S_t)
/// ```
/// Backward through time (δh_t = from the layer above + from step t+1):
/// ```
/// δo   = δh_t ⊙ cellAct(S_t)
/// δS_t = δh_t ⊙ o ⊙ cellAct'(S_t) + δS_{t+1} ⊙ f_{t+1}         // the two paths into S_t
/// δi = δS_t ⊙ g   δg = δS_t ⊙ i   δf = δS_t ⊙ S_{t-1}
/// δZ_t = [δi ⊙ act'(i), δf ⊙ act'(f), δg ⊙ cellAct'(g), δo ⊙ act'(o)]
/// δh_{t-1} += W_hhᵀ·δZ_t             δx_t = W_ihᵀ·δZ_t
/// δW_ih += δZ_t·x_tᵀ   δW_hh += δZ_t·h_{t-1}ᵀ   δb_ih += δZ_t   δb_hh += δZ_t   (summed over t and rows)
/// ```
/// The forward pass keeps, per layer, step and row, the four activated gates, S_t and h_t (6H scalars): the
/// derivatives are all written in terms of activation outputs, so backward needs no pre-activation.
///
/// Speed-relevant layout: the input projection X·W_ihᵀ is one product over all T·B rows before the time loop, and
/// δX, δW_ih, δW_hh are single products over all T·B rows after the backward loop; only h_{t-1}·W_hhᵀ and
/// δZ_t·W_hh are per step. Buffers are contiguous (T, B, ·) and live in an `LSTMStash` that is reused across calls.
///
/// `LSTM` itself holds only sizes and where its tensors live in a `ParameterLayout`; the numbers are in a
/// `ParameterBuffer`, so Float and Double runs of the same model share one description.
public struct LSTM: Sendable, Hashable {
    /// Where one layer's tensors live, with PyTorch's names and shapes.
    public struct Layer: Sendable, Hashable {
        public let inputSize: Int
        public let weightIH: ParameterSpec   // (4H, inputSize)
        public let weightHH: ParameterSpec   // (4H, H)
        public let biasIH: ParameterSpec     // (4H)
        public let biasHH: ParameterSpec     // (4H)
        public let activations: LSTMActivations
        /// `weight_peephole_l{k}` (3, H): p_i, p_f, p_o, when `activations.peepholes` (not a PyTorch tensor).
        public let peephole: ParameterSpec?
    }

    public let inputSize: Int
    public let hiddenSize: Int
    public let layers: [Layer]
    /// Dropout on the outputs of every layer but the last, during training (PyTorch's `dropout`): each value is
    /// kept with probability 1 − p and scaled by 1/(1 − p), or zeroed; the mask is drawn from the seed given to
    /// `forward` (no seed: inference, no dropout). Backward multiplies by the same mask.
    public let dropout: Double
    /// Variational recurrent dropout (Gal & Ghahramani 2016): one mask per layer and sequence, m (B, H) with values
    /// 0 or 1/(1 − p), drawn once per `forward` with a seed and applied to h_{t-1} in the recurrent product at every
    /// step: Z_t = W_ih·x_t + b_ih + W_hh·(h_{t-1} ⊙ m) + b_hh. Backward: δh_{t-1} = (W_hhᵀ·δZ_t) ⊙ m and
    /// δW_hh += δZ_t·(h_{t-1} ⊙ m)ᵀ. Off without a seed.
    public let recurrentDropout: Double
    public var layerCount: Int { layers.count }

    /// Everything about an LSTM in one value, validated when the LSTM is built (`LSTM(_:layout:prefix:)`).
    public var configuration: LSTMConfiguration {
        LSTMConfiguration(inputSize: inputSize, hiddenSize: hiddenSize, layers: layerCount,
                          activations: layers.map(\.activations), dropout: dropout, recurrentDropout: recurrentDropout)
    }

    /// Builds the LSTM `configuration` describes, adding its tensors to `layout`; an invalid combination throws
    /// with a message naming it.
    public init(_ configuration: LSTMConfiguration, layout: inout ParameterLayout, prefix: String = "") throws(LSTMKitError) {
        try self.init(inputSize: configuration.inputSize, hiddenSize: configuration.hiddenSize,
                      layers: configuration.layers, activations: configuration.activations,
                      dropout: configuration.dropout, recurrentDropout: configuration.recurrentDropout,
                      layout: &layout, prefix: prefix)
    }

    /// Adds an L-layer LSTM's tensors to `layout` as `prefix + "weight_ih_l0"`, …
    ///
    /// - Parameter activations: one entry for every layer, or a single entry used by all layers.
    public init(
        inputSize: Int, hiddenSize: Int, layers: Int = 1,
        activations: [LSTMActivations] = [.standard], dropout: Double = 0, recurrentDropout: Double = 0,
        layout: inout ParameterLayout, prefix: String = ""
    ) throws(LSTMKitError) {
        guard inputSize > 0 else { throw .invalidConfiguration("input size must be at least 1, got \(inputSize)") }
        guard hiddenSize > 0 else { throw .invalidConfiguration("hidden size must be at least 1, got \(hiddenSize)") }
        guard layers > 0 else { throw .invalidConfiguration("number of layers must be at least 1, got \(layers)") }
        guard activations.count == 1 || activations.count == layers else {
            throw .invalidConfiguration("give one activation setting or one per layer (\(layers)), got \(activations.count)")
        }
        for a in activations {
            // Positive and finite also as a Float (the fast kernels' type): 1e-50 would be 0 there, i.e. off.
            if let clip = a.cellClip, !(clip > 0 && Float(clip) > 0 && Float(clip).isFinite) {
                throw .invalidConfiguration("the cell clip must be a positive finite number, got \(clip)")
            }
        }
        guard dropout >= 0 && dropout < 1 else {
            throw .invalidConfiguration("dropout must be in [0, 1), got \(dropout)")
        }
        guard dropout == 0 || layers > 1 else {
            throw .invalidConfiguration("dropout acts between layers, so it needs at least 2 layers (got 1 layer with dropout \(dropout))")
        }
        guard recurrentDropout >= 0 && recurrentDropout < 1 else {
            throw .invalidConfiguration("recurrent dropout must be in [0, 1), got \(recurrentDropout)")
        }
        self.dropout = dropout
        self.recurrentDropout = recurrentDropout
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        let H = hiddenSize
        var built: [Layer] = []
        for l in 0..<layers {
            let input = l == 0 ? inputSize : H
            let a = activations.count == 1 ? activations[0] : activations[l]
            built.append(Layer(
                inputSize: input,
                weightIH: layout.add(prefix + "weight_ih_l\(l)", shape: [4 * H, input]),
                weightHH: layout.add(prefix + "weight_hh_l\(l)", shape: [4 * H, H]),
                biasIH: layout.add(prefix + "bias_ih_l\(l)", shape: [4 * H]),
                biasHH: layout.add(prefix + "bias_hh_l\(l)", shape: [4 * H]),
                activations: a,
                peephole: a.peepholes ? layout.add(prefix + "weight_peephole_l\(l)", shape: [3, H]) : nil))
        }
        self.layers = built
    }
}

/// One value that describes an LSTM: sizes, per-layer element-wise settings (activations, cell clipping) and
/// dropout. `LSTM(_:layout:prefix:)` validates it.
public struct LSTMConfiguration: Sendable, Hashable, Codable {
    public var inputSize: Int
    public var hiddenSize: Int
    public var layers: Int
    /// One entry for every layer, or a single entry used by all layers.
    public var activations: [LSTMActivations]
    /// Dropout on the outputs of every layer but the last (`LSTM.dropout`); needs 2 or more layers.
    public var dropout: Double
    /// Variational recurrent dropout on h_{t-1} (`LSTM.recurrentDropout`).
    public var recurrentDropout: Double

    public init(inputSize: Int, hiddenSize: Int, layers: Int = 1, activations: [LSTMActivations] = [.standard],
                dropout: Double = 0, recurrentDropout: Double = 0) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.activations = activations
        self.dropout = dropout
        self.recurrentDropout = recurrentDropout
    }
}

/// The element-wise settings of one layer: its activations and cell clipping.
///
/// Cell clipping (cuDNN's cell clip) limits the cell state after each update:
/// ```
/// S_t = clamp(f ⊙ S_{t-1} + i ⊙ g, −cellClip, cellClip)
/// backward: δ(f ⊙ S_{t-1} + i ⊙ g) = δS_t where −cellClip < S_t < cellClip, else 0
/// ```
/// (at exactly ±cellClip, the kink, the derivative is taken as 0).
public struct LSTMActivations: Sendable, Hashable, Codable {
    public var gate: GateActivation
    public var cell: CellActivation
    /// The bound on |S_t|, a positive number; nil: no clipping.
    public var cellClip: Double?
    /// Peephole connections (Gers & Schmidhuber 2000): i and f see S_{t-1}, o sees S_t, through per-unit weights
    /// p_i, p_f, p_o (`weight_peephole_l{k}`, (3, H)):
    /// ```
    /// i = act(z_i + p_i ⊙ S_{t-1})   f = act(z_f + p_f ⊙ S_{t-1})   o = act(z_o + p_o ⊙ S_t)
    /// backward: δS_t += δz_o ⊙ p_o;  δS_{t-1} gets δz_i ⊙ p_i + δz_f ⊙ p_f besides δS_t ⊙ f
    ///           δp_i += Σ δz_i ⊙ S_{t-1}   δp_f += Σ δz_f ⊙ S_{t-1}   δp_o += Σ δz_o ⊙ S_t
    /// ```
    public var peepholes: Bool

    public init(gate: GateActivation = .sigmoid, cell: CellActivation = .tanh, cellClip: Double? = nil,
                peepholes: Bool = false) {
        self.gate = gate
        self.cell = cell
        self.cellClip = cellClip
        self.peepholes = peepholes
    }

    enum CodingKeys: String, CodingKey { case gate, cell, cellClip, peepholes }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        gate = try c.decode(GateActivation.self, forKey: .gate)
        cell = try c.decode(CellActivation.self, forKey: .cell)
        cellClip = try c.decodeIfPresent(Double.self, forKey: .cellClip)
        peepholes = try c.decodeIfPresent(Bool.self, forKey: .peepholes) ?? false
    }

    /// σ gates, tanh cell: the standard LSTM.
    public static let standard = LSTMActivations()
    /// Identity everywhere: the seed derivation's LSTM that "ignores the non-linearities".
    public static let linear = LSTMActivations(gate: .identity, cell: .identity)
}

/// Hidden and cell state of every layer: `hidden` and `cell` are (L, B, H).
public struct LSTMState<Scalar: LSTMScalar>: Sendable, Equatable {
    public var hidden: [Scalar]   // (L, B, H)
    public var cell: [Scalar]     // (L, B, H)
    public let layers: Int
    public let batch: Int
    public let hiddenSize: Int

    public init(layers: Int, batch: Int, hiddenSize: Int) {
        self.layers = layers
        self.batch = batch
        self.hiddenSize = hiddenSize
        hidden = [Scalar](repeating: 0, count: layers * batch * hiddenSize)
        cell = hidden
    }

    public init(hidden: [Scalar], cell: [Scalar], layers: Int, batch: Int, hiddenSize: Int) {
        precondition(hidden.count == layers * batch * hiddenSize && cell.count == hidden.count,
                     "LSTMState: hidden and cell must each hold layers·batch·hidden = \(layers * batch * hiddenSize) values")
        self.hidden = hidden
        self.cell = cell
        self.layers = layers
        self.batch = batch
        self.hiddenSize = hiddenSize
    }
}

/// How a sequence batch is laid out in memory.
public enum SequenceLayout: Sendable, Hashable {
    /// (T, B, F): PyTorch's default; what LSTMKit computes in.
    case timeMajor
    /// (B, T, F): PyTorch's `batch_first=True`; transposed on the way in and out.
    case batchFirst
}

/// What `LSTM.forward` returns.
public struct LSTMOutput<Scalar: LSTMScalar>: Sendable {
    /// All hidden states of the top layer, (T, B, H) or (B, T, H) as the input was laid out.
    public var output: [Scalar]
    /// (h_T, c_T) of every layer.
    public var final: LSTMState<Scalar>
}

/// What `LSTM.backward` returns; parameter gradients are added into the caller's buffer.
public struct LSTMInputGradients<Scalar: LSTMScalar>: Sendable {
    /// δx, in the input's layout.
    public var input: [Scalar]
    /// δh0 and δc0 of every layer.
    public var initial: LSTMState<Scalar>
}

/// What the forward pass keeps for the backward pass, plus backward scratch; reused across calls so that a model
/// run again with the same shapes allocates nothing but its returned arrays.
public final class LSTMStash<Scalar: LSTMScalar> {
    public private(set) var steps = 0
    public private(set) var batch = 0
    /// Threads for the matrix products (any count gives bitwise the same results).
    public var threads: Int
    var sequenceLayout = SequenceLayout.timeMajor
    let input = AlignedBuffer<Scalar>()          // (T, B, I)   x, time-major
    let initialHidden = AlignedBuffer<Scalar>()  // (L, B, H)   h0
    let initialCell = AlignedBuffer<Scalar>()    // (L, B, H)   c0
    let gates = AlignedBuffer<Scalar>()          // (L, T, B, 4H) activated i, f, g, o
    let cells = AlignedBuffer<Scalar>()          // (L, T, B, H)  S_t
    let hiddens = AlignedBuffer<Scalar>()        // (L, T, B, H)  h_t
    let dGates = AlignedBuffer<Scalar>()         // (T, B, 4H)    δZ of the layer being differentiated
    let dHiddenCarry = AlignedBuffer<Scalar>()   // (B, H)
    let dCellCarry = AlignedBuffer<Scalar>()     // (B, H)
    let dAbove = AlignedBuffer<Scalar>()         // (T, B, max(I, H)) δ of a layer's output
    let dBelow = AlignedBuffer<Scalar>()         // (T, B, max(I, H)) δ of a layer's input
    let biasSum = AlignedBuffer<Scalar>()        // (4H)
    var dropoutActive = false
    let dropoutMasks = AlignedBuffer<Scalar>()   // (L−1, T, B, H) 0 or 1/(1−p), when dropout is active
    let droppedHiddens = AlignedBuffer<Scalar>() // (L−1, T, B, H) h_t ⊙ mask: the input of the layer above
    var recurrentDropoutActive = false
    let recurrentMasks = AlignedBuffer<Scalar>()   // (L, B, H) 0 or 1/(1−p), when recurrent dropout is active
    let recurrentInput = AlignedBuffer<Scalar>()   // (T, B, H) h_{t-1} ⊙ m of one layer (per step, or all for δW_hh)
    let packedInput = AlignedBuffer<Scalar>()      // W_ihᵀ of the current layer, packed for the Float kernel
    let packedRecurrent = AlignedBuffer<Scalar>()  // W_hhᵀ (forward) or W_hh (backward), packed, reused every step

    public init(threads: Int = 1) {
        self.threads = max(1, threads)
    }

    func prepare(_ lstm: LSTM, steps T: Int, batch B: Int) {
        steps = T
        batch = B
        let L = lstm.layerCount, H = lstm.hiddenSize, I = lstm.inputSize
        input.reserve(T * B * I)
        initialHidden.reserve(L * B * H)
        initialCell.reserve(L * B * H)
        gates.reserve(L * T * B * 4 * H)
        cells.reserve(L * T * B * H)
        hiddens.reserve(L * T * B * H)
        dGates.reserve(T * B * 4 * H)
        dHiddenCarry.reserve(B * H)
        dCellCarry.reserve(B * H)
        dAbove.reserve(T * B * max(I, H))
        dBelow.reserve(T * B * max(I, H))
        biasSum.reserve(4 * H)
    }
}

extension LSTM {
    /// Runs all layers over the whole sequence.
    ///
    /// - Parameters:
    ///   - x: (T, B, I), or (B, T, I) with `layout: .batchFirst`.
    ///   - initial: (h0, c0) of every layer; zero when nil.
    ///   - stash: keeps what `backward` needs; pass the same stash to `backward`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func forward<S: LSTMScalar>(
        _ x: [S], steps T: Int, batch B: Int, initial: LSTMState<S>? = nil,
        layout sequenceLayout: SequenceLayout = .timeMajor,
        parameters: ParameterBuffer<S>, stash: LSTMStash<S>, dropoutSeed: UInt64? = nil
    ) -> LSTMOutput<S> {
        let L = layerCount, H = hiddenSize, I = inputSize
        precondition(T >= 0 && B >= 1, "LSTM.forward: need steps ≥ 0 and batch ≥ 1")
        precondition(x.count == T * B * I, "LSTM.forward: x has \(x.count) values, expected T·B·I = \(T * B * I)")
        precondition(parameters.layout.count >= (layers.last.map { $0.biasHH.range.upperBound } ?? 0),
                     "LSTM.forward: parameter buffer does not hold this LSTM's tensors")
        if let initial {
            precondition(initial.layers == L && initial.batch == B && initial.hiddenSize == H,
                         "LSTM.forward: initial state must be (L, B, H) = (\(L), \(B), \(H))")
        }
        stash.prepare(self, steps: T, batch: B)
        stash.sequenceLayout = sequenceLayout
        stash.dropoutActive = dropout > 0 && dropoutSeed != nil && L > 1
        if stash.dropoutActive, let dropoutSeed {
            // One mask value per output of every layer but the last, drawn in (layer, t, b, j) order.
            let n = (L - 1) * T * B * H
            stash.dropoutMasks.reserve(n)
            stash.droppedHiddens.reserve(n)
            var random = RandomSource(seed: dropoutSeed)
            let scale = S(1 / (1 - dropout))
            for k in 0..<n { stash.dropoutMasks.pointer[k] = random.uniform(0, 1) < dropout ? 0 : scale }
        }
        stash.recurrentDropoutActive = recurrentDropout > 0 && dropoutSeed != nil
        if stash.recurrentDropoutActive, let dropoutSeed {
            // One (B, H) mask per layer, from its own stream of the seed.
            stash.recurrentMasks.reserve(L * B * H)
            stash.recurrentInput.reserve(T * B * H)
            var random = RandomSource(seed: dropoutSeed ^ 0x5DEE_CE66_D1CE_4E5B)
            let scale = S(1 / (1 - recurrentDropout))
            for k in 0..<(L * B * H) {
                stash.recurrentMasks.pointer[k] = random.uniform(0, 1) < recurrentDropout ? 0 : scale
            }
        }
        x.withUnsafeBufferPointer { xs in
            if sequenceLayout == .timeMajor {
                stash.input.pointer.update(from: xs.baseAddress!, count: T * B * I)
            } else {
                Self.swapLeadingAxes(xs.baseAddress!, stash.input.pointer, outer: B, inner: T, width: I)
            }
        }
        if let initial {
            initial.hidden.withUnsafeBufferPointer { stash.initialHidden.pointer.update(from: $0.baseAddress!, count: L * B * H) }
            initial.cell.withUnsafeBufferPointer { stash.initialCell.pointer.update(from: $0.baseAddress!, count: L * B * H) }
        } else {
            stash.initialHidden.zero(L * B * H)
            stash.initialCell.zero(L * B * H)
        }

        parameters.storage.withUnsafeBufferPointer { p in
            let p = p.baseAddress!
            for (l, layer) in layers.enumerated() {
                let In = layer.inputSize
                if l > 0 && stash.dropoutActive {
                    // The layer below's outputs, dropped out: x = h ⊙ mask.
                    let h = stash.hiddens.pointer + (l - 1) * T * B * H
                    let m = stash.dropoutMasks.pointer + (l - 1) * T * B * H
                    let dropped = stash.droppedHiddens.pointer + (l - 1) * T * B * H
                    for k in 0..<(T * B * H) { dropped[k] = h[k] * m[k] }
                }
                let layerInput = l == 0 ? UnsafePointer(stash.input.pointer)
                    : UnsafePointer((stash.dropoutActive ? stash.droppedHiddens.pointer : stash.hiddens.pointer)
                                    + (l - 1) * T * B * H)
                let Z = stash.gates.pointer + l * T * B * 4 * H
                let cells = stash.cells.pointer + l * T * B * H
                let hiddens = stash.hiddens.pointer + l * T * B * H
                let h0 = stash.initialHidden.pointer + l * B * H
                let c0 = stash.initialCell.pointer + l * B * H
                // Weights packed once per call and reused by every product below (W_hh at every step).
                let weightIH = GEMM.prepare(transposeB: true, K: In, N: 4 * H, p + layer.weightIH.offset, ldb: In,
                                            buffer: stash.packedInput)
                let weightHH = GEMM.prepare(transposeB: true, K: H, N: 4 * H, p + layer.weightHH.offset, ldb: H,
                                            buffer: stash.packedRecurrent)
                // Input projection for all steps at once, then both biases.
                GEMM.gemm(transposeA: false, M: T * B, layerInput, lda: In, weightIH, Z, ldc: 4 * H,
                          accumulate: false, threads: stash.threads)
                let bias = stash.biasSum.pointer
                for j in 0..<(4 * H) { bias[j] = p[layer.biasIH.offset + j] + p[layer.biasHH.offset + j] }
                for r in 0..<(T * B) {
                    let row = Z + r * 4 * H
                    for j in 0..<(4 * H) { row[j] += bias[j] }
                }
                for t in 0..<T {
                    var hPrev = t == 0 ? UnsafePointer(h0) : UnsafePointer(hiddens + (t - 1) * B * H)
                    if stash.recurrentDropoutActive {
                        // The recurrent product sees h_{t-1} ⊙ m.
                        let m = stash.recurrentMasks.pointer + l * B * H, masked = stash.recurrentInput.pointer
                        for k in 0..<(B * H) { masked[k] = hPrev[k] * m[k] }
                        hPrev = UnsafePointer(masked)
                    }
                    let cPrev = t == 0 ? UnsafePointer(c0) : UnsafePointer(cells + (t - 1) * B * H)
                    let Zt = Z + t * B * 4 * H
                    GEMM.gemm(transposeA: false, M: B, hPrev, lda: H, weightHH, Zt, ldc: 4 * H, accumulate: true,
                              threads: stash.threads)
                    LSTMPointwise.forward(gates: Zt, previousCell: cPrev, cell: cells + t * B * H,
                                          hidden: hiddens + t * B * H, batch: B, hidden: H,
                                          gate: layer.activations.gate, cellActivation: layer.activations.cell,
                                          cellClip: layer.activations.cellClip,
                                          peepholes: layer.peephole.map { p + $0.offset }, threads: stash.threads)
                }
            }
        }

        var final = LSTMState<S>(layers: L, batch: B, hiddenSize: H)
        for l in 0..<L {
            let source = T == 0 ? (stash.initialHidden.pointer + l * B * H, stash.initialCell.pointer + l * B * H)
                                : (stash.hiddens.pointer + (l * T + T - 1) * B * H, stash.cells.pointer + (l * T + T - 1) * B * H)
            for k in 0..<(B * H) {
                final.hidden[l * B * H + k] = source.0[k]
                final.cell[l * B * H + k] = source.1[k]
            }
        }
        let top = stash.hiddens.pointer + (L - 1) * T * B * H
        var output = [S](repeating: 0, count: T * B * H)
        output.withUnsafeMutableBufferPointer { out in
            guard T > 0 else { return }
            if sequenceLayout == .timeMajor {
                out.baseAddress!.update(from: top, count: T * B * H)
            } else {
                Self.swapLeadingAxes(top, out.baseAddress!, outer: T, inner: B, width: H)
            }
        }
        return LSTMOutput(output: output, final: final)
    }

    /// Backpropagation through time over the sequence of the last `forward` with this stash.
    ///
    /// - Parameters:
    ///   - dOutput: δ of the top layer's outputs, in the forward input's layout; nil means zero.
    ///   - dFinal: δ of (h_T, c_T) of every layer; nil means zero (truncated BPTT windows pass nil).
    ///   - gradients: parameter gradients are *added* here, so several backward calls accumulate.
    /// - Returns: δx and δ(h0, c0).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func backward<S: LSTMScalar>(
        dOutput: [S]?, dFinal: LSTMState<S>? = nil,
        parameters: ParameterBuffer<S>, stash: LSTMStash<S>, gradients: inout ParameterBuffer<S>
    ) -> LSTMInputGradients<S> {
        let L = layerCount, H = hiddenSize, I = inputSize
        let T = stash.steps, B = stash.batch
        if let dOutput {
            precondition(dOutput.count == T * B * H, "LSTM.backward: dOutput has \(dOutput.count) values, expected \(T * B * H)")
        }
        if let dFinal {
            precondition(dFinal.layers == L && dFinal.batch == B && dFinal.hiddenSize == H,
                         "LSTM.backward: dFinal must be (L, B, H) = (\(L), \(B), \(H))")
        }
        precondition(gradients.layout == parameters.layout, "LSTM.backward: gradients must share the parameters' layout")
        var dInitial = LSTMState<S>(layers: L, batch: B, hiddenSize: H)

        // δ of the top layer's outputs, time-major, into dAbove.
        if let dOutput {
            dOutput.withUnsafeBufferPointer { d in
                if stash.sequenceLayout == .timeMajor {
                    stash.dAbove.pointer.update(from: d.baseAddress!, count: T * B * H)
                } else {
                    Self.swapLeadingAxes(d.baseAddress!, stash.dAbove.pointer, outer: B, inner: T, width: H)
                }
            }
        }
        var hasAbove = dOutput != nil
        var dAbove = stash.dAbove, dBelow = stash.dBelow

        parameters.storage.withUnsafeBufferPointer { p in
            gradients.storage.withUnsafeMutableBufferPointer { g in
                let p = p.baseAddress!, g = g.baseAddress!
                for l in stride(from: L - 1, through: 0, by: -1) {
                    let layer = layers[l]
                    let In = layer.inputSize
                    let A = layer.activations
                    let gates = UnsafePointer(stash.gates.pointer + l * T * B * 4 * H)
                    let cells = UnsafePointer(stash.cells.pointer + l * T * B * H)
                    let hiddens = UnsafePointer(stash.hiddens.pointer + l * T * B * H)
                    let h0 = UnsafePointer(stash.initialHidden.pointer + l * B * H)
                    let c0 = UnsafePointer(stash.initialCell.pointer + l * B * H)
                    let dZ = stash.dGates.pointer
                    let dh = stash.dHiddenCarry.pointer, dc = stash.dCellCarry.pointer
                    let weightHH = GEMM.prepare(transposeB: false, K: 4 * H, N: H, p + layer.weightHH.offset, ldb: H,
                                                buffer: stash.packedRecurrent)
                    if let dFinal {
                        for k in 0..<(B * H) {
                            dh[k] = dFinal.hidden[l * B * H + k]
                            dc[k] = dFinal.cell[l * B * H + k]
                        }
                    } else {
                        stash.dHiddenCarry.zero(B * H)
                        stash.dCellCarry.zero(B * H)
                    }
                    for t in stride(from: T - 1, through: 0, by: -1) {
                        let cPrev = t == 0 ? c0 : cells + (t - 1) * B * H
                        let dZt = dZ + t * B * 4 * H
                        LSTMPointwise.backward(
                            gates: gates + t * B * 4 * H, previousCell: cPrev, cell: cells + t * B * H,
                            dOutput: hasAbove ? UnsafePointer(dAbove.pointer + t * B * H) : nil,
                            dHiddenCarry: dh, dCellCarry: dc, dGates: dZt,
                            batch: B, hidden: H, gate: A.gate, cellActivation: A.cell, cellClip: A.cellClip,
                            peepholes: layer.peephole.map { p + $0.offset }, threads: stash.threads)
                        // δh_{t-1} = δZ_t · W_hh   (B, 4H)·(4H, H)
                        GEMM.gemm(transposeA: false, M: B, dZt, lda: 4 * H, weightHH, dh, ldc: H, accumulate: false,
                                  threads: stash.threads)
                        if stash.recurrentDropoutActive {
                            // … through the recurrent dropout: ⊙ m.
                            let m = stash.recurrentMasks.pointer + l * B * H
                            for k in 0..<(B * H) { dh[k] *= m[k] }
                        }
                    }
                    for k in 0..<(B * H) {
                        dInitial.hidden[l * B * H + k] = dh[k]
                        dInitial.cell[l * B * H + k] = dc[k]
                    }
                    let layerInput = l == 0 ? UnsafePointer(stash.input.pointer)
                        : UnsafePointer((stash.dropoutActive ? stash.droppedHiddens.pointer : stash.hiddens.pointer)
                                        + (l - 1) * T * B * H)
                    // δW_ih += δZᵀ·X over all T·B rows.
                    GEMM.gemm(transposeA: true, transposeB: false, M: 4 * H, N: In, K: T * B,
                              dZ, lda: 4 * H, layerInput, ldb: In, g + layer.weightIH.offset, ldc: In, accumulate: true, threads: stash.threads)
                    // δW_hh += δZ_0ᵀ·h0 + δZ_{1..T-1}ᵀ·h_{0..T-2}  (each h ⊙ m under recurrent dropout).
                    var recurrentH0 = h0, recurrentHiddens = hiddens
                    if stash.recurrentDropoutActive {
                        let m = stash.recurrentMasks.pointer + l * B * H, masked = stash.recurrentInput.pointer
                        for t in 0..<T {
                            let source = t == 0 ? h0 : hiddens + (t - 1) * B * H
                            for k in 0..<(B * H) { masked[t * B * H + k] = source[k] * m[k] }
                        }
                        recurrentH0 = UnsafePointer(masked)
                        recurrentHiddens = UnsafePointer(masked + B * H)
                    }
                    GEMM.gemm(transposeA: true, transposeB: false, M: 4 * H, N: H, K: B,
                              dZ, lda: 4 * H, recurrentH0, ldb: H, g + layer.weightHH.offset, ldc: H, accumulate: true,
                              threads: stash.threads)
                    GEMM.gemm(transposeA: true, transposeB: false, M: 4 * H, N: H, K: max(T - 1, 0) * B,
                              dZ + B * 4 * H, lda: 4 * H, recurrentHiddens, ldb: H, g + layer.weightHH.offset, ldc: H,
                              accumulate: true, threads: stash.threads)
                    if let peephole = layer.peephole {
                        // δp_i += Σ δz_i ⊙ S_{t-1}, δp_f += Σ δz_f ⊙ S_{t-1}, δp_o += Σ δz_o ⊙ S_t over t and rows.
                        let gp = g + peephole.offset
                        for t in 0..<T {
                            let cPrev = t == 0 ? c0 : cells + (t - 1) * B * H, cNow = cells + t * B * H
                            for b in 0..<B {
                                let dz = dZ + (t * B + b) * 4 * H
                                for j in 0..<H {
                                    gp[j] += dz[j] * cPrev[b * H + j]
                                    gp[H + j] += dz[H + j] * cPrev[b * H + j]
                                    gp[2 * H + j] += dz[3 * H + j] * cNow[b * H + j]
                                }
                            }
                        }
                    }
                    // δb_ih and δb_hh both receive Σ δZ over rows.
                    let sum = stash.biasSum.pointer
                    stash.biasSum.zero(4 * H)
                    for r in 0..<(T * B) {
                        let row = dZ + r * 4 * H
                        for j in 0..<(4 * H) { sum[j] += row[j] }
                    }
                    for j in 0..<(4 * H) {
                        g[layer.biasIH.offset + j] += sum[j]
                        g[layer.biasHH.offset + j] += sum[j]
                    }
                    // δ of this layer's input: δZ · W_ih   (T·B, 4H)·(4H, In)
                    GEMM.gemm(transposeA: false, transposeB: false, M: T * B, N: In, K: 4 * H,
                              dZ, lda: 4 * H, p + layer.weightIH.offset, ldb: In, dBelow.pointer, ldc: In,
                              accumulate: false, threads: stash.threads)
                    if l > 0 && stash.dropoutActive {
                        // Through the dropout of the layer below: δh = δx ⊙ mask.
                        let m = stash.dropoutMasks.pointer + (l - 1) * T * B * H
                        for k in 0..<(T * B * H) { dBelow.pointer[k] *= m[k] }
                    }
                    swap(&dAbove, &dBelow)
                    hasAbove = true
                }
            }
        }

        var dInput = [S](repeating: 0, count: T * B * I)
        dInput.withUnsafeMutableBufferPointer { d in
            guard T > 0 else { return }
            if stash.sequenceLayout == .timeMajor {
                d.baseAddress!.update(from: dAbove.pointer, count: T * B * I)
            } else {
                Self.swapLeadingAxes(dAbove.pointer, d.baseAddress!, outer: T, inner: B, width: I)
            }
        }
        return LSTMInputGradients(input: dInput, initial: dInitial)
    }

    /// (outer, inner, width) → (inner, outer, width).
    static func swapLeadingAxes<S>(_ source: UnsafePointer<S>, _ destination: UnsafeMutablePointer<S>,
                                   outer: Int, inner: Int, width: Int) {
        for a in 0..<outer {
            for b in 0..<inner {
                (destination + (b * outer + a) * width).update(from: source + (a * inner + b) * width, count: width)
            }
        }
    }
}
