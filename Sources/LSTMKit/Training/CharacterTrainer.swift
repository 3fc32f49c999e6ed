import Foundation

/// How a character model is trained; saved in every checkpoint.
public struct TrainingOptions: Sendable, Hashable, Codable {
    /// The window length: the characters of each stream in one training step.
    public var seqLength: Int = 64
    /// The number of streams read side by side (the rows of every batch).
    public var batch: Int = 32
    /// The update rule and its hyperparameters (Adam by default).
    public var optimizer: OptimizerConfiguration = .adam()
    /// The base learning rate, which `schedule` turns into each step's rate; must be positive and finite.
    public var learningRate: Double = 2e-3
    /// How the learning rate changes with the step.
    public var schedule: LearningRateSchedule = .constant
    /// Clip gradients to this global norm; 0 turns clipping off.
    public var clip: Double = 5
    /// The tail of the corpus held out for validation, in [0, 1); when not 0, at least `seqLength` + 1 characters.
    public var validationFraction: Double = 0.05
    /// Seeds the initial parameters and the dropout masks.
    public var seed: UInt64 = 1
    /// Memory-lean BPTT inside each window (`LSTM.checkpointInterval`); nil or 0 keeps every step. The gradients are
    /// the same bits either way, only the memory and the time differ. Optional so that a plain run's checkpoint does
    /// not mention it and older checkpoints read as nil.
    public var checkpointInterval: Int?
    /// The separate validation text, when the model is validated on one instead of a held-out fraction (its
    /// path, for resuming); nil otherwise, and in older checkpoints.
    public var validationFile: String?

    /// The defaults: windows of 64 characters, 32 streams, Adam at learning rate 0.002 with a constant schedule,
    /// clipping at global norm 5, 5% held out for validation, seed 1.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case seqLength = "seq_length", batch, optimizer, learningRate = "learning_rate", schedule, clip,
             validationFraction = "validation_fraction", seed, checkpointInterval = "checkpoint_interval",
             validationFile = "validation_file"
    }
}

/// Trains a `CharacterModel` char-rnn style: a `Trainer` on `TokenStreams` (the training text cut into `batch`
/// contiguous streams read window by window, `seqLength` steps, the state carried from window to window), with the
/// character-model checkpoint format (metadata `format` = `lstmkit.character-model`, `vocabulary`, `model`,
/// `training`, `state`; see the README).
public final class CharacterTrainer {
    /// The model's structure; its current weights are `parameters`.
    public let model: CharacterModel
    /// The characters the model reads and predicts.
    public let vocabulary: Vocabulary
    /// The options of this run (read from the checkpoint when resuming).
    public let options: TrainingOptions
    /// The generic trainer doing the work.
    public let trainer: Trainer<TokenStreams>
    /// `Corpus.fingerprint` of the training and validation tokens, checked when resuming.
    public let corpusFingerprint: UInt64

    /// The model's current parameters; setting replaces them.
    public var parameters: ParameterBuffer<Float> {
        get { trainer.model.parameters }
        set { trainer.model.parameters = newValue }
    }
    /// The optimizer and its state, saved in every checkpoint.
    public var optimizer: Optimizer<Float> {
        get { trainer.optimizer }
        set { trainer.optimizer = newValue }
    }
    /// Steps completed.
    public var step: Int { trainer.step }
    /// Completed passes over the training streams.
    public var epoch: Int { trainer.source.cursor.epoch }
    /// Offset of the next window inside every training stream.
    public var position: Int { trainer.source.cursor.position }
    /// The state the next window starts from, (L, B, P) and (L, B, H).
    public var carry: LSTMState<Float> { trainer.carry ?? model.zeroState(batch: options.batch) }
    /// The lowest validation loss recorded so far (by `Trainer.fit`, or set here), nil before any; saved in
    /// checkpoints.
    public var bestValidationLoss: Double? {
        get { trainer.bestValidationLoss }
        set { trainer.bestValidationLoss = newValue }
    }
    /// The training text, encoded.
    public var trainTokens: ArraySlice<Int32> { trainer.source.tokens }
    /// The validation text, encoded; empty without validation.
    public var validationTokens: ArraySlice<Int32> { trainer.source.validationTokens }
    /// Threads for the matrix products; results are bitwise the same for any count.
    public var threads: Int {
        get { trainer.model.threads }
        set { trainer.model.threads = newValue }
    }

    /// The value of the `format` metadata key of character-model files.
    public static let checkpointFormat = "lstmkit.character-model"
    /// The `format_version` character-model files are written with, and the newest this library reads.
    public static let checkpointVersion = 1

    /// A fresh model for `tokens` (the whole corpus, already encoded with `vocabulary`); the last
    /// `options.validationFraction` of it is held out for validation.
    public convenience init(tokens: [Int32], vocabulary: Vocabulary, model configuration: CharacterModel.Configuration,
                            options: TrainingOptions) throws(LSTMKitError) {
        let (train, validation) = try Self.split(tokens, options: options)
        try self.init(training: train, validation: validation, vocabulary: vocabulary, model: configuration, options: options)
    }

    /// A fresh model trained on `training` and validated on `validation` (both encoded with `vocabulary`).
    public convenience init(training: ArraySlice<Int32>, validation: ArraySlice<Int32>, vocabulary: Vocabulary,
                            model configuration: CharacterModel.Configuration, options: TrainingOptions) throws(LSTMKitError) {
        let model = try CharacterModel(configuration)
        var parameters = ParameterBuffer<Float>(layout: model.layout)
        var random = RandomSource(seed: options.seed)
        model.initialize(&parameters, random: &random)
        try self.init(training: training, validation: validation, vocabulary: vocabulary, model: model,
                      parameters: parameters, options: options)
    }

    init(training: ArraySlice<Int32>, validation: ArraySlice<Int32>, vocabulary: Vocabulary, model: CharacterModel,
         parameters: ParameterBuffer<Float>, options: TrainingOptions) throws(LSTMKitError) {
        try Self.check(options)
        let T = options.seqLength, B = options.batch
        guard !training.isEmpty else { throw .invalidInput("the corpus is empty; give a text with at least a few thousand characters") }
        guard training.count >= B * (T + 1) else {
            throw .invalidInput("the training text has \(training.count) characters, too short for one window: `batch` \(B) × (`seqLength` \(T) + 1) = \(B * (T + 1)); use a longer text or a smaller `batch` or `seqLength`")
        }
        self.model = model
        self.vocabulary = vocabulary
        self.options = options
        corpusFingerprint = Corpus.fingerprint(Array(training) + Array(validation))
        guard (options.checkpointInterval ?? 0) >= 0 else {
            throw .invalidConfiguration("`checkpointInterval` must be 0 (off) or a number of steps, got \(options.checkpointInterval ?? 0)")
        }
        let sequenceModel = try SequenceModel(model.sequenceConfiguration(checkpointInterval: options.checkpointInterval ?? 0),
                                              parameters: parameters)
        let source = try TokenStreams(tokens: training, validation: validation, batch: B, steps: T)
        trainer = try Trainer(model: sequenceModel, source: source,
                              options: TrainerOptions(optimizer: options.optimizer, learningRate: options.learningRate,
                                                      schedule: options.schedule, clip: options.clip, seed: options.seed))
        let fingerprint = corpusFingerprint, characters = training.count + validation.count
        trainer.checkpointMetadata = { trainer in
            Self.checkpointMetadata(of: trainer, model: model, vocabulary: vocabulary, options: options,
                                    corpusFingerprint: fingerprint, corpusCharacters: characters)
        }
    }

    static func check(_ options: TrainingOptions) throws(LSTMKitError) {
        guard options.seqLength >= 1 else { throw .invalidConfiguration("`seqLength` must be at least 1, got \(options.seqLength)") }
        guard options.batch >= 1 else { throw .invalidConfiguration("`batch` must be at least 1, got \(options.batch)") }
        guard options.validationFraction >= 0, options.validationFraction < 1 else {
            throw .invalidConfiguration("`validationFraction` must be in [0, 1), got \(options.validationFraction)")
        }
        guard options.learningRate > 0, options.learningRate.isFinite else {
            throw .invalidConfiguration("`learningRate` must be a positive number, got \(options.learningRate)")
        }
    }

    /// The corpus cut into training text and the held-out tail (at least one window's worth when a fraction is set).
    static func split(_ tokens: [Int32], options: TrainingOptions) throws(LSTMKitError) -> (ArraySlice<Int32>, ArraySlice<Int32>) {
        try check(options)
        let T = options.seqLength, B = options.batch
        guard !tokens.isEmpty else { throw .invalidInput("the corpus is empty; give a text with at least a few thousand characters") }
        let validationCount = options.validationFraction > 0
            ? max(T + 1, Int((Double(tokens.count) * options.validationFraction).rounded())) : 0
        let trainCount = tokens.count - validationCount
        guard trainCount >= B * (T + 1) else {
            throw .invalidInput("the corpus has \(tokens.count) characters, too short for one window: `batch` \(B) × (`seqLength` \(T) + 1)"
                + (validationCount > 0 ? " + \(validationCount) for validation" : "") + " = \(B * (T + 1) + validationCount); use a longer text or a smaller `batch` or `seqLength`")
        }
        return (tokens[0..<trainCount], tokens[trainCount...])
    }

    /// Training windows per epoch.
    public var windowsPerEpoch: Int { trainer.source.batchesPerEpoch }

    /// One optimizer step on the next window (`Trainer.trainStep`): the mean training loss (nats per character) and
    /// the gradient norm before clipping.
    @discardableResult
    public func trainStep(schedule: LearningRateSchedule? = nil) throws(LSTMKitError) -> (loss: Double, gradientNorm: Double) {
        let r = try trainer.trainStep(schedule: schedule)
        return (r.loss, r.gradientNorm)
    }

    /// Moves past the next window without learning from it (`Trainer.skipBatch`).
    public func skipWindow() { trainer.skipBatch() }

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
    public func validationLoss() throws(LSTMKitError) -> Double? { try trainer.validationLoss() }

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

    /// The character-model keys, replacing the generic trainer's (computed from the values, so the generic trainer
    /// writes them even when it outlives this object).
    static func checkpointMetadata(of trainer: Trainer<TokenStreams>, model: CharacterModel, vocabulary: Vocabulary,
                                   options: TrainingOptions, corpusFingerprint: UInt64,
                                   corpusCharacters: Int) -> [String: String] {
        var metadata = CharacterModelFile.file(model: model, vocabulary: vocabulary, parameters: nil).metadata
        let s = trainer.state
        let state = SavedState(step: s.step, epoch: s.epoch, position: s.position, optimizerSteps: s.optimizerSteps,
                               bestValidationLoss: s.bestValidationLoss,
                               corpusFingerprint: String(corpusFingerprint, radix: 16), corpusCharacters: corpusCharacters)
        metadata["training"] = jsonString(options)
        metadata["state"] = jsonString(state)
        return metadata
    }

    /// Everything needed to sample from the model and to resume training exactly: the model's tensors (PyTorch
    /// names, F32), `optimizer.<state>.<name>` for each optimizer buffer, `train.hidden` and `train.cell` (L, B, P)
    /// and (L, B, H), the carried state. Throws (and writes nothing) if a parameter is not finite.
    public func checkpoint() throws(LSTMKitError) -> SafeTensors.File { try trainer.checkpoint() }

    /// Continues from a checkpoint written by `checkpoint()`, on the same corpus (split as it was then).
    public convenience init(resuming file: SafeTensors.File, tokens: [Int32], source: String) throws(LSTMKitError) {
        let options = try Self.savedOptions(in: file, source: source)
        let (train, validation) = try Self.split(tokens, options: options)
        try self.init(resuming: file, training: train, validation: validation, source: source)
    }

    /// Continues from a checkpoint written by `checkpoint()`, on the same training and validation texts.
    public convenience init(resuming file: SafeTensors.File, training: ArraySlice<Int32>, validation: ArraySlice<Int32>,
                            source: String) throws(LSTMKitError) {
        let loaded = try CharacterModelFile.load(file, source: source)
        let options = try Self.savedOptions(in: file, source: source)
        guard let stateJSON = file.metadata["state"],
              let state = try? JSONDecoder().decode(SavedState.self, from: Data(stateJSON.utf8)) else {
            throw .invalidInput("\(source) holds a model but no training state, so training cannot resume from it; train from scratch or sample from it")
        }
        try self.init(training: training, validation: validation, vocabulary: loaded.vocabulary, model: loaded.model,
                      parameters: loaded.parameters, options: options)
        guard String(corpusFingerprint, radix: 16) == state.corpusFingerprint,
              training.count + validation.count == state.corpusCharacters else {
            throw .invalidInput("\(source) was trained on a different corpus (\(state.corpusCharacters) characters); resume with the same text, or train a new model")
        }
        try trainer.restore(from: file, path: source)
        guard trainer.source.isValid(trainer.source.cursor) else {
            throw .invalidInput("\(source) has a stream position outside the corpus; the file is damaged")
        }
    }

    /// The training options a checkpoint was written with.
    public static func savedOptions(in file: SafeTensors.File, source: String) throws(LSTMKitError) -> TrainingOptions {
        guard let json = file.metadata["training"],
              let options = try? JSONDecoder().decode(TrainingOptions.self, from: Data(json.utf8)) else {
            throw .invalidInput("\(source) holds a model but no training state, so training cannot resume from it; train from scratch or sample from it")
        }
        return options
    }
}

/// Reading and writing a character model (weights, vocabulary, sizes) as safetensors.
public enum CharacterModelFile {
    /// A character model read from a file: its structure, vocabulary and parameters.
    public struct Loaded: Sendable {
        /// The model's structure, from the tensor shapes and the `model` metadata.
        public var model: CharacterModel
        /// The vocabulary, from the `vocabulary` and `unknown_character` metadata.
        public var vocabulary: Vocabulary
        /// The weights, every one of them finite.
        public var parameters: ParameterBuffer<Float>
    }

    /// The model's tensors (none when `parameters` is nil: the metadata alone) and the metadata every
    /// character-model file carries.
    public static func file(model: CharacterModel, vocabulary: Vocabulary, parameters: ParameterBuffer<Float>?) -> SafeTensors.File {
        var file = SafeTensors.File()
        for spec in model.layout.specs {
            guard let parameters else { break }
            file.tensors.append((spec.name, SafeTensors.Tensor(Array(parameters[spec]), shape: spec.shape)))
        }
        file.metadata["format"] = CharacterTrainer.checkpointFormat
        file.metadata["format_version"] = String(CharacterTrainer.checkpointVersion)
        file.metadata["vocabulary"] = vocabulary.json
        if let id = vocabulary.unknownID { file.metadata["unknown_character"] = String(vocabulary.scalars[Int(id)].value) }
        file.metadata["model"] = jsonString(model.configuration)
        return file
    }

    /// Reads the file at `path` and validates it as a character model (see `load(_:source:)`).
    ///
    /// - Parameter path: The safetensors file to read; error messages name it.
    /// - Returns: The model, its vocabulary and its parameters.
    /// - Throws: `LSTMKitError.invalidInput` when the file cannot be read or is not a valid character model.
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
        if let unknown = file.metadata["unknown_character"], unknown != String(Vocabulary.unknownScalar.value) {
            throw .invalidInput("\(source) marks U+\(unknown) as its unknown character; this LSTMKit reads only U+FFFD (65533)")
        }
        do { vocabulary = try Vocabulary(json: vocabularyJSON, unknown: file.metadata["unknown_character"] != nil) } catch {
            throw .invalidInput("\(source): \(error.description)")
        }
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
            let values = try file.floats(named: spec.name, shape: spec.shape, source: source)
            guard values.allSatisfy(\.isFinite) else { throw .invalidInput("\(source): tensor \(spec.name) contains NaN or infinity") }
            parameters[spec] = values[...]
        }
        return Loaded(model: model, vocabulary: vocabulary, parameters: parameters)
    }

}

func jsonString<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
}

extension SafeTensors.File {
    /// The tensor `name` as Float values, checked to have `shape`; errors name `source`.
    func floats(named name: String, shape: [Int], source: String) throws(LSTMKitError) -> [Float] {
        guard let tensor = self[name] else { throw .invalidInput("\(source) has no tensor \(name)") }
        guard tensor.shape == shape else {
            throw .invalidInput("\(source): tensor \(name) has shape \(tensor.shape), expected \(shape)")
        }
        guard let values = tensor.floats() else { throw .invalidInput("\(source): tensor \(name) has non-float dtype \(tensor.dtype.rawValue)") }
        return values
    }
}
