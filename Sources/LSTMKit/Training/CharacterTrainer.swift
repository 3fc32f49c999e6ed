import Foundation

/// How a character model is trained; saved in every checkpoint.
public struct TrainingOptions: Sendable, Hashable, Codable {
    public var seqLength: Int = 64
    public var batch: Int = 32
    public var optimizer: OptimizerConfiguration = .adam()
    public var learningRate: Double = 2e-3
    public var schedule: LearningRateSchedule = .constant
    /// Clip gradients to this global norm; 0 turns clipping off.
    public var clip: Double = 5
    public var validationFraction: Double = 0.05
    public var seed: UInt64 = 1
    /// Memory-lean BPTT inside each window (`LSTM.checkpointInterval`); nil or 0 keeps every step. The gradients are
    /// the same bits either way, only the memory and the time differ. Optional so that a plain run's checkpoint does
    /// not mention it and older checkpoints read as nil.
    public var checkpointInterval: Int?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case seqLength = "seq_length", batch, optimizer, learningRate = "learning_rate", schedule, clip,
             validationFraction = "validation_fraction", seed, checkpointInterval = "checkpoint_interval"
    }
}

/// Trains a `CharacterModel` char-rnn style: the training text is cut into `batch` contiguous streams, each read
/// window by window (`seqLength` steps), and the LSTM state carries from one window to the next of the same stream
/// (truncated BPTT). At the end of the streams the position and the state go back to zero: a new epoch.
///
/// Everything that decides the next step lives in this object and in its checkpoint (parameters, optimizer state
/// and step count, carried state, stream position), so resuming from a checkpoint continues bit for bit.
public final class CharacterTrainer {
    public let model: CharacterModel
    /// `model`, with memory-lean BPTT when `options.checkpointInterval` asks for it (the same tensors).
    let trainingModel: CharacterModel
    public let vocabulary: Vocabulary
    public let options: TrainingOptions
    public var parameters: ParameterBuffer<Float>
    public var optimizer: Optimizer<Float>
    /// Steps completed.
    public private(set) var step = 0
    public private(set) var epoch = 0
    /// Offset of the next window inside every training stream.
    public private(set) var position = 0
    public private(set) var carry: LSTMState<Float>
    public var bestValidationLoss: Double?
    public let trainTokens: ArraySlice<Int32>
    public let validationTokens: ArraySlice<Int32>
    public let corpusFingerprint: UInt64
    private var gradients: ParameterBuffer<Float>
    private let stash = LSTMStash<Float>()
    /// Threads for the matrix products; results are bitwise the same for any count.
    public var threads: Int {
        get { stash.threads }
        set { stash.threads = max(1, newValue) }
    }
    private let streamLength: Int

    public static let checkpointFormat = "lstmkit.character-model"
    public static let checkpointVersion = 1

    /// A fresh model for `tokens` (the whole corpus, already encoded with `vocabulary`).
    public convenience init(tokens: [Int32], vocabulary: Vocabulary, model configuration: CharacterModel.Configuration,
                            options: TrainingOptions) throws(LSTMKitError) {
        let model = try CharacterModel(configuration)
        var parameters = ParameterBuffer<Float>(layout: model.layout)
        var random = RandomSource(seed: options.seed)
        model.initialize(&parameters, random: &random)
        try self.init(tokens: tokens, vocabulary: vocabulary, model: model, parameters: parameters, options: options,
                      optimizer: Optimizer(options.optimizer, parameterCount: model.layout.count))
    }

    init(tokens: [Int32], vocabulary: Vocabulary, model: CharacterModel, parameters: ParameterBuffer<Float>,
         options: TrainingOptions, optimizer: Optimizer<Float>) throws(LSTMKitError) {
        let T = options.seqLength, B = options.batch
        guard T >= 1 else { throw .invalidConfiguration("--seq-length must be at least 1, got \(T)") }
        guard B >= 1 else { throw .invalidConfiguration("--batch must be at least 1, got \(B)") }
        guard options.validationFraction >= 0, options.validationFraction < 1 else {
            throw .invalidConfiguration("--val-fraction must be in [0, 1), got \(options.validationFraction)")
        }
        guard options.learningRate > 0, options.learningRate.isFinite else {
            throw .invalidConfiguration("--lr must be a positive number, got \(options.learningRate)")
        }
        guard !tokens.isEmpty else { throw .invalidInput("the corpus is empty; give a text with at least a few thousand characters") }
        let validationCount = options.validationFraction > 0
            ? max(T + 1, Int((Double(tokens.count) * options.validationFraction).rounded())) : 0
        let trainCount = tokens.count - validationCount
        let needed = B * (T + 1) + validationCount
        guard trainCount >= B * (T + 1) else {
            throw .invalidInput("the corpus has \(tokens.count) characters, too short for one window: --batch \(B) × (--seq-length \(T) + 1)"
                + (validationCount > 0 ? " + \(validationCount) for validation" : "") + " = \(needed); use a longer text or smaller --batch / --seq-length")
        }
        self.model = model
        do { trainingModel = try model.withCheckpointInterval(options.checkpointInterval ?? 0) } catch {
            throw .invalidConfiguration("--bptt-checkpoint must be 0 (off) or a number of steps, got \(options.checkpointInterval ?? 0)")
        }
        self.vocabulary = vocabulary
        self.options = options
        self.parameters = parameters
        self.optimizer = optimizer
        trainTokens = tokens[0..<trainCount]
        validationTokens = tokens[trainCount...]
        corpusFingerprint = Corpus.fingerprint(tokens)
        streamLength = trainCount / B
        carry = model.zeroState(batch: B)
        gradients = ParameterBuffer(layout: model.layout)
    }

    /// Training windows per epoch.
    public var windowsPerEpoch: Int { (streamLength - 1) / options.seqLength }

    /// One optimizer step on the next window. Returns the mean training loss (nats per character) and the gradient
    /// norm before clipping. A non-finite loss or gradient leaves the model, optimizer and position untouched and
    /// throws, naming the step and the tensor; `skipWindow()` then moves past the window if the caller wants to go
    /// on. Parameters that the update itself makes non-finite (a learning rate far too high) throw too; the trainer
    /// is then spoiled, and `checkpoint()` refuses to save it.
    ///
    /// - Parameter schedule: the learning-rate schedule for this run; `options.schedule` when nil.
    @discardableResult
    public func trainStep(schedule: LearningRateSchedule? = nil) throws(LSTMKitError) -> (loss: Double, gradientNorm: Double) {
        let T = options.seqLength, B = options.batch
        if position + T + 1 > streamLength {
            position = 0
            epoch += 1
            carry = model.zeroState(batch: B)
        }
        var inputs = [Int32](repeating: 0, count: T * B), targets = inputs
        let base = trainTokens.startIndex
        for b in 0..<B {
            let start = base + b * streamLength + position
            for t in 0..<T {
                inputs[t * B + b] = trainTokens[start + t]
                targets[t * B + b] = trainTokens[start + t + 1]
            }
        }
        gradients.zero()
        var state = carry
        // The dropout mask depends on the seed and the step only, so a resumed run draws the same masks.
        var maskSource = RandomSource(seed: options.seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(step + 1)))
        let dropping = (model.configuration.dropout ?? 0) > 0 || (model.configuration.recurrentDropout ?? 0) > 0
        let dropoutSeed: UInt64? = dropping ? maskSource.next() : nil
        let loss = trainingModel.trainWindow(inputs: inputs, targets: targets, steps: T, batch: B, state: &state,
                                     parameters: parameters, gradients: &gradients, stash: stash,
                                     dropoutSeed: dropoutSeed)
        let norm = GradientClipping.norm(gradients)
        guard loss.isFinite else { throw .nonFinite("step \(step + 1): the training loss is \(loss)") }
        guard norm.isFinite else {
            let tensor = gradients.layout.specs.first { spec in gradients[spec].contains { !$0.isFinite } }?.name ?? "?"
            throw .nonFinite("step \(step + 1): the gradient of \(tensor) is not finite")
        }
        if options.clip > 0 { GradientClipping.clipNorm(&gradients, maxNorm: options.clip, norm: norm) }
        optimizer.step(&parameters, gradients: gradients,
                       learningRate: (schedule ?? options.schedule).learningRate(base: options.learningRate, step: step))
        if let tensor = Self.firstNonFinite(parameters) {
            throw .diverged("step \(step + 1): the update made \(tensor) non-finite (is the learning rate too high?)")
        }
        carry = state
        position += T
        step += 1
        return (loss, norm)
    }

    /// Moves past the next window without learning from it (after `trainStep` threw for a non-finite loss or
    /// gradient): the step counts, the carried state restarts from zero, the model and optimizer are unchanged.
    public func skipWindow() {
        let T = options.seqLength
        if position + T + 1 > streamLength {
            position = 0
            epoch += 1
        }
        carry = model.zeroState(batch: options.batch)
        position += T
        step += 1
    }

    /// The name of the first tensor holding a NaN or an infinity, if any.
    static func firstNonFinite(_ buffer: ParameterBuffer<Float>) -> String? {
        let finite = buffer.storage.withUnsafeBufferPointer { p in
            // v·0 is 0 for every finite v and NaN for ±∞ and NaN, so the sum is 0 exactly when all are finite (no
            // overflow possible); eight lanes keep it fast. The per-tensor search runs only when it fails.
            var lanes = SIMD8<Float>()
            var k = 0
            while k + 8 <= p.count {
                lanes += SIMD8<Float>(p[k ..< k + 8]) * 0
                k += 8
            }
            var sum = lanes.sum()
            while k < p.count { sum += p[k] * 0; k += 1 }
            return sum == 0
        }
        if finite { return nil }
        return buffer.layout.specs.first { spec in buffer[spec].contains { !$0.isFinite } }?.name ?? "a parameter"
    }

    /// Mean cross-entropy (nats) over the validation text, read as up to `batch` streams from a zero state.
    public func validationLoss() -> Double? {
        let T = options.seqLength
        let n = validationTokens.count
        guard n >= 2 else { return nil }
        let B = max(1, min(options.batch, n / (T + 1)))
        let L = n / B
        var state = model.zeroState(batch: B)
        var sum = 0.0, count = 0
        var p = 0
        let base = validationTokens.startIndex
        while p + 1 < L {
            let steps = min(T, L - 1 - p)
            var inputs = [Int32](repeating: 0, count: steps * B), targets = inputs
            for b in 0..<B {
                for t in 0..<steps {
                    inputs[t * B + b] = validationTokens[base + b * L + p + t]
                    targets[t * B + b] = validationTokens[base + b * L + p + t + 1]
                }
            }
            let r = model.evaluateWindow(inputs: inputs, targets: targets, steps: steps, batch: B, state: &state,
                                         parameters: parameters, stash: stash)
            sum += r.sum
            count += r.count
            p += steps
        }
        return count > 0 ? sum / Double(count) : nil
    }

    // MARK: Checkpoints

    struct SavedState: Codable {
        var step: Int
        var epoch: Int
        var position: Int
        var optimizerSteps: Int
        var bestValidationLoss: Double?
        var corpusFingerprint: String
        var corpusCharacters: Int

        enum CodingKeys: String, CodingKey {
            case step, epoch, position, optimizerSteps = "optimizer_steps", bestValidationLoss = "best_validation_loss",
                 corpusFingerprint = "corpus_fingerprint", corpusCharacters = "corpus_characters"
        }
    }

    /// Everything needed to sample from the model and to resume training exactly.
    ///
    /// Tensors: the model's (PyTorch names, F32), then `optimizer.<state>.<name>` for each optimizer buffer, then
    /// `train.hidden` and `train.cell` (L, B, H), the carried state. Metadata: see the README.
    /// Everything needed to resume bitwise. Throws (and writes nothing) if a parameter is not finite: no
    /// checkpoint ever holds a NaN.
    public func checkpoint() throws(LSTMKitError) -> SafeTensors.File {
        if let tensor = Self.firstNonFinite(parameters) {
            throw .nonFinite("\(tensor) is not finite at step \(step); not saving it")
        }
        var file = CharacterModelFile.file(model: model, vocabulary: vocabulary, parameters: parameters)
        for (s, name) in options.optimizer.stateNames.enumerated() {
            for spec in model.layout.specs {
                file.tensors.append(("optimizer.\(name).\(spec.name)",
                                     SafeTensors.Tensor(Array(optimizer.states[s][spec.range]), shape: spec.shape)))
            }
        }
        file.tensors.append(("train.hidden", SafeTensors.Tensor(carry.hidden, shape: [carry.layers, carry.batch, carry.hiddenSize])))
        file.tensors.append(("train.cell", SafeTensors.Tensor(carry.cell, shape: [carry.layers, carry.batch, carry.cellSize])))
        let state = SavedState(step: step, epoch: epoch, position: position, optimizerSteps: optimizer.stepCount,
                               bestValidationLoss: bestValidationLoss,
                               corpusFingerprint: String(corpusFingerprint, radix: 16),
                               corpusCharacters: trainTokens.count + validationTokens.count)
        file.metadata["training"] = jsonString(options)
        file.metadata["state"] = jsonString(state)
        return file
    }

    /// Continues from a checkpoint written by `checkpoint()`, on the same corpus.
    public convenience init(resuming file: SafeTensors.File, tokens: [Int32], source: String) throws(LSTMKitError) {
        let loaded = try CharacterModelFile.load(file, source: source)
        guard let trainingJSON = file.metadata["training"], let stateJSON = file.metadata["state"],
              let options = try? JSONDecoder().decode(TrainingOptions.self, from: Data(trainingJSON.utf8)),
              let state = try? JSONDecoder().decode(SavedState.self, from: Data(stateJSON.utf8)) else {
            throw .invalidInput("\(source) holds a model but no training state, so training cannot resume from it; train from scratch or sample from it")
        }
        var optimizer = Optimizer<Float>(options.optimizer, parameterCount: loaded.model.layout.count)
        for (s, name) in options.optimizer.stateNames.enumerated() {
            for spec in loaded.model.layout.specs {
                let values = try CharacterModelFile.floats(file, "optimizer.\(name).\(spec.name)", shape: spec.shape, source: source)
                optimizer.states[s].replaceSubrange(spec.range, with: values)
            }
        }
        optimizer.stepCount = state.optimizerSteps
        try self.init(tokens: tokens, vocabulary: loaded.vocabulary, model: loaded.model, parameters: loaded.parameters,
                      options: options, optimizer: optimizer)
        guard String(corpusFingerprint, radix: 16) == state.corpusFingerprint, tokens.count == state.corpusCharacters else {
            throw .invalidInput("\(source) was trained on a different corpus (\(state.corpusCharacters) characters); resume with the same text, or train a new model")
        }
        let L = loaded.model.lstm.stateCount, B = options.batch
        let (P, H) = (loaded.model.lstm.outputSize, loaded.model.lstm.hiddenSize)
        let hidden = try CharacterModelFile.floats(file, "train.hidden", shape: [L, B, P], source: source)
        let cell = try CharacterModelFile.floats(file, "train.cell", shape: [L, B, H], source: source)
        carry = LSTMState(hidden: hidden, cell: cell, layers: L, batch: B, hiddenSize: P, cellSize: H)
        step = state.step
        epoch = state.epoch
        position = state.position
        bestValidationLoss = state.bestValidationLoss
        guard position >= 0, position <= streamLength else {
            throw .invalidInput("\(source) has a stream position outside the corpus; the file is damaged")
        }
    }
}

/// Reading and writing a character model (weights, vocabulary, sizes) as safetensors.
public enum CharacterModelFile {
    public struct Loaded: Sendable {
        public var model: CharacterModel
        public var vocabulary: Vocabulary
        public var parameters: ParameterBuffer<Float>
    }

    /// The model's tensors and the metadata every character-model file carries.
    public static func file(model: CharacterModel, vocabulary: Vocabulary, parameters: ParameterBuffer<Float>) -> SafeTensors.File {
        var file = SafeTensors.File()
        for spec in model.layout.specs {
            file.tensors.append((spec.name, SafeTensors.Tensor(Array(parameters[spec]), shape: spec.shape)))
        }
        file.metadata["format"] = CharacterTrainer.checkpointFormat
        file.metadata["format_version"] = String(CharacterTrainer.checkpointVersion)
        file.metadata["vocabulary"] = vocabulary.json
        file.metadata["model"] = jsonString(model.configuration)
        return file
    }

    public static func load(path: String) throws(LSTMKitError) -> Loaded {
        let file: SafeTensors.File
        do { file = try SafeTensors.read(path: path) } catch { throw .invalidInput("\(path): \(error.description)") }
        return try load(file, source: path)
    }

    /// Validates a file as a character model: format and version, vocabulary, and every tensor's shape. The sizes
    /// are inferred from the tensor shapes (so a model saved from PyTorch needs only the vocabulary in metadata).
    public static func load(_ file: SafeTensors.File, source: String) throws(LSTMKitError) -> Loaded {
        if let format = file.metadata["format"], format != CharacterTrainer.checkpointFormat {
            throw .invalidInput("\(source) is a \(format) file, not a character model")
        }
        if let versionText = file.metadata["format_version"] {
            guard let version = Int(versionText) else { throw .invalidInput("\(source) has an unreadable format_version \(versionText)") }
            guard version <= CharacterTrainer.checkpointVersion else {
                throw .invalidInput("\(source) has checkpoint format version \(version), newer than this lstm understands (\(CharacterTrainer.checkpointVersion)); upgrade LSTMKit")
            }
            guard version >= 1 else { throw .invalidInput("\(source) has unsupported checkpoint format version \(version)") }
        }
        guard let vocabularyJSON = file.metadata["vocabulary"] else {
            throw .invalidInput("\(source) has no vocabulary in its metadata, so it is not a character model")
        }
        let vocabulary: Vocabulary
        do { vocabulary = try Vocabulary(json: vocabularyJSON) } catch { throw .invalidInput("\(source): \(error.description)") }
        guard let embedding = file["embedding.weight"], embedding.shape.count == 2 else {
            throw .invalidInput("\(source) has no 2-D tensor embedding.weight")
        }
        // Sizes and structure from the LSTM's tensors, as LSTM.load reads them.
        let structure: LSTMConfiguration
        do { structure = try LSTM.structure(in: file, prefix: "lstm.") } catch { throw .invalidInput("\(source): \(error.description)") }
        let layers = structure.layers, projection = structure.projectionSize > 0 ? structure.projectionSize : nil
        // Sizes come from the tensors; what they cannot tell (cell clipping, dropout) from the "model" metadata.
        var cellClip: Double?, dropout: Double?, recurrentDropout: Double?, peepholes: Bool?, layerNorm: Bool?
        if let json = file.metadata["model"] {
            guard let saved = try? JSONDecoder().decode(CharacterModel.Configuration.self, from: Data(json.utf8)) else {
                throw .invalidInput("\(source) has unreadable model metadata")
            }
            cellClip = saved.cellClip
            dropout = saved.dropout
            recurrentDropout = saved.recurrentDropout
            peepholes = saved.peepholes
            layerNorm = saved.layerNorm
        }
        // The tensors tell what they hold, whatever the metadata says (a PyTorch-made file has no "model" key).
        if structure.activations[0].peepholes { peepholes = true }
        if structure.activations[0].layerNorm { layerNorm = true }
        let configuration = CharacterModel.Configuration(vocabularySize: embedding.shape[0], embedding: embedding.shape[1],
                                                         hidden: structure.hiddenSize, layers: layers, cellClip: cellClip,
                                                         dropout: dropout, recurrentDropout: recurrentDropout,
                                                         peepholes: peepholes, layerNorm: layerNorm, projection: projection)
        guard configuration.vocabularySize == vocabulary.count else {
            throw .invalidInput("\(source): embedding.weight has \(configuration.vocabularySize) rows but the vocabulary has \(vocabulary.count) characters")
        }
        let model: CharacterModel
        do { model = try CharacterModel(configuration) } catch { throw .invalidInput("\(source): \(error.description)") }
        // A tensor of the LSTM's that this model does not have (a reverse direction, a projection next to a square
        // W_hh) would be silently ignored: refuse it.
        let known = Set(model.layout.specs.map(\.name))
        if let stray = file.tensors.map(\.name).sorted().first(where: { $0.hasPrefix("lstm.") && !known.contains($0) }) {
            throw .invalidInput("\(source): tensor \(stray) does not fit a \(layers)-layer LSTM with hidden \(configuration.hidden)\(projection.map { " and projection \($0)" } ?? ""); a character model's LSTM is unidirectional")
        }
        var parameters = ParameterBuffer<Float>(layout: model.layout)
        for spec in model.layout.specs {
            let values = try floats(file, spec.name, shape: spec.shape, source: source)
            guard values.allSatisfy(\.isFinite) else { throw .invalidInput("\(source): tensor \(spec.name) contains NaN or infinity") }
            parameters[spec] = values[...]
        }
        return Loaded(model: model, vocabulary: vocabulary, parameters: parameters)
    }

    static func floats(_ file: SafeTensors.File, _ name: String, shape: [Int], source: String) throws(LSTMKitError) -> [Float] {
        guard let tensor = file[name] else { throw .invalidInput("\(source) has no tensor \(name)") }
        guard tensor.shape == shape else {
            throw .invalidInput("\(source): tensor \(name) has shape \(tensor.shape), expected \(shape)")
        }
        guard let values = tensor.floats() else { throw .invalidInput("\(source): tensor \(name) has non-float dtype \(tensor.dtype.rawValue)") }
        return values
    }
}

func jsonString<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
}
