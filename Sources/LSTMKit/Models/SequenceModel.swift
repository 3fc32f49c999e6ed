import Foundation

/// What a `SequenceModel` is: its input stage, its LSTM, its head and its loss. Saved in every model file.
public struct SequenceModelConfiguration: Sendable, Hashable, Codable {
    /// What the model reads at each step: token ids through an embedding, or numeric features.
    public enum Input: Sendable, Hashable, Codable {
        /// Token ids through an embedding table (`embedding.weight` (V, E)): language models, text classifiers.
        case tokens(vocabularySize: Int, embedding: Int)
        /// F numbers per step, straight into the LSTM: forecasting, sensor data.
        case features(Int)

        /// The width the LSTM reads.
        public var width: Int {
            switch self {
            case .tokens(_, let embedding): return embedding
            case .features(let f): return f
            }
        }
    }

    /// Where the linear head reads the LSTM.
    public enum Head: Sendable, Hashable, Codable {
        /// Every step's top-layer output (language models, tagging): one prediction per step.
        case everyStep(outputs: Int)
        /// Each row's last real step (classification, regression, forecasting): the top layer's final h of every
        /// direction, [h_fwd(after the row's last step), h_rev(after t = 0)], one prediction per row.
        case lastStep(outputs: Int)

        /// Classes (cross-entropy) or values (MSE, quantiles) predicted per row or step.
        public var outputs: Int {
            switch self {
            case .everyStep(let n), .lastStep(let n): return n
            }
        }
    }

    /// What the model is trained to minimise, and so which targets it takes.
    public enum Loss: Sendable, Hashable, Codable {
        /// Softmax cross-entropy over `outputs` classes (`SoftmaxCrossEntropy`).
        case crossEntropy
        /// Mean squared error over `outputs` values (`MaskedSquaredError`).
        case meanSquaredError
        /// The pinball loss over these quantiles, each in (0, 1), for every one of `outputs` values
        /// (`QuantileLoss`): the head predicts outputs × quantiles.count numbers.
        case quantile([Double])
    }

    /// The input stage; its `width` is the LSTM's input size.
    public var input: Input
    /// The LSTM; its `inputSize` is set from `input`.
    public var lstm: LSTMConfiguration
    /// Whether the head reads every step or each row's last step, and how many outputs it has.
    public var head: Head
    /// The loss: `crossEntropy` takes class targets, the other two take value targets.
    public var loss: Loss

    /// A configuration, with `lstm.inputSize` replaced by `input.width`; it is validated when a model is built.
    /// - Parameters:
    ///   - input: Token ids or features per step.
    ///   - lstm: The LSTM's settings; its `inputSize` is ignored.
    ///   - head: Where the head reads the LSTM, and its number of outputs.
    ///   - loss: The loss to train with.
    public init(input: Input, lstm: LSTMConfiguration, head: Head, loss: Loss) {
        self.input = input
        var lstm = lstm
        lstm.inputSize = input.width
        self.lstm = lstm
        self.head = head
        self.loss = loss
    }

    /// The head's width: outputs, times the number of quantiles for the quantile loss.
    public var headWidth: Int {
        if case .quantile(let q) = loss { return head.outputs * q.count }
        return head.outputs
    }
}

/// A whole sequence model that owns its parameters, gradients and forward stash: an input stage (embedding or
/// features), a stacked `LSTM` (any `LSTMConfiguration`), a `Linear` head on every step or on each row's last step,
/// and a loss.
///
/// ```
/// x_t = E[token_t]  or  the features of step t                      (T, B, I)
/// y_t, (h_n, c_n) = LSTM(x, h0, c0)                                  (T, B, D·P)
/// every step:  logits_t = y_t·W_headᵀ + b_head                       (T·B, out)
/// last step:   logits_b = [h_n(top, fwd), h_n(top, rev)]_b·W_headᵀ + b_head     (B, out)
/// loss = cross-entropy | MSE | pinball(quantiles)                    (padding excluded)
/// ```
/// Backward runs the chain in reverse: δlogits → `Linear.backward` → `LSTM.backward` (δy for every step, or δ of the
/// top layer's final h for the last step, the other layers' δ(h_n, c_n) zero) → `Embedding.backward`.
///
/// Tensors are named as a PyTorch module with attributes `embedding` (`nn.Embedding`), `lstm` (`nn.LSTM`) and
/// `head` (`nn.Linear`) would name them.
public final class SequenceModel<Scalar: LSTMScalar> {
    /// The validated configuration the model was built from, with `lstm.inputSize` set from the input.
    public let configuration: SequenceModelConfiguration
    /// Where every tensor lives in `parameters` and `gradients`: `embedding.weight`, `lstm.…`, `head.…`.
    public let layout: ParameterLayout
    /// The token embedding, or nil for feature input.
    public let embedding: Embedding?
    /// The stacked LSTM between the input stage and the head (`lstm.` tensors).
    public let lstm: LSTM
    /// The linear head, from D·P values per step or per row to `headWidth` outputs (`head.` tensors).
    public let head: Linear
    /// The model's weights; a buffer assigned here must have the model's `layout`, or the program stops with a message.
    public var parameters: ParameterBuffer<Scalar> {
        didSet { require(parameters.layout == layout, "SequenceModel.parameters: got a buffer of another layout (\(parameters.layout.count) values), expected the model's (\(layout.count))") }
    }
    /// Where `lossAndGradients` adds every parameter's gradient (allocated on first use: a model that only
    /// predicts never holds one). Read and modified in place: a `lazy var` would copy the whole buffer at every
    /// `&gradients` (measured: 0.6 ms per access for 4 M values), several times per training step.
    public var gradients: ParameterBuffer<Scalar> {
        _read {
            if gradientStorage == nil { gradientStorage = ParameterBuffer(layout: layout) }
            yield gradientStorage!
        }
        _modify {
            if gradientStorage == nil { gradientStorage = ParameterBuffer(layout: layout) }
            yield &gradientStorage!
        }
    }
    private var gradientStorage: ParameterBuffer<Scalar>?
    let stash: LSTMStash<Scalar>
    /// Threads for the matrix products; any count gives bitwise the same results.
    public var threads: Int {
        get { stash.threads }
        set { stash.threads = max(1, newValue) }
    }

    /// Bytes the model holds in the LSTM's buffers (activations, scratch, packed weights): the state and a chunk of
    /// steps' gates for a model that only predicts (`LSTM.infer`), the whole sequence's for one in training.
    public var stashBytes: Int { stash.allocatedBytes }

    /// A model with PyTorch's initialisation of every module (embedding N(0, 1), LSTM and head U(±1/√fan)), drawn
    /// from `seed` in tensor order.
    public convenience init(_ configuration: SequenceModelConfiguration, seed: UInt64 = 1) throws(LSTMKitError) {
        try self.init(configuration, parameters: nil)
        var random = RandomSource(seed: seed)
        embedding?.initialize(&parameters, random: &random)
        lstm.initialize(&parameters, random: &random)
        head.initialize(&parameters, random: &random)
    }

    /// A model built from the configuration these four parts make, initialised from `seed` as `init(_:seed:)` does.
    /// - Throws: `LSTMKitError.invalidConfiguration` when the configuration cannot be built.
    public convenience init(input: SequenceModelConfiguration.Input, lstm: LSTMConfiguration,
                            head: SequenceModelConfiguration.Head, loss: SequenceModelConfiguration.Loss,
                            seed: UInt64 = 1) throws(LSTMKitError) {
        try self.init(SequenceModelConfiguration(input: input, lstm: lstm, head: head, loss: loss), seed: seed)
    }

    /// The model with these parameters (zero when nil), which must have the model's layout.
    public init(_ configuration: SequenceModelConfiguration, parameters: ParameterBuffer<Scalar>?) throws(LSTMKitError) {
        let parts = try Self.structure(configuration)
        (self.configuration, layout, embedding, lstm, head) = (parts.configuration, parts.layout, parts.embedding, parts.lstm, parts.head)
        if let parameters {
            guard parameters.layout == layout else {
                throw .shapeMismatch("the parameters' layout (\(parameters.layout.count) values) is not this model's (\(layout.count))")
            }
            self.parameters = parameters
        } else {
            self.parameters = ParameterBuffer(layout: layout)
        }
        stash = LSTMStash()
    }

    /// The modules and the tensor layout `configuration` describes, validated, with nothing allocated.
    static func structure(_ configuration: SequenceModelConfiguration) throws(LSTMKitError)
        -> (configuration: SequenceModelConfiguration, layout: ParameterLayout, embedding: Embedding?, lstm: LSTM, head: Linear) {
        var layout = ParameterLayout()
        let embedding: Embedding?
        switch configuration.input {
        case let .tokens(vocabularySize, dimension):
            embedding = try Embedding(vocabularySize: vocabularySize, dimension: dimension, layout: &layout, prefix: "embedding.")
        case .features(let f):
            guard f >= 1 else { throw .invalidConfiguration("the input must have at least 1 feature, got \(f)") }
            embedding = nil
        }
        var lstmConfiguration = configuration.lstm
        lstmConfiguration.inputSize = configuration.input.width
        let lstm = try LSTM(lstmConfiguration, layout: &layout, prefix: "lstm.")
        guard configuration.head.outputs >= 1 else {
            throw .invalidConfiguration("the head must have at least 1 output, got \(configuration.head.outputs)")
        }
        switch configuration.loss {
        case .crossEntropy:
            guard configuration.head.outputs >= 2 else {
                throw .invalidConfiguration("cross-entropy needs at least 2 classes (head outputs), got \(configuration.head.outputs)")
            }
        case .meanSquaredError: break
        case .quantile(let q):
            guard !q.isEmpty, q.allSatisfy({ $0 > 0 && $0 < 1 }) else {
                throw .invalidConfiguration("quantiles must be a non-empty list of numbers in (0, 1), got \(q)")
            }
        }
        let readsFinalState = if case .lastStep = configuration.head { true } else { false }
        let headInput = readsFinalState ? lstm.directions * lstm.outputSize : lstm.outputWidth
        let head = try Linear(inputSize: headInput, outputSize: configuration.headWidth, layout: &layout, prefix: "head.")
        let validated = SequenceModelConfiguration(input: configuration.input, lstm: lstmConfiguration,
                                                   head: configuration.head, loss: configuration.loss)
        return (validated, layout, embedding, lstm, head)
    }

    var readsLastStep: Bool { if case .lastStep = configuration.head { true } else { false } }

    /// A zero (h, c) for `batch` rows.
    public func zeroState(batch: Int) -> LSTMState<Scalar> { LSTMState(for: lstm, batch: batch) }

    // MARK: Forward and backward

    /// The forward pass of one batch: head outputs (rows, width) and the final state.
    public struct Prediction: Sendable {
        /// (B, width) for a last-step head; (T·B, width) in the batch's layout for an every-step head (padding rows
        /// hold the head's bias). For cross-entropy these are logits.
        public var outputs: [Scalar]
        /// The number of output rows: B for a last-step head, T·B for an every-step head.
        public var rows: Int
        /// The values per row: the configuration's `headWidth` (classes, values, or values × quantiles).
        public var width: Int
        /// (h, c) of every layer and direction after each row's last real step.
        public var final: LSTMState<Scalar>

        /// The most likely class of each row (cross-entropy), ties to the lower id.
        public var classes: [Int32] {
            (0..<rows).map { r in
                var best = 0
                for v in 1..<width where outputs[r * width + v] > outputs[r * width + best] { best = v }
                return Int32(best)
            }
        }
    }

    /// What `lossAndGradients` returns; the parameter gradients are added into `gradients`.
    public struct Gradients: Sendable {
        /// The mean loss over the batch's real targets.
        public var loss: Double
        /// The number of targets the mean is over.
        public var count: Int
        /// The final (h, c) of every layer and direction, as in `LSTMOutput.final`: the state to carry into the next
        /// chunk.
        public var final: LSTMState<Scalar>
        /// δ of the features, in the batch's layout (empty for token input).
        public var input: [Scalar]
        /// δ(h0, c0).
        public var initial: LSTMState<Scalar>
    }

    /// Head outputs for `batch` from `initial` (zero when nil); keeps nothing for a backward pass the caller
    /// would have to run.
    public func predict(_ batch: SequenceBatch<Scalar>, initial: LSTMState<Scalar>? = nil) throws(LSTMKitError) -> Prediction {
        try check(batch, initial: initial)
        return forward(batch, initial: initial, dropoutSeed: nil, inference: true).prediction
    }

    /// The summed loss over `batch`'s real targets and their number, forward only (validation over many batches).
    public func evaluate(_ batch: SequenceBatch<Scalar>, targets: SequenceTargets<Scalar>,
                         initial: LSTMState<Scalar>? = nil) throws(LSTMKitError) -> (sum: Double, count: Int, final: LSTMState<Scalar>) {
        try check(batch, initial: initial)
        try check(targets, for: batch)
        let prediction = forward(batch, initial: initial, dropoutSeed: nil, inference: true).prediction
        let r = loss(prediction, targets: targets, batch: batch, wantGradient: false)
        return (r.sum, r.count, prediction.final)
    }

    /// Forward, loss and backward for one batch: the gradient of the mean loss is *added* into `gradients` (call
    /// `zeroGradients()` first for a fresh step).
    ///
    /// `dropoutSeed`: draws the dropout masks (a model with dropout and no seed runs without it).
    /// `inputGradient`: false leaves `Gradients.input` empty and skips its product, δZ·W_ih of the first layer
    /// (about I / (3(I + H)) of a one-layer step's arithmetic), for a loop that does not read δ of the features —
    /// `Trainer` passes false. The parameter gradients are the same bits either way.
    @discardableResult
    public func lossAndGradients(_ batch: SequenceBatch<Scalar>, targets: SequenceTargets<Scalar>,
                                 initial: LSTMState<Scalar>? = nil, dropoutSeed: UInt64? = nil,
                                 inputGradient: Bool = true) throws(LSTMKitError) -> Gradients {
        try lossAndGradients(batch, targets: targets, initial: initial, dropoutSeed: dropoutSeed, normalizer: nil,
                             inputGradient: inputGradient)
    }

    /// `lossAndGradients`, with the gradient of the loss summed over this batch and divided by `normalizer` (the
    /// target count of the whole batch this one is a shard of) instead of by its own count.
    func lossAndGradients(_ batch: SequenceBatch<Scalar>, targets: SequenceTargets<Scalar>, initial: LSTMState<Scalar>?,
                          dropoutSeed: UInt64?, normalizer: Int?, inputGradient: Bool) throws(LSTMKitError) -> Gradients {
        try check(batch, initial: initial)
        try check(targets, for: batch)
        let (prediction, headInput, tokens) = forward(batch, initial: initial, dropoutSeed: dropoutSeed)
        var (sum, count, dOutputs) = loss(prediction, targets: targets, batch: batch, wantGradient: true)
        if let normalizer, normalizer != count {
            let scale = Scalar(Double(count) / Double(max(normalizer, 1)))
            for k in dOutputs.indices { dOutputs[k] *= scale }
        }
        let B = batch.batch
        let dHeadInput = head.backward(dOutput: dOutputs, input: headInput, rows: prediction.rows,
                                       parameters: parameters, gradients: &gradients, threads: stash.threads)
        let back: LSTMInputGradients<Scalar>
        if readsLastStep {
            back = lstm.backward(dOutput: nil, dFinal: finalStateGradient(dHeadInput, batch: B),
                                 parameters: parameters, stash: stash, gradients: &gradients,
                                 inputGradient: inputGradient || embedding != nil)
        } else {
            back = lstm.backward(dOutput: dHeadInput, parameters: parameters, stash: stash, gradients: &gradients,
                                 inputGradient: inputGradient || embedding != nil)
        }
        if let embedding {
            embedding.backward(dOutput: back.input, tokens: tokens, gradients: &gradients)
        }
        return Gradients(loss: count > 0 ? sum / Double(count) : 0, count: count, final: prediction.final,
                         input: embedding == nil ? back.input : [], initial: back.initial)
    }

    /// Sets every value of `gradients` to zero (allocating the buffer on first use).
    public func zeroGradients() { gradients.zero() }

    /// How many targets the loss of `batch` averages over (classes not -100, values of real rows, × quantiles).
    func targetCount(_ batch: SequenceBatch<Scalar>, targets: SequenceTargets<Scalar>) -> Int {
        let keep = keptRows(batch)
        switch targets {
        case .classes(let classes):
            return classes.indices.reduce(0) { $0 + (classes[$1] != -100 && (keep?[$1] ?? true) ? 1 : 0) }
        case .values(let values):
            let width = configuration.head.outputs
            let rows = keep.map { $0.reduce(0) { $0 + ($1 ? 1 : 0) } } ?? values.count / max(width, 1)
            if case .quantile(let q) = configuration.loss { return rows * width * q.count }
            return rows * width
        }
    }

    /// The prediction, what the head read (every step's output or each row's last states) and the token ids the
    /// embedding read (padding set to 0; empty for features): backward needs the last two again.
    private func forward(_ batch: SequenceBatch<Scalar>, initial: LSTMState<Scalar>?, dropoutSeed: UInt64?,
                         inference: Bool = false) -> (prediction: Prediction, headInput: [Scalar], tokens: [Int32]) {
        let T = batch.steps, B = batch.batch
        let x: [Scalar], tokens = realTokens(batch)
        switch batch.values {
        case .tokens: x = embedding!.forward(tokens, parameters: parameters)    // (T, B, E)
        case .features(let values): x = values                                  // (T, B, F)
        }
        // `predict` and `evaluate` run the stash-free pass (`LSTM.infer`, the same bits) in the buffers the stash
        // already has: a model that only predicts holds a chunk's worth, one in training validates in its own.
        let out = inference
            ? lstm.infer(x, steps: T, batch: B, lengths: batch.lengths, initial: initial, layout: batch.layout,
                         parameters: parameters, stash: stash)
            : lstm.forward(x, steps: T, batch: B, lengths: batch.lengths, initial: initial, layout: batch.layout,
                           parameters: parameters, stash: stash, dropoutSeed: dropoutSeed)
        let rows = readsLastStep ? B : T * B
        let headInput = readsLastStep ? lastStates(out.final, batch: B) : out.output
        let outputs = head.forward(headInput, rows: rows, parameters: parameters, threads: stash.threads)
        return (Prediction(outputs: outputs, rows: rows, width: head.outputSize, final: out.final), headInput, tokens)
    }

    /// The batch's token ids with padding set to 0 (padding may hold anything; its rows are never read).
    private func realTokens(_ batch: SequenceBatch<Scalar>) -> [Int32] {
        guard case .tokens(var tokens) = batch.values else { return [] }
        guard batch.lengths != nil else { return tokens }
        for t in 0..<batch.steps {
            for b in 0..<batch.batch where !batch.isReal(step: t, row: b) { tokens[batch.index(step: t, row: b)] = 0 }
        }
        return tokens
    }

    /// The top layer's final h of each direction, (B, D·P).
    private func lastStates(_ final: LSTMState<Scalar>, batch B: Int) -> [Scalar] {
        let D = lstm.directions, P = lstm.outputSize, top = (lstm.layerCount - 1) * D
        var h = [Scalar](repeating: 0, count: B * D * P)
        for b in 0..<B {
            for d in 0..<D {
                let from = ((top + d) * B + b) * P, to = (b * D + d) * P
                for k in 0..<P { h[to + k] = final.hidden[from + k] }
            }
        }
        return h
    }

    /// δ of `lastStates` as a δ(h_n, c_n) of every layer and direction (zero but the top layer's h).
    private func finalStateGradient(_ dh: [Scalar], batch B: Int) -> LSTMState<Scalar> {
        let D = lstm.directions, P = lstm.outputSize, top = (lstm.layerCount - 1) * D
        var dFinal = zeroState(batch: B)
        for b in 0..<B {
            for d in 0..<D {
                let to = ((top + d) * B + b) * P, from = (b * D + d) * P
                for k in 0..<P { dFinal.hidden[to + k] = dh[from + k] }
            }
        }
        return dFinal
    }

    /// Which head rows are real (nil: all of them): padding steps of an every-step head are not.
    private func keptRows(_ batch: SequenceBatch<Scalar>) -> [Bool]? {
        guard !readsLastStep, batch.lengths != nil else { return nil }
        var keep = [Bool](repeating: false, count: batch.steps * batch.batch)
        for t in 0..<batch.steps {
            for b in 0..<batch.batch { keep[batch.index(step: t, row: b)] = batch.isReal(step: t, row: b) }
        }
        return keep
    }

    private func loss(_ prediction: Prediction, targets: SequenceTargets<Scalar>, batch: SequenceBatch<Scalar>,
                      wantGradient: Bool) -> (sum: Double, count: Int, dPrediction: [Scalar]) {
        let keep = keptRows(batch)
        switch (configuration.loss, targets) {
        case (.crossEntropy, .classes(var classes)):
            if let keep { for r in keep.indices where !keep[r] { classes[r] = -100 } }
            if wantGradient {
                let (mean, d) = SoftmaxCrossEntropy.forwardBackward(logits: prediction.outputs, targets: classes,
                                                                    classes: prediction.width, threads: stash.threads)
                let count = classes.reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
                return (mean * Double(count), count, d)
            }
            let r = SoftmaxCrossEntropy.summedLoss(logits: prediction.outputs, targets: classes, classes: prediction.width,
                                                   threads: stash.threads)
            return (r.sum, r.count, [])
        case (.meanSquaredError, .values(let values)):
            return MaskedSquaredError.forwardBackward(prediction: prediction.outputs, target: values,
                                                      width: configuration.head.outputs, keep: keep, wantGradient: wantGradient)
        case (.quantile(let q), .values(let values)):
            return QuantileLoss.forwardBackward(prediction: prediction.outputs, target: values, quantiles: q,
                                                width: configuration.head.outputs, keep: keep, wantGradient: wantGradient)
        default:
            return (0, 0, [])  // unreachable: `check(_:for:)` refuses the pair
        }
    }

    // MARK: Shape checks (thrown, so they read the same in release builds)

    private func check(_ batch: SequenceBatch<Scalar>, initial: LSTMState<Scalar>?) throws(LSTMKitError) {
        switch (configuration.input, batch.values) {
        case (.features(let f), .features):
            guard batch.features == f else {
                throw .shapeMismatch("the batch has \(batch.features) features per step, expected \(f) (the model's input)")
            }
        case (.tokens(let V, _), .tokens(let tokens)):
            // Padding is never read, so only real steps are checked.
            for t in 0..<batch.steps {
                for b in 0..<batch.batch where batch.isReal(step: t, row: b) {
                    let k = batch.index(step: t, row: b)
                    guard tokens[k] >= 0 && Int(tokens[k]) < V else {
                        throw .shapeMismatch("token \(tokens[k]) at step \(t) of row \(b) is outside the vocabulary 0..<\(V)")
                    }
                }
            }
        case (.features, .tokens):
            throw .shapeMismatch("the batch holds token ids, but the model reads numeric features; build the batch with features:")
        case (.tokens, .features):
            throw .shapeMismatch("the batch holds numeric features, but the model reads token ids; build the batch with tokens:")
        }
        if let initial {
            let U = lstm.stateCount, B = batch.batch, P = lstm.outputSize, H = lstm.hiddenSize
            guard initial.layers == U, initial.batch == B, initial.hiddenSize == P, initial.cellSize == H else {
                throw .shapeMismatch("the initial state is (\(initial.layers), \(initial.batch), \(initial.hiddenSize)) with cells \(initial.cellSize), expected (layers·directions, batch, hidden) = (\(U), \(B), \(P)) with cells \(H)")
            }
        }
    }

    private func check(_ targets: SequenceTargets<Scalar>, for batch: SequenceBatch<Scalar>) throws(LSTMKitError) {
        let rows = readsLastStep ? batch.batch : batch.steps * batch.batch
        let shape = readsLastStep ? "one per row (batch \(batch.batch))" : "one per step and row (steps × batch = \(batch.steps) × \(batch.batch))"
        let n = configuration.head.outputs
        switch (configuration.loss, targets) {
        case (.crossEntropy, .classes(let classes)):
            guard classes.count == rows else { throw .shapeMismatch("got \(classes.count) class targets, expected \(rows): \(shape)") }
            if let bad = classes.indices.first(where: { (classes[$0] < 0 || Int(classes[$0]) >= n) && classes[$0] != -100 }) {
                throw .shapeMismatch("class target \(classes[bad]) at position \(bad) is outside 0..<\(n) (the head's outputs)")
            }
        case (.meanSquaredError, .values(let values)), (.quantile, .values(let values)):
            guard values.count == rows * n else {
                throw .shapeMismatch("got \(values.count) target values, expected \(rows * n): \(n) value\(n == 1 ? "" : "s") \(shape)")
            }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw .invalidInput("target value \(bad) is \(values[bad]); targets must be finite numbers")
            }
        case (.crossEntropy, .values):
            throw .shapeMismatch("cross-entropy needs class targets (.classes), got values")
        case (_, .classes):
            throw .shapeMismatch("a regression loss needs value targets (.values), got classes")
        }
    }
}

// The file format spells these out (`{"kind": "last_step", "outputs": 2}`) rather than relying on Swift's
// synthesized enum coding, so renaming a case in code cannot change what files say.
extension SequenceModelConfiguration.Input {
    enum CodingKeys: String, CodingKey { case kind, features, vocabularySize = "vocabulary_size", embedding }

    /// Decodes `{"kind": "features", "features": F}` or `{"kind": "tokens", "vocabulary_size": V, "embedding": E}`.
    /// - Parameter decoder: The decoder to read from.
    /// - Throws: A `DecodingError` for an unknown kind or a missing key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "features": self = .features(try c.decode(Int.self, forKey: .features))
        case "tokens": self = .tokens(vocabularySize: try c.decode(Int.self, forKey: .vocabularySize),
                                      embedding: try c.decode(Int.self, forKey: .embedding))
        case let kind: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown input \(kind)")
        }
    }

    /// Encodes the input in the form `init(from:)` reads.
    /// - Parameter encoder: The encoder to write to.
    /// - Throws: The encoder's error.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .features(let f):
            try c.encode("features", forKey: .kind)
            try c.encode(f, forKey: .features)
        case let .tokens(V, E):
            try c.encode("tokens", forKey: .kind)
            try c.encode(V, forKey: .vocabularySize)
            try c.encode(E, forKey: .embedding)
        }
    }
}

extension SequenceModelConfiguration.Head {
    enum CodingKeys: String, CodingKey { case kind, outputs }

    /// Decodes `{"kind": "every_step", "outputs": n}` or `{"kind": "last_step", "outputs": n}`.
    /// - Parameter decoder: The decoder to read from.
    /// - Throws: A `DecodingError` for an unknown kind or a missing key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let outputs = try c.decode(Int.self, forKey: .outputs)
        switch try c.decode(String.self, forKey: .kind) {
        case "every_step": self = .everyStep(outputs: outputs)
        case "last_step": self = .lastStep(outputs: outputs)
        case let kind: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown head \(kind)")
        }
    }

    /// Encodes the head in the form `init(from:)` reads.
    /// - Parameter encoder: The encoder to write to.
    /// - Throws: The encoder's error.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .everyStep: try c.encode("every_step", forKey: .kind)
        case .lastStep: try c.encode("last_step", forKey: .kind)
        }
        try c.encode(outputs, forKey: .outputs)
    }
}

extension SequenceModelConfiguration.Loss {
    enum CodingKeys: String, CodingKey { case kind, quantiles }

    /// Decodes `{"kind": "cross_entropy"}`, `{"kind": "mean_squared_error"}` or
    /// `{"kind": "quantile", "quantiles": [q]}`.
    /// - Parameter decoder: The decoder to read from.
    /// - Throws: A `DecodingError` for an unknown kind or a missing key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "cross_entropy": self = .crossEntropy
        case "mean_squared_error": self = .meanSquaredError
        case "quantile": self = .quantile(try c.decode([Double].self, forKey: .quantiles))
        case let kind: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown loss \(kind)")
        }
    }

    /// Encodes the loss in the form `init(from:)` reads.
    /// - Parameter encoder: The encoder to write to.
    /// - Throws: The encoder's error.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .crossEntropy: try c.encode("cross_entropy", forKey: .kind)
        case .meanSquaredError: try c.encode("mean_squared_error", forKey: .kind)
        case .quantile(let q):
            try c.encode("quantile", forKey: .kind)
            try c.encode(q, forKey: .quantiles)
        }
    }
}
