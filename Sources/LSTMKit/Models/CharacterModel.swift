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
    /// The sizes and options of a `CharacterModel`; Codable with snake_case keys (the JSON of a checkpoint's `model`
    /// metadata). Options that are nil are off.
    public struct Configuration: Sendable, Hashable, Codable {
        /// V: the number of distinct characters (token ids 0..<V), the embedding's rows and the head's outputs.
        public var vocabularySize: Int
        /// E: the width of each character's embedding vector, and so the LSTM's input size.
        public var embedding: Int
        /// H: the LSTM's hidden size (the size of its cell state and gates).
        public var hidden: Int
        /// L: the number of stacked LSTM layers.
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

        /// A configuration; every argument sets the property of the same name, and the optional ones default to nil
        /// (off).
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

    /// The configuration the model was built from.
    public let configuration: Configuration
    /// Where every tensor lives in the model's parameter buffer: `embedding.weight`, `lstm.…`, `head.weight`,
    /// `head.bias`.
    public let layout: ParameterLayout
    /// The character embedding, `embedding.weight` (V, E).
    public let embedding: Embedding
    /// The unidirectional L-layer LSTM over the embeddings (`lstm.` tensors).
    public private(set) var lstm: LSTM
    /// The output layer from the LSTM's top-layer h (P, or H without a projection) to V logits (`head.` tensors).
    public let head: Linear

    /// The same model (same tensors) trained with memory-lean BPTT (`LSTM.withCheckpointInterval`).
    public func withCheckpointInterval(_ k: Int) throws(LSTMKitError) -> CharacterModel {
        var copy = self
        copy.lstm = try lstm.withCheckpointInterval(k)
        return copy
    }

    /// Builds the modules and their tensor layout; the numbers live in a separate `ParameterBuffer`.
    /// - Parameter c: The sizes and options.
    /// - Throws: `LSTMKitError.invalidConfiguration` when a size or option is out of range.
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

    /// A zero (h, c) shaped for the model's LSTM.
    /// - Parameter batch: B, the number of sequences.
    /// - Returns: A state with (L, B, P) hidden and (L, B, H) cell values, all zero.
    public func zeroState(batch: Int) -> LSTMState<Float> {
        LSTMState(for: lstm, batch: batch)
    }

    /// The same network as a `SequenceModel`: token input, every-step head, cross-entropy.
    public func sequenceConfiguration(checkpointInterval: Int = 0) -> SequenceModelConfiguration {
        var lstm = self.lstm.configuration
        lstm.checkpointInterval = checkpointInterval
        let V = configuration.vocabularySize
        return SequenceModelConfiguration(input: .tokens(vocabularySize: V, embedding: configuration.embedding),
                                          lstm: lstm, head: .everyStep(outputs: V), loss: .crossEntropy)
    }

    /// Mean cross-entropy (nats) of `tokens` read as one stream from a zero state: each token predicts the next.
    /// Runs in chunks of `chunk` steps carrying the state, which gives the same numbers as one long pass.
    public func crossEntropy(of tokens: [Int32], parameters: ParameterBuffer<Float>, chunk: Int = 256,
                             threads: Int = 1) throws(LSTMKitError) -> (mean: Double, count: Int) {
        guard tokens.count >= 2 else { return (0, 0) }
        let model = try SequenceModel(sequenceConfiguration(), parameters: parameters)
        model.threads = threads
        var state = zeroState(batch: 1)
        var sum = 0.0, count = 0
        var p = 0
        while p + 1 < tokens.count {
            let T = min(chunk, tokens.count - 1 - p)
            let r = try model.evaluate(SequenceBatch(tokens: Array(tokens[p..<(p + T)]), steps: T, batch: 1),
                                       targets: .classes(Array(tokens[(p + 1)...(p + T)])), initial: state)
            state = r.final
            sum += r.sum
            count += r.count
            p += T
        }
        return (sum / Double(count), count)
    }
}
