/// A character-level language model: Embedding → L-layer LSTM → Linear → softmax.
///
/// ```
/// x_t = E[c_t]                      (B, embedding)
/// h_t = LSTM(x_t, h_{t-1}, S_{t-1})  (B, H), top layer
/// logits_t = h_t·W_headᵀ + b_head    (B, V)
/// loss = mean_t,b CE(logits_t, c_{t+1})
/// ```
/// Backward runs the same chain in reverse: δlogits → Linear.backward → LSTM.backward (BPTT) → Embedding.backward.
/// Tensor names are those of a PyTorch module with attributes `embedding`, `lstm` (nn.LSTM) and `head`
/// (nn.Linear): `embedding.weight`, `lstm.weight_ih_l0`, …, `head.weight`, `head.bias`.
public struct CharacterModel: Sendable {
    public struct Configuration: Sendable, Hashable, Codable {
        public var vocabularySize: Int
        public var embedding: Int
        public var hidden: Int
        public var layers: Int
        /// Cell clipping of every LSTM layer (see `LSTMActivations.cellClip`); nil: off. Checkpoints written before
        /// it existed read as nil.
        public var cellClip: Double?
        /// Dropout between the LSTM layers during training (see `LSTM.dropout`); nil or 0: none.
        public var dropout: Double?
        /// Variational recurrent dropout in every LSTM layer during training (see `LSTM.recurrentDropout`).
        public var recurrentDropout: Double?
        /// Peephole connections in every LSTM layer (see `LSTMActivations.peepholes`).
        public var peepholes: Bool?
        /// Layer normalization in every LSTM layer (see `LSTMActivations.layerNorm`).
        public var layerNorm: Bool?
        /// P of a projected LSTM (LSTMP, `proj_size`): h_t has P values and the head reads P; nil or 0: none.
        public var projection: Int?

        public init(vocabularySize: Int, embedding: Int, hidden: Int, layers: Int, cellClip: Double? = nil,
                    dropout: Double? = nil, recurrentDropout: Double? = nil, peepholes: Bool? = nil,
                    layerNorm: Bool? = nil, projection: Int? = nil) {
            self.recurrentDropout = recurrentDropout
            self.peepholes = peepholes
            self.layerNorm = layerNorm
            self.projection = projection
            self.vocabularySize = vocabularySize
            self.embedding = embedding
            self.hidden = hidden
            self.layers = layers
            self.cellClip = cellClip
            self.dropout = dropout
        }

        enum CodingKeys: String, CodingKey {
            case vocabularySize = "vocabulary_size", embedding, hidden, layers, cellClip = "cell_clip", dropout
            case recurrentDropout = "recurrent_dropout", peepholes, layerNorm = "layer_norm", projection
        }
    }

    public let configuration: Configuration
    public let layout: ParameterLayout
    public let embedding: Embedding
    public private(set) var lstm: LSTM
    public let head: Linear

    /// The same model (same tensors) trained with memory-lean BPTT (`LSTM.withCheckpointInterval`).
    public func withCheckpointInterval(_ k: Int) throws(LSTMKitError) -> CharacterModel {
        var copy = self
        copy.lstm = try lstm.withCheckpointInterval(k)
        return copy
    }

    public init(_ c: Configuration) throws(LSTMKitError) {
        configuration = c
        var layout = ParameterLayout()
        embedding = try Embedding(vocabularySize: c.vocabularySize, dimension: c.embedding, layout: &layout, prefix: "embedding.")
        lstm = try LSTM(inputSize: c.embedding, hiddenSize: c.hidden, layers: c.layers,
                        activations: [LSTMActivations(cellClip: c.cellClip, peepholes: c.peepholes ?? false,
                                                      layerNorm: c.layerNorm ?? false)],
                        dropout: c.dropout ?? 0, recurrentDropout: c.recurrentDropout ?? 0,
                        projectionSize: c.projection ?? 0, layout: &layout, prefix: "lstm.")
        head = try Linear(inputSize: lstm.outputSize, outputSize: c.vocabularySize, layout: &layout, prefix: "head.")
        self.layout = layout
    }

    /// PyTorch's defaults for each module, drawn in tensor order.
    public func initialize(_ parameters: inout ParameterBuffer<Float>, random: inout RandomSource) {
        embedding.initialize(&parameters, random: &random)
        lstm.initialize(&parameters, random: &random)
        head.initialize(&parameters, random: &random)
    }

    public func zeroState(batch: Int) -> LSTMState<Float> {
        LSTMState(for: lstm, batch: batch)
    }

    /// One truncated-BPTT window: forward from `state`, mean cross-entropy against `targets`, gradients *added* to
    /// `gradients`; `state` becomes the window's final state (a constant for the next window).
    ///
    /// - Parameters: inputs and targets are (T, B) token ids, time-major; `dropoutSeed` draws the dropout mask
    ///   (a model with dropout and no seed trains without it).
    public func trainWindow(inputs: [Int32], targets: [Int32], steps T: Int, batch B: Int,
                            state: inout LSTMState<Float>, parameters: ParameterBuffer<Float>,
                            gradients: inout ParameterBuffer<Float>, stash: LSTMStash<Float>,
                            dropoutSeed: UInt64? = nil) -> Double {
        let x = embedding.forward(inputs, parameters: parameters)                                  // (T, B, E)
        let out = lstm.forward(x, steps: T, batch: B, initial: state, parameters: parameters, stash: stash,
                               dropoutSeed: dropoutSeed)
        state = out.final
        let logits = head.forward(out.output, rows: T * B, parameters: parameters, threads: stash.threads)  // (T·B, V)
        let (loss, dLogits) = SoftmaxCrossEntropy.forwardBackward(logits: logits, targets: targets,
                                                                  classes: configuration.vocabularySize)
        let dh = head.backward(dOutput: dLogits, input: out.output, rows: T * B, parameters: parameters,
                               gradients: &gradients, threads: stash.threads)
        let dx = lstm.backward(dOutput: dh, parameters: parameters, stash: stash, gradients: &gradients).input
        embedding.backward(dOutput: dx, tokens: inputs, gradients: &gradients)
        return loss
    }

    /// Forward only: the summed cross-entropy over the window's targets and their count; `state` carries on.
    public func evaluateWindow(inputs: [Int32], targets: [Int32], steps T: Int, batch B: Int,
                               state: inout LSTMState<Float>, parameters: ParameterBuffer<Float>,
                               stash: LSTMStash<Float>) -> (sum: Double, count: Int) {
        let logits = self.logits(inputs, steps: T, batch: B, state: &state, parameters: parameters, stash: stash)
        return SoftmaxCrossEntropy.summedLoss(logits: logits, targets: targets, classes: configuration.vocabularySize)
    }

    /// Logits (T·B, V) for (T, B) inputs from `state`, which becomes the final state.
    public func logits(_ inputs: [Int32], steps T: Int, batch B: Int, state: inout LSTMState<Float>,
                       parameters: ParameterBuffer<Float>, stash: LSTMStash<Float>) -> [Float] {
        let x = embedding.forward(inputs, parameters: parameters)
        let out = lstm.forward(x, steps: T, batch: B, initial: state, parameters: parameters, stash: stash)
        state = out.final
        return head.forward(out.output, rows: T * B, parameters: parameters, threads: stash.threads)
    }

    /// Mean cross-entropy (nats) of `tokens` read as one stream from a zero state: each token predicts the next.
    /// Runs in chunks of `chunk` steps carrying the state, which gives the same numbers as one long pass.
    public func crossEntropy(of tokens: [Int32], parameters: ParameterBuffer<Float>, chunk: Int = 256,
                             threads: Int = 1) -> (mean: Double, count: Int) {
        guard tokens.count >= 2 else { return (0, 0) }
        var state = zeroState(batch: 1)
        let stash = LSTMStash<Float>(threads: threads)
        var sum = 0.0, count = 0
        var p = 0
        while p + 1 < tokens.count {
            let T = min(chunk, tokens.count - 1 - p)
            let r = evaluateWindow(inputs: Array(tokens[p..<(p + T)]), targets: Array(tokens[(p + 1)...(p + T)]),
                                   steps: T, batch: 1, state: &state, parameters: parameters, stash: stash)
            sum += r.sum
            count += r.count
            p += T
        }
        return (sum / Double(count), count)
    }
}
