/// A stacked LSTM: L layers, each with one or two directions, running over T steps of a batch of B sequences.
///
/// Forward, for one direction of layer l at step t (gate order i, f, g, o; I_t = [x_t, h_{t-1}], W = [W_ih | W_hh]):
/// ```
/// Z_t = W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh                     // (B, 4H)
/// i = act(z_i)   f = act(z_f)   g = cellAct(z_g)   o = act(z_o)
/// S_t = f ⊙ S_{t-1} + i ⊙ g
/// m_t = o ⊙ cellAct(S_t)                                          // (B, H)
/// h_t = m_t                     or, with a projection (LSTMP):  h_t = W_hr·m_t   // (B, P)
/// ```
/// Backward through time (δh_t = from the layer above + from step t+1):
/// ```
/// δm_t = δh_t                   or, with a projection:  δm_t = W_hrᵀ·δh_t,  δW_hr += δh_t·m_tᵀ
/// δo   = δm_t ⊙ cellAct(S_t)
/// δS_t = δm_t ⊙ o ⊙ cellAct'(S_t) + δS_{t+1} ⊙ f_{t+1}         // the two paths into S_t
/// δi = δS_t ⊙ g   δg = δS_t ⊙ i   δf = δS_t ⊙ S_{t-1}
/// δZ_t = [δi ⊙ act'(i), δf ⊙ act'(f), δg ⊙ cellAct'(g), δo ⊙ act'(o)]
/// δh_{t-1} += W_hhᵀ·δZ_t             δx_t = W_ihᵀ·δZ_t
/// δW_ih += δZ_t·x_tᵀ   δW_hh += δZ_t·h_{t-1}ᵀ   δb_ih += δZ_t   δb_hh += δZ_t   (summed over t and rows)
/// ```
/// Bidirectional layers run a second, independent set of weights (PyTorch's `_reverse` tensors) from t = T−1 down to
/// 0, with "t−1" read as t+1 above; the layer's output is [h_t(forward), h_t(reverse)] (2P wide) and the layer
/// above, and δx, receive the sum of both directions' δ. Variable lengths: row b has `lengths[b]` real steps; the
/// forward direction stops after its last one, the reverse direction starts at it, padded outputs are zero and their
/// δ is ignored, and each row's final state is the one after its own last real step (PyTorch's packed sequences).
///
/// The forward pass keeps, per direction, step and row, the four activated gates, S_t and h_t (and m_t with a
/// projection; the normalized x̂ of both products and of S_t and their 1/σ with layer normalization): the
/// derivatives are all written in terms of activation outputs, so backward needs no pre-activation.
///
/// Speed-relevant layout: rows are kept *packed*: the rows of a batch are sorted by length (longest first, inside
/// the stash only), so the rows still running at step t are a prefix of B_t rows, and the steps are stored one after
/// another (N = Σ B_t = the number of real tokens). The input projection X·W_ihᵀ is one product over all N rows
/// before the time loop, and δX, δW_ih, δW_hh are single products over all N rows after the backward loop; only
/// h_{t-1}·W_hhᵀ and δZ_t·W_hh (and the projection) are per step, with B_t rows. Padding costs nothing. Buffers live
/// in an `LSTMStash` that is reused across calls.
///
/// `LSTM` itself holds only sizes and where its tensors live in a `ParameterLayout`; the numbers are in a
/// `ParameterBuffer`, so Float and Double runs of the same model share one description.
public struct LSTM: Sendable, Hashable {
    /// Where one direction of one layer keeps its tensors, with PyTorch's names and shapes.
    public struct Layer: Sendable, Hashable {
        /// The width of this direction's input: the LSTM's `inputSize` for layer 0, D·P for the layers above.
        public let inputSize: Int
        /// `weight_ih_l{k}` (4H, inputSize): the input weights of gates i, f, g, o, stacked in that order.
        public let weightIH: ParameterSpec   // (4H, inputSize)
        /// `weight_hh_l{k}` (4H, P): the recurrent weights of gates i, f, g, o; P = H without a projection.
        public let weightHH: ParameterSpec   // (4H, P)
        /// `bias_ih_l{k}` (4H): the input-side bias of gates i, f, g, o.
        public let biasIH: ParameterSpec     // (4H)
        /// `bias_hh_l{k}` (4H): the recurrent-side bias of gates i, f, g, o, added to `biasIH`.
        public let biasHH: ParameterSpec     // (4H)
        /// The element-wise settings of this layer: activations, cell clip, peepholes and layer normalization.
        public let activations: LSTMActivations
        /// `weight_peephole_l{k}` (3, H): p_i, p_f, p_o, when `activations.peepholes` (not a PyTorch tensor).
        public let peephole: ParameterSpec?
        /// `weight_hr_l{k}` (P, H), with a projection.
        public let weightHR: ParameterSpec?
        /// `layer_norm_gates_l{k}` (4, 4H): γ_x, β_x, γ_h, β_h, with layer normalization (not a PyTorch tensor).
        public let layerNormGates: ParameterSpec?
        /// `layer_norm_cell_l{k}` (2, H): γ_c, β_c, with layer normalization.
        public let layerNormCell: ParameterSpec?
        /// The reverse direction of a bidirectional layer (`_reverse` tensors).
        public let reverse: Bool
    }

    /// I: the number of features per step that the first layer reads.
    public let inputSize: Int
    /// H: the size of the cell state S_t and of each gate.
    public let hiddenSize: Int
    /// P: the size of h_t with a projection (`proj_size`); 0 without.
    public let projectionSize: Int
    /// Whether every layer also runs a reverse direction (PyTorch's `bidirectional=True`).
    public let bidirectional: Bool
    /// Every direction of every layer, in PyTorch's order: layer k's forward direction at 2k, its reverse at 2k+1
    /// when bidirectional (the index of the layer's (h, c) in `LSTMState` too).
    public let layers: [Layer]
    /// Dropout on the outputs of every layer but the last, during training (PyTorch's `dropout`): each value is
    /// kept with probability 1 − p and scaled by 1/(1 − p), or zeroed; the mask is drawn from the seed given to
    /// `forward` (no seed: inference, no dropout). Backward multiplies by the same mask.
    public let dropout: Double
    /// Variational recurrent dropout (Gal & Ghahramani 2016): one mask per layer, direction and sequence, m (B, P)
    /// with values 0 or 1/(1 − p), drawn once per `forward` with a seed and applied to h_{t-1} in the recurrent
    /// product at every step: Z_t = W_ih·x_t + b_ih + W_hh·(h_{t-1} ⊙ m) + b_hh. Backward: δh_{t-1} = (W_hhᵀ·δZ_t) ⊙ m
    /// and δW_hh += δZ_t·(h_{t-1} ⊙ m)ᵀ. Off without a seed.
    public let recurrentDropout: Double
    /// Memory-lean BPTT: 0 keeps everything backward needs (the full stash); k > 0 keeps only the (h, c) of every
    /// layer at every k-th step and recomputes the rest during backward, window by window (see `LSTMPasses.swift`),
    /// with bitwise the same gradients. k ≈ √T minimises memory (about 2√T steps' worth instead of T).
    public private(set) var checkpointInterval: Int
    /// Number of layers (each with `directions` directions).
    public var layerCount: Int { layers.count / directions }
    /// 1, or 2 when bidirectional.
    public var directions: Int { bidirectional ? 2 : 1 }
    /// P if there is a projection, else H: the width of h_t of one direction.
    public var outputSize: Int { projectionSize > 0 ? projectionSize : hiddenSize }
    /// The width of every layer's output (and of `forward`'s output): directions · outputSize.
    public var outputWidth: Int { directions * outputSize }
    /// The first state index (`LSTMState` layer) and the count: L · directions entries.
    public var stateCount: Int { layers.count }

    /// Everything about an LSTM in one value, validated when the LSTM is built (`LSTM(_:layout:prefix:)`); one
    /// activation entry when every layer has the same.
    public var configuration: LSTMConfiguration {
        let perLayer = stride(from: 0, to: layers.count, by: directions).map { layers[$0].activations }
        return LSTMConfiguration(inputSize: inputSize, hiddenSize: hiddenSize, layers: layerCount,
                                 activations: Set(perLayer).count == 1 ? [perLayer[0]] : perLayer,
                                 dropout: dropout, recurrentDropout: recurrentDropout, bidirectional: bidirectional,
                                 projectionSize: projectionSize, checkpointInterval: checkpointInterval)
    }

    /// The same LSTM (same tensors, same layout) with another `checkpointInterval`: memory-lean training of a model
    /// that was built or loaded without it.
    public func withCheckpointInterval(_ k: Int) throws(LSTMKitError) -> LSTM {
        try Self.validate(checkpointInterval: k, bidirectional: bidirectional)
        var copy = self
        copy.checkpointInterval = k
        return copy
    }

    static func validate(checkpointInterval k: Int, bidirectional: Bool) throws(LSTMKitError) {
        guard k >= 0 else {
            throw .invalidConfiguration("the checkpoint interval must be 0 (keep every step) or a number of steps, got \(k)")
        }
        guard k == 0 || !bidirectional else {
            throw .invalidConfiguration("memory-lean BPTT (checkpoint interval \(k)) needs a unidirectional LSTM: a bidirectional layer's reverse direction starts at the end of the sequence")
        }
    }

    /// One past the last scalar of this LSTM's tensors in a parameter buffer (checked by every forward and backward,
    /// so kept rather than recomputed).
    let parameterEnd: Int

    /// Builds the LSTM `configuration` describes, adding its tensors to `layout`; an invalid combination throws
    /// with a message naming it.
    public init(_ configuration: LSTMConfiguration, layout: inout ParameterLayout, prefix: String = "") throws(LSTMKitError) {
        try self.init(inputSize: configuration.inputSize, hiddenSize: configuration.hiddenSize,
                      layers: configuration.layers, activations: configuration.activations,
                      dropout: configuration.dropout, recurrentDropout: configuration.recurrentDropout,
                      bidirectional: configuration.bidirectional, projectionSize: configuration.projectionSize,
                      checkpointInterval: configuration.checkpointInterval, layout: &layout, prefix: prefix)
    }

    /// Adds an L-layer LSTM's tensors to `layout` as `prefix + "weight_ih_l0"`, … (PyTorch's order: per layer and
    /// direction weight_ih, weight_hh, bias_ih, bias_hh, weight_hr).
    ///
    /// `activations`: one entry for every layer, or a single entry used by all layers.
    /// `projectionSize`: P of LSTMP (`proj_size`), 0 < P < H; 0 for none.
    public init(
        inputSize: Int, hiddenSize: Int, layers: Int = 1,
        activations: [LSTMActivations] = [.standard], dropout: Double = 0, recurrentDropout: Double = 0,
        bidirectional: Bool = false, projectionSize: Int = 0, checkpointInterval: Int = 0,
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
        guard projectionSize >= 0 && projectionSize < hiddenSize else {
            throw .invalidConfiguration("the projection size must be between 1 and hidden size − 1 = \(hiddenSize - 1) (or 0 for none), got \(projectionSize)")
        }
        try Self.validate(checkpointInterval: checkpointInterval, bidirectional: bidirectional)
        self.checkpointInterval = checkpointInterval
        self.dropout = dropout
        self.recurrentDropout = recurrentDropout
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.projectionSize = projectionSize
        self.bidirectional = bidirectional
        let H = hiddenSize, P = projectionSize > 0 ? projectionSize : hiddenSize, D = bidirectional ? 2 : 1
        var built: [Layer] = []
        for l in 0..<layers {
            let input = l == 0 ? inputSize : D * P
            let a = activations.count == 1 ? activations[0] : activations[l]
            for d in 0..<D {
                let s = "_l\(l)" + (d == 1 ? "_reverse" : "")
                built.append(Layer(
                    inputSize: input,
                    weightIH: layout.add(prefix + "weight_ih" + s, shape: [4 * H, input]),
                    weightHH: layout.add(prefix + "weight_hh" + s, shape: [4 * H, P]),
                    biasIH: layout.add(prefix + "bias_ih" + s, shape: [4 * H]),
                    biasHH: layout.add(prefix + "bias_hh" + s, shape: [4 * H]),
                    activations: a,
                    peephole: a.peepholes ? layout.add(prefix + "weight_peephole" + s, shape: [3, H]) : nil,
                    weightHR: projectionSize > 0 ? layout.add(prefix + "weight_hr" + s, shape: [P, H]) : nil,
                    layerNormGates: a.layerNorm ? layout.add(prefix + "layer_norm_gates" + s, shape: [4, 4 * H]) : nil,
                    layerNormCell: a.layerNorm ? layout.add(prefix + "layer_norm_cell" + s, shape: [2, H]) : nil,
                    reverse: d == 1))
            }
        }
        self.layers = built
        parameterEnd = layout.count
    }

    /// The tensors of one direction of one layer, for `initialize`, the state_dict and the optimizers.
    var tensors: [[ParameterSpec]] {
        layers.map {
            [$0.weightIH, $0.weightHH, $0.biasIH, $0.biasHH] + [$0.weightHR, $0.peephole, $0.layerNormGates, $0.layerNormCell].compactMap { $0 }
        }
    }
}

/// One value that describes an LSTM: sizes, directions, projection, per-layer element-wise settings (activations,
/// cell clipping, peepholes) and dropout. `LSTM(_:layout:prefix:)` validates it.
public struct LSTMConfiguration: Sendable, Hashable, Codable {
    /// I: the number of features per step that the first layer reads (at least 1 when the LSTM is built).
    public var inputSize: Int
    /// H: the size of the cell state and of each gate (at least 1).
    public var hiddenSize: Int
    /// L: the number of stacked layers (at least 1).
    public var layers: Int
    /// One entry for every layer, or a single entry used by all layers.
    public var activations: [LSTMActivations]
    /// Dropout on the outputs of every layer but the last (`LSTM.dropout`); needs 2 or more layers.
    public var dropout: Double
    /// Variational recurrent dropout on h_{t-1} (`LSTM.recurrentDropout`).
    public var recurrentDropout: Double
    /// Two directions per layer (PyTorch's `bidirectional=True`).
    public var bidirectional: Bool
    /// P of LSTMP (PyTorch's `proj_size`), 0 for none.
    public var projectionSize: Int
    /// Memory-lean BPTT: keep every k-th state and recompute the rest (`LSTM.checkpointInterval`); 0 for none.
    public var checkpointInterval: Int

    /// `inputSize`: may stay 0 in a `SequenceModelConfiguration`, which sets it from the model's input.
    public init(inputSize: Int = 0, hiddenSize: Int, layers: Int = 1, activations: [LSTMActivations] = [.standard],
                dropout: Double = 0, recurrentDropout: Double = 0, bidirectional: Bool = false,
                projectionSize: Int = 0, checkpointInterval: Int = 0) {
        self.checkpointInterval = checkpointInterval
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.activations = activations
        self.dropout = dropout
        self.recurrentDropout = recurrentDropout
        self.bidirectional = bidirectional
        self.projectionSize = projectionSize
    }

    enum CodingKeys: String, CodingKey {
        case inputSize, hiddenSize, layers, activations, dropout, recurrentDropout, bidirectional, projectionSize
        case checkpointInterval
    }

    /// Decodes a configuration; missing `dropout`, `recurrentDropout`, `projectionSize` and `checkpointInterval`
    /// read as 0 and a missing `bidirectional` as false.
    /// - Parameter decoder: The decoder to read from.
    /// - Throws: A `DecodingError` when `inputSize`, `hiddenSize`, `layers` or `activations` is missing or mistyped.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inputSize = try c.decode(Int.self, forKey: .inputSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        layers = try c.decode(Int.self, forKey: .layers)
        activations = try c.decode([LSTMActivations].self, forKey: .activations)
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? 0
        recurrentDropout = try c.decodeIfPresent(Double.self, forKey: .recurrentDropout) ?? 0
        bidirectional = try c.decodeIfPresent(Bool.self, forKey: .bidirectional) ?? false
        projectionSize = try c.decodeIfPresent(Int.self, forKey: .projectionSize) ?? 0
        checkpointInterval = try c.decodeIfPresent(Int.self, forKey: .checkpointInterval) ?? 0
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
    /// The activation of the gates i, f and o.
    public var gate: GateActivation
    /// The activation of the candidate g and of the cell output, cellAct(S_t).
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
    /// Layer normalization (Ba, Kiros & Hinton 2016) of the two products and of the cell, each over its own width
    /// (`LayerNorm`), with gains γ (starting at 1) and shifts β (starting at 0):
    /// ```
    /// Z_t = LN(W_ih·x_t; γ_x, β_x) + LN(W_hh·h_{t-1}; γ_h, β_h) + b_ih + b_hh      (over 4H)
    /// S_t = f ⊙ S_{t-1} + i ⊙ g        m_t = o ⊙ cellAct(LN(S_t; γ_c, β_c))       (over H)
    /// ```
    /// Tensors `layer_norm_gates_l{k}` (4, 4H) = [γ_x, β_x, γ_h, β_h] and `layer_norm_cell_l{k}` (2, H) = [γ_c, β_c].
    public var layerNorm: Bool

    /// Settings for one layer; the defaults are the standard LSTM: σ gates, tanh cell, no cell clip, no peepholes
    /// and no layer normalization.
    ///
    /// Each argument sets the property of the same name; `cellClip` is checked (positive and finite) when the LSTM
    /// is built.
    public init(gate: GateActivation = .sigmoid, cell: CellActivation = .tanh, cellClip: Double? = nil,
                peepholes: Bool = false, layerNorm: Bool = false) {
        self.gate = gate
        self.cell = cell
        self.cellClip = cellClip
        self.peepholes = peepholes
        self.layerNorm = layerNorm
    }

    enum CodingKeys: String, CodingKey { case gate, cell, cellClip, peepholes, layerNorm }

    /// Decodes the settings; a missing `cellClip` reads as nil, missing `peepholes` and `layerNorm` as false.
    /// - Parameter decoder: The decoder to read from.
    /// - Throws: A `DecodingError` when `gate` or `cell` is missing or not a known activation.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        gate = try c.decode(GateActivation.self, forKey: .gate)
        cell = try c.decode(CellActivation.self, forKey: .cell)
        cellClip = try c.decodeIfPresent(Double.self, forKey: .cellClip)
        peepholes = try c.decodeIfPresent(Bool.self, forKey: .peepholes) ?? false
        layerNorm = try c.decodeIfPresent(Bool.self, forKey: .layerNorm) ?? false
    }

    /// σ gates, tanh cell: the standard LSTM.
    public static let standard = LSTMActivations()
    /// Identity everywhere: the seed derivation's LSTM that "ignores the non-linearities".
    public static let linear = LSTMActivations(gate: .identity, cell: .identity)
}

/// Hidden and cell state of every layer and direction: `hidden` is (L·D, B, P) and `cell` (L·D, B, H), as PyTorch's
/// (h_n, c_n); P = H without a projection.
public struct LSTMState<Scalar: LSTMScalar>: Sendable, Equatable {
    /// h of every layer and direction, (L·D, B, P), row-major.
    public var hidden: [Scalar]   // (L·D, B, P)
    /// S of every layer and direction, (L·D, B, H), row-major.
    public var cell: [Scalar]     // (L·D, B, H)
    /// L·D entries: layer k's forward direction at index k·D, its reverse direction at k·D + 1.
    public let layers: Int
    /// B: the number of sequences (rows).
    public let batch: Int
    /// P, the width of h.
    public let hiddenSize: Int
    /// H, the width of S.
    public let cellSize: Int

    /// A zero state.
    /// - Parameters:
    ///   - layers: L·D, the number of layer directions.
    ///   - batch: B, the number of rows.
    ///   - hiddenSize: P, the width of h.
    ///   - cellSize: H, the width of S; nil means `hiddenSize` (no projection).
    public init(layers: Int, batch: Int, hiddenSize: Int, cellSize: Int? = nil) {
        self.layers = layers
        self.batch = batch
        self.hiddenSize = hiddenSize
        self.cellSize = cellSize ?? hiddenSize
        hidden = [Scalar](repeating: 0, count: layers * batch * hiddenSize)
        cell = [Scalar](repeating: 0, count: layers * batch * self.cellSize)
    }

    /// A state holding these values: `hidden` (layers, batch, hiddenSize) and `cell` (layers, batch, cellSize), with
    /// a nil `cellSize` meaning `hiddenSize`.
    ///
    /// A count that does not match the sizes stops the program with a message.
    public init(hidden: [Scalar], cell: [Scalar], layers: Int, batch: Int, hiddenSize: Int, cellSize: Int? = nil) {
        let H = cellSize ?? hiddenSize
        require(hidden.count == layers * batch * hiddenSize && cell.count == layers * batch * H,
                     "LSTMState: hidden must hold layers·batch·hidden = \(layers * batch * hiddenSize) values and cell layers·batch·cell = \(layers * batch * H)")
        self.hidden = hidden
        self.cell = cell
        self.layers = layers
        self.batch = batch
        self.hiddenSize = hiddenSize
        self.cellSize = H
    }

    /// A zero state shaped for `lstm` and `batch`.
    public init(for lstm: LSTM, batch: Int) {
        self.init(layers: lstm.stateCount, batch: batch, hiddenSize: lstm.outputSize, cellSize: lstm.hiddenSize)
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
    /// All hidden states of the top layer, (T, B, D·P) or (B, T, D·P) as the input was laid out; zero at padding.
    public var output: [Scalar]
    /// (h, c) of every layer and direction after each row's last real step (for the reverse direction: after t = 0).
    public var final: LSTMState<Scalar>
}

/// What `LSTM.backward` returns; parameter gradients are added into the caller's buffer.
public struct LSTMInputGradients<Scalar: LSTMScalar>: Sendable {
    /// δx, in the input's layout; zero at padding.
    public var input: [Scalar]
    /// δh0 and δc0 of every layer and direction.
    public var initial: LSTMState<Scalar>
}

/// Which rows of a batch run at which step, in the packed order the stash computes in.
///
/// Rows are sorted by length, longest first (ties in batch order); `order[r]` is the batch row at sorted position r.
/// At step t the first `batchSizes[t]` sorted rows are real; step t's rows are stored from packed row `offsets[t]`.
/// With no lengths (or all equal to T) the order is the identity, B_t = B and offsets[t] = t·B: the plain (T, B, ·)
/// layout.
struct SequenceSchedule: Sendable, Equatable {
    var steps = 0
    var batch = 0
    /// The windows the passes run over: the whole sequence, or with memory-lean BPTT runs of `checkpointInterval`
    /// steps (none when T = 0).
    var windows: [StepWindow] = []
    var order: [Int] = []
    var lengths: [Int] = []         // (B) in sorted order
    var batchSizes: [Int] = []      // (T)
    var offsets: [Int] = [0]        // (T + 1), offsets[T] = N
    var uniform = true
    var rows: Int { offsets[steps] }
    /// The whole sequence as one window.
    var whole: StepWindow { StepWindow(first: 0, end: steps, rowBase: 0, rows: rows) }
    /// The most rows any window holds: the size of the stash's per-window buffers.
    var windowRows: Int { windows.map(\.rows).max() ?? 0 }

    init() {}

    /// - Parameter window: k > 0 cuts the steps into windows of k (memory-lean BPTT); 0 keeps one window.
    init(steps T: Int, batch B: Int, lengths: [Int]?, window k: Int = 0) {
        steps = T
        batch = B
        if let lengths, lengths.contains(where: { $0 != T }) {
            order = (0..<B).sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
            self.lengths = order.map { lengths[$0] }
            uniform = false
        } else {
            order = Array(0..<B)
            self.lengths = [Int](repeating: T, count: B)
        }
        batchSizes = (0..<T).map { t in self.lengths.reduce(0) { $0 + ($1 > t ? 1 : 0) } }
        offsets = [0]
        for t in 0..<T { offsets.append(offsets[t] + batchSizes[t]) }
        let length = k > 0 && k < T ? k : T
        windows = stride(from: 0, to: T, by: max(length, 1)).map { first in
            let end = min(T, first + length)
            return StepWindow(first: first, end: end, rowBase: offsets[first], rows: offsets[end] - offsets[first])
        }
    }

    /// A padded (T, B, F) or (B, T, F) array for a pass's output: zero at the padding, the real steps left for
    /// `unpack` to write (NaN until then in debug builds) — no zero fill of the whole array (1.9 % of `packed`
    /// inference).
    func paddedOutput<S: LSTMScalar>(width F: Int, layout: SequenceLayout) -> [S] {
        var output = [S].unfilled(steps * batch * F)
        if uniform || output.isEmpty { return output }
        output.withUnsafeMutableBufferPointer { out in
            for r in 0..<batch {
                let b = order[r]
                for t in lengths[r]..<steps {
                    let padded = layout == .timeMajor ? t * batch + b : b * steps + t
                    (out.baseAddress! + padded * F).update(repeating: 0, count: F)
                }
            }
        }
        return output
    }

    /// `count` values from `source` to `destination`, in `threads` blocks over the worker pool from 256 KB on (a
    /// training step copies its output and δ of it, 13 MB each for `bidir`; one core copies at about half the rate
    /// two do; small's input and output, 0.4 and 0.8 MB, were 2.3 % of its step).
    static func copy<S>(_ source: UnsafePointer<S>, to destination: UnsafeMutablePointer<S>, count: Int, threads: Int) {
        let parts = count * MemoryLayout<S>.size >= 1 << 18 ? max(1, threads) : 1
        guard parts > 1 else { return destination.update(from: source, count: count) }
        WorkerPool.blocks(count, parts: parts, granule: 16) { from, to in
            (destination + from).update(from: source + from, count: to - from)
        }
    }

    /// The window's steps of padded (T, B, F) or (B, T, F) → its packed rows (window.rows, F).
    func pack<S>(_ source: UnsafePointer<S>, _ destination: UnsafeMutablePointer<S>, width F: Int, layout: SequenceLayout,
                 window: StepWindow, threads: Int = 1) {
        if uniform && layout == .timeMajor {
            Self.copy(source + window.rowBase * F, to: destination, count: window.rows * F, threads: threads)
            return
        }
        for t in window.first..<window.end {
            for r in 0..<batchSizes[t] {
                let b = order[r]
                let padded = layout == .timeMajor ? t * batch + b : b * steps + t
                (destination + (offsets[t] - window.rowBase + r) * F).update(from: source + padded * F, count: F)
            }
        }
    }

    /// The window's packed rows → its steps of padded (T, B, F) or (B, T, F); padding is left as it is (zero in the
    /// arrays the passes return).
    func unpack<S>(_ source: UnsafePointer<S>, _ destination: UnsafeMutablePointer<S>, width F: Int,
                   layout: SequenceLayout, window: StepWindow, threads: Int = 1) {
        if uniform && layout == .timeMajor {
            Self.copy(source, to: destination + window.rowBase * F, count: window.rows * F, threads: threads)
            return
        }
        for t in window.first..<window.end {
            for r in 0..<batchSizes[t] {
                let b = order[r]
                let padded = layout == .timeMajor ? t * batch + b : b * steps + t
                (destination + padded * F).update(from: source + (offsets[t] - window.rowBase + r) * F, count: F)
            }
        }
    }

    /// A state (or its gradient) in batch order into sorted rows, (units, B, P) and (units, B, H); zeros without one.
    func sortState<S: LSTMScalar>(_ state: LSTMState<S>?, hidden: UnsafeMutablePointer<S>, cell: UnsafeMutablePointer<S>,
                                  units: Int, hiddenWidth P: Int, cellWidth H: Int) {
        guard let state else {
            hidden.update(repeating: 0, count: units * batch * P)
            cell.update(repeating: 0, count: units * batch * H)
            return
        }
        state.hidden.withUnsafeBufferPointer { sortRows($0.baseAddress!, hidden, units: units, width: P, toSorted: true) }
        state.cell.withUnsafeBufferPointer { sortRows($0.baseAddress!, cell, units: units, width: H, toSorted: true) }
    }

    /// (units, B, F) in batch order ↔ sorted order.
    func sortRows<S>(_ source: UnsafePointer<S>, _ destination: UnsafeMutablePointer<S>, units: Int, width F: Int,
                     toSorted: Bool) {
        for u in 0..<units {
            for r in 0..<batch {
                let (from, to) = toSorted ? (order[r], r) : (r, order[r])
                (destination + (u * batch + to) * F).update(from: source + (u * batch + from) * F, count: F)
            }
        }
    }
}

/// A run of steps [first, end) whose packed rows rowBase..<rowBase + rows sit in the stash's buffers from row 0.
struct StepWindow: Sendable, Equatable {
    var first: Int
    var end: Int
    var rowBase: Int
    var rows: Int
}

/// What the forward pass keeps for the backward pass, plus backward scratch; reused across calls so that a model
/// run again with the same shapes allocates nothing but its returned arrays. Rows are in the packed order of
/// `SequenceSchedule` (N rows; N = T·B without lengths); u = l·D + d numbers the layers' directions.
public final class LSTMStash<Scalar: LSTMScalar> {
    /// T: the number of steps of the last `forward` that used this stash (0 before any).
    public var steps: Int { schedule.steps }
    /// B: the number of rows of the last `forward` that used this stash (0 before any).
    public var batch: Int { schedule.batch }
    /// Threads for the matrix products (any count gives bitwise the same results).
    public var threads: Int
    var schedule = SequenceSchedule()
    var sequenceLayout = SequenceLayout.timeMajor
    /// The window the buffers below hold (`SequenceSchedule.windows`), and its index.
    var window = StepWindow(first: 0, end: 0, rowBase: 0, rows: 0)
    var windowIndex = 0
    /// Memory-lean BPTT: the buffers hold one window, and `checkpoints` every window's starting state.
    var checkpointing = false
    let checkpoints = AlignedBuffer<Scalar>()    // (windows, [L·D·B·P h | L·D·B·H c]) sorted rows, when checkpointing
    let input = AlignedBuffer<Scalar>()          // (N, I)        x, packed
    let initialHidden = AlignedBuffer<Scalar>()  // (L·D, B, P)   h0, sorted rows
    let initialCell = AlignedBuffer<Scalar>()    // (L·D, B, H)   c0, sorted rows
    // Per window (Nw rows: N, or with memory-lean BPTT the rows of one window):
    let gates = AlignedBuffer<Scalar>()          // (L·D, N, 4H)  activated i, f, g, o
    let cells = AlignedBuffer<Scalar>()          // (L·D, N, H)   S_t
    let hiddens = AlignedBuffer<Scalar>()        // (L·D, N, P)   h_t
    let cellOutputs = AlignedBuffer<Scalar>()    // (L·D, N, H)   m_t = o ⊙ cellAct(S_t), with a projection
    let layerOutputs = AlignedBuffer<Scalar>()   // (L, N, 2P)    [h_t(forward), h_t(reverse)], bidirectional
    let previousHidden = AlignedBuffer<Scalar>() // (D, B, P)     h of the step before, assembled (see previousState)
    let previousCell = AlignedBuffer<Scalar>()   // (D, B, H)     S of the step before, assembled
    let dGates = AlignedBuffer<Scalar>()         // (D, Nw, 4H)   δZ of each direction of the layer being differentiated
    let dHiddenCarry = AlignedBuffer<Scalar>()   // (L·D, B, P)   δh carried from step to step (and window to window)
    let dCellCarry = AlignedBuffer<Scalar>()     // (L·D, B, H)
    let biasSums = AlignedBuffer<Scalar>()       // (L·D, 4H)     Σ δZ over all rows, per direction
    let dCellOutput = AlignedBuffer<Scalar>()    // (D, B, H)     δm_t, with a projection or layer normalization
    let dHiddens = AlignedBuffer<Scalar>()       // (D, Nw, P)    δh_t of every step, with a projection (for δW_hr)
    let dAbove = AlignedBuffer<Scalar>()         // (N, max(I, D·P)) δ of a layer's output
    let dBelow = AlignedBuffer<Scalar>()         // (N, max(I, D·P)) δ of a layer's input
    let dAboveSplit = AlignedBuffer<Scalar>()    // (2, N, P)     δ of each direction's output, bidirectional
    let biasSum = AlignedBuffer<Scalar>()        // (D, 4H)       b_ih + b_hh of each direction
    let finalHidden = AlignedBuffer<Scalar>()    // (L·D, B, P)   `infer`: each row's h after its last step
    var dropoutActive = false
    let dropoutMasks = AlignedBuffer<Scalar>()   // (L−1, N, D·P) 0 or 1/(1−p), when dropout is active
    let droppedHiddens = AlignedBuffer<Scalar>() // (L−1, Nw, D·P) layer output ⊙ mask: the input of the layer above
    var recurrentDropoutActive = false
    let recurrentMasks = AlignedBuffer<Scalar>()   // (L·D, B, P) 0 or 1/(1−p), sorted rows, with recurrent dropout
    let recurrentInput = AlignedBuffer<Scalar>()   // (D, max(Nw, B), P) h_{t-1} ⊙ m per step, or all rows for δW_hh
    /// Every direction's weights as the products read them, packed once per call (and so once for all windows):
    /// per direction [W_ihᵀ, W_hhᵀ, W_hrᵀ] for forward and [W_hh, W_hr] for backward (`LSTM.WeightSlot`).
    var weights: [[GEMM.PreparedOperand<Scalar>?]] = []
    var packedWeights: [[AlignedBuffer<Scalar>]] = []
    // Layer normalization (see LSTMActivations.layerNorm):
    let normalizedInput = AlignedBuffer<Scalar>()     // (L·D, N, 4H) x̂ of W_ih·x_t
    let normalizedRecurrent = AlignedBuffer<Scalar>() // (L·D, N, 4H) x̂ of W_hh·h_{t-1}
    let normalizedCell = AlignedBuffer<Scalar>()      // (L·D, N, H)  Ŝ_t
    let inverseDeviations = AlignedBuffer<Scalar>()   // (L·D, 3, N)  r of the three normalizations
    let recurrentGates = AlignedBuffer<Scalar>()      // (D, B, 4H)   W_hh·h_{t-1} of one step
    let normalizedScratch = AlignedBuffer<Scalar>()   // (D, B, H)    ĉ (forward) or δ through the cell LN (backward)
    let dRecurrent = AlignedBuffer<Scalar>()          // (D, Nw, 4H)  δ(W_hh·h_{t-1}) of every step

    /// An empty stash; its buffers are allocated by the first `forward` and reused by later calls.
    /// - Parameter threads: Threads for the matrix products; values below 1 count as 1.
    public init(threads: Int = 1) {
        self.threads = max(1, threads)
    }

    /// How work is shared between the threads by how fast each ran its share last time (`AdaptiveSplit`): the
    /// row-split windows' rows (a small unidirectional LSTM) forward, backward and in inference, and the rows of
    /// δW (4H) in a unidirectional layer's weight-gradient pair.
    let rowSplits = (forward: AdaptiveSplit(), backward: AdaptiveSplit(), inference: AdaptiveSplit(),
                     weights: AdaptiveSplit())

    /// Bytes the stash holds now (every buffer's capacity): what forward keeps for backward plus its scratch.
    public var allocatedBytes: Int {
        let buffers = [input, initialHidden, initialCell, checkpoints, gates, cells, hiddens, cellOutputs, layerOutputs,
                       previousHidden, previousCell, dGates, dHiddenCarry, dCellCarry, biasSums, dCellOutput, dHiddens,
                       dAbove, dBelow, dAboveSplit, biasSum, dropoutMasks, droppedHiddens, recurrentMasks,
                       recurrentInput, normalizedInput, finalHidden,
                       normalizedRecurrent, normalizedCell, inverseDeviations, recurrentGates, normalizedScratch,
                       dRecurrent] + packedWeights.flatMap { $0 }
        return buffers.reduce(0) { $0 + $1.capacity } * MemoryLayout<Scalar>.stride
    }

    func prepare(_ lstm: LSTM, schedule: SequenceSchedule) {
        self.schedule = schedule
        let U = lstm.stateCount, L = lstm.layerCount, D = lstm.directions
        let H = lstm.hiddenSize, P = lstm.outputSize, I = lstm.inputSize
        let B = schedule.batch
        checkpointing = schedule.windows.count > 1
        if checkpointing { checkpoints.reserve(schedule.windows.count * U * B * (P + H)) }
        input.reserve(schedule.rows * I)
        dHiddenCarry.reserve(U * B * P)
        dCellCarry.reserve(U * B * H)
        biasSums.reserve(U * 4 * H)
        if lstm.dropout > 0 && L > 1 { droppedHiddens.reserve((L - 1) * schedule.windowRows * D * P) }
        let N = schedule.windowRows
        initialHidden.reserve(U * B * P)
        initialCell.reserve(U * B * H)
        gates.reserve(U * N * 4 * H)
        cells.reserve(U * N * H)
        hiddens.reserve(U * N * P)
        if lstm.projectionSize > 0 {
            cellOutputs.reserve(U * N * H)
            dHiddens.reserve(D * N * P)
        }
        let layerNorm = lstm.layers.contains { $0.layerNormGates != nil }
        if lstm.projectionSize > 0 || layerNorm { dCellOutput.reserve(D * B * H) }
        if layerNorm {
            normalizedInput.reserve(U * N * 4 * H)
            normalizedRecurrent.reserve(U * N * 4 * H)
            normalizedCell.reserve(U * N * H)
            inverseDeviations.reserve(U * 3 * N)
            recurrentGates.reserve(D * B * 4 * H)
            normalizedScratch.reserve(D * B * H)
            dRecurrent.reserve(D * N * 4 * H)
        }
        if D == 2 {
            layerOutputs.reserve(L * N * 2 * P)
            dAboveSplit.reserve(2 * N * P)
        }
        // Per-step scratch, one part per direction (the two directions of a layer may run at once).
        previousHidden.reserve(D * B * P)
        previousCell.reserve(D * B * H)
        if !schedule.uniform || lstm.recurrentDropout > 0 {
            // h_{t-1} of every row, assembled for δW_hh (the plain layout reads it in place); forward's masked h.
            recurrentInput.reserve(D * max(N, B) * P)
        }
        dGates.reserve(D * N * 4 * H)
        dAbove.reserve(N * max(I, D * P))
        dBelow.reserve(N * max(I, D * P))
        biasSum.reserve(D * 4 * H)
    }
}

