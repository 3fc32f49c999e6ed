import Foundation

/// How a `Trainer` updates its model; saved in every checkpoint.
public struct TrainerOptions: Sendable, Hashable, Codable {
    /// The update rule and its hyperparameters (Adam by default).
    public var optimizer: OptimizerConfiguration
    /// The base learning rate, which `schedule` turns into each step's rate; must be positive and finite.
    public var learningRate: Double
    /// How the learning rate changes with the step.
    public var schedule: LearningRateSchedule
    /// Clip gradients to this global norm; 0 turns clipping off.
    public var clip: Double
    /// Draws the dropout masks of every step (with the step number), so a resumed run draws the same ones.
    public var seed: UInt64

    /// Creates options; each argument sets the property of the same name. The defaults are Adam, learning rate
    /// 0.001, a constant schedule, clipping at global norm 5 and seed 1.
    public init(optimizer: OptimizerConfiguration = .adam(), learningRate: Double = 1e-3,
                schedule: LearningRateSchedule = .constant, clip: Double = 5, seed: UInt64 = 1) {
        self.optimizer = optimizer
        self.learningRate = learningRate
        self.schedule = schedule
        self.clip = clip
        self.seed = seed
    }
}

/// What to do when a step's loss or gradient is NaN or infinite.
public enum NonFinitePolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Stop training; the last checkpoint is kept.
    case stop
    /// Leave the model unchanged, move past the batch (restarting a carried state); stop after 10 in a row.
    case skip
}

/// Trains a `SequenceModel<Float>` on a `TrainingSource`: optimizer, schedule, clipping, the non-finite check,
/// validation, checkpoints that resume bit for bit.
///
/// Everything that decides the next step lives in this object and in its checkpoint (parameters, optimizer state
/// and step count, the source's cursor, the carried state of truncated BPTT), so resuming continues exactly.
public final class Trainer<Source: TrainingSource> {
    /// The model being trained; its parameters are updated in place.
    public let model: SequenceModel<Float>
    /// The training and validation data; its cursor moves on with every step.
    public var source: Source
    /// How the model is updated (read from the checkpoint when resuming).
    public let options: TrainerOptions
    /// The optimizer and its state (buffers and step count), saved in every checkpoint.
    public var optimizer: Optimizer<Float>
    /// Steps completed.
    public private(set) var step = 0
    /// The state the next batch starts from when it continues the one before (sources with `carriedRows`).
    public internal(set) var carry: LSTMState<Float>?
    /// The lowest validation loss `fit` has seen, nil before the first validation; saved in checkpoints.
    public var bestValidationLoss: Double?
    /// Validations in a row that found no better loss (early stopping counts them; saved, so a resumed run stops
    /// where an uninterrupted one would).
    public var validationsWithoutImprovement = 0
    /// The processes this trainer's steps are split over: ``ProcessGroup/single`` until ``distribute(over:shards:)``.
    public internal(set) var group: ProcessGroup = .single
    /// S: each step's batch is split by rows into this many gradient shards, summed in shard order; 1 is the
    /// plain step. The model depends on S and the seed, not on the number of processes.
    public internal(set) var shards = 1
    /// The shard count of the checkpoint this trainer resumed (metadata `shards`, 1 when absent); nil for a
    /// trainer that did not resume. Resuming with the same count continues bit for bit.
    public internal(set) var shardsInCheckpoint: Int?
    /// Every this many steps of a sharded run, the processes compare a hash of their parameters.
    public var parameterCheckInterval = 50
    /// Metadata added to every checkpoint (and replacing the trainer's own keys), computed when it is written.
    public var checkpointMetadata: ((Trainer) -> [String: String])?

    /// Creates a trainer for `model` on `source` with a fresh optimizer state (and, for a source with
    /// `carriedRows`, a zero carried state).
    ///
    /// - Throws: `LSTMKitError.invalidConfiguration` when `options.learningRate` is not positive and finite, or
    ///   `options.clip` is negative or not finite.
    public init(model: SequenceModel<Float>, source: Source, options: TrainerOptions = TrainerOptions()) throws(LSTMKitError) {
        guard options.learningRate > 0, options.learningRate.isFinite else {
            throw .invalidConfiguration("the learning rate must be a positive number, got \(options.learningRate)")
        }
        guard options.clip >= 0, options.clip.isFinite else {
            throw .invalidConfiguration("the clipping norm must be 0 (off) or a positive number, got \(options.clip)")
        }
        self.model = model
        self.source = source
        self.options = options
        optimizer = Optimizer(options.optimizer, parameterCount: model.layout.count)
        carry = source.carriedRows.map { model.zeroState(batch: $0) }
    }

    /// One step's numbers.
    public struct StepResult: Sendable {
        /// The mean training loss of the batch.
        public var loss: Double
        /// The gradient's global norm before clipping.
        public var gradientNorm: Double
        /// The learning rate the step used, after the schedule.
        public var learningRate: Double
    }

    /// One optimizer step on the next batch. A non-finite loss or gradient leaves the model, optimizer, step and
    /// carried state untouched and throws `.nonFinite`, naming the step and the tensor (`skipBatch()` then moves
    /// past it); an update that makes a parameter non-finite throws `.diverged`.
    ///
    /// - Parameter schedule: the learning-rate schedule for this run; `options.schedule` when nil.
    @discardableResult
    public func trainStep(schedule: LearningRateSchedule? = nil) throws(LSTMKitError) -> StepResult {
        let batch = source.nextBatch()
        if !batch.continuesState, let rows = source.carriedRows { carry = model.zeroState(batch: rows) }
        model.zeroGradients()
        // The dropout mask depends on the seed and the step only, so a resumed run draws the same masks.
        var maskSource = RandomSource(seed: options.seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(step + 1)))
        let dropping = model.lstm.dropout > 0 || model.lstm.recurrentDropout > 0
        let dropoutSeed: UInt64? = dropping ? maskSource.next() : nil
        let loss: Double, final: LSTMState<Float>?
        if shards == 1 {
            let result = try model.lossAndGradients(batch.input, targets: batch.targets, initial: carry, dropoutSeed: dropoutSeed,
                                                inputGradient: false)
            (loss, final) = (result.loss, result.final)
        } else {
            (loss, final) = try shardedLossAndGradients(batch, dropoutSeed: dropoutSeed)
        }
        let norm = GradientClipping.norm(model.gradients)
        guard loss.isFinite else { throw .nonFinite("step \(step + 1): the training loss is \(loss)") }
        guard norm.isFinite else {
            let gradients = model.gradients
            let tensor = gradients.layout.specs.first { spec in gradients[spec].contains { !$0.isFinite } }?.name ?? "?"
            throw .nonFinite("step \(step + 1): the gradient of \(tensor) is not finite")
        }
        if options.clip > 0 { GradientClipping.clipNorm(&model.gradients, maxNorm: options.clip, norm: norm) }
        let learningRate = (schedule ?? options.schedule).learningRate(base: options.learningRate, step: step)
        optimizer.step(&model.parameters, gradients: model.gradients, learningRate: learningRate,
                       threads: model.threads)
        if let tensor = firstNonFinite(model.parameters) {
            throw .diverged("step \(step + 1): the update made \(tensor) non-finite (is the learning rate too high?)")
        }
        if source.carriedRows != nil { carry = final }
        source.advance()
        step += 1
        if shards > 1, step % parameterCheckInterval == 0 { try checkParametersAgree() }
        return StepResult(loss: loss, gradientNorm: norm, learningRate: learningRate)
    }

    /// Moves past the next batch without learning from it (after `trainStep` threw for a non-finite value): the
    /// step counts, a carried state restarts from zero, the model and optimizer are unchanged.
    public func skipBatch() {
        _ = source.nextBatch()
        carry = source.carriedRows.map { model.zeroState(batch: $0) }
        source.advance()
        step += 1
    }

    /// The mean loss over every validation batch (a batch that continues the one before starts from its state),
    /// nil without validation data; a batch that does not fit the model is an error.
    public func validationLoss() throws(LSTMKitError) -> Double? {
        var sum = 0.0, count = 0
        var state: LSTMState<Float>?
        for k in 0..<source.validationBatchCount {
            let batch = source.validationBatch(k)
            let initial = batch.continuesState ? state : nil
            let r = try model.evaluate(batch.input, targets: batch.targets,
                                       initial: initial ?? model.zeroState(batch: batch.input.batch))
            sum += r.sum
            count += r.count
            state = r.final
        }
        return count > 0 ? sum / Double(count) : nil
    }

    // MARK: Checkpoints

    /// What the trainer keeps besides tensors (metadata key `state`).
    public struct State: Sendable, Codable {
        /// Steps completed.
        public var step: Int
        /// The source cursor's epoch.
        public var epoch: Int
        /// The source cursor's position inside the epoch.
        public var position: Int
        /// The optimizer's step count.
        public var optimizerSteps: Int
        /// The lowest validation loss so far, nil before the first validation.
        public var bestValidationLoss: Double?
        /// The source's `fingerprint`, checked on resuming (absent in character-model checkpoints, which check
        /// their corpus themselves).
        public var source: String?
        /// `validationsWithoutImprovement` when not 0.
        public var withoutImprovement: Int?

        enum CodingKeys: String, CodingKey {
            case step, epoch, position, optimizerSteps = "optimizer_steps", bestValidationLoss = "best_validation_loss"
            case source, withoutImprovement = "without_improvement"
        }
    }

    /// The trainer's counters and cursor, as `checkpoint()` saves them in the metadata key `state`.
    public var state: State {
        State(step: step, epoch: source.cursor.epoch, position: source.cursor.position,
              optimizerSteps: optimizer.stepCount, bestValidationLoss: bestValidationLoss, source: source.fingerprint,
              withoutImprovement: validationsWithoutImprovement > 0 ? validationsWithoutImprovement : nil)
    }

    /// Everything needed to resume bitwise: the model's file, then `optimizer.<state>.<tensor>` for each optimizer
    /// buffer, then `train.hidden` and `train.cell` (the carried state, with a stateful source); metadata
    /// `training` (the options) and `state`. Throws, and writes nothing, if a parameter is not finite.
    public func checkpoint() throws(LSTMKitError) -> SafeTensors.File {
        try gatherCarriedState()
        if let tensor = firstNonFinite(model.parameters) {
            throw .nonFinite("\(tensor) is not finite at step \(step); not saving it")
        }
        var file = model.file()
        for (s, name) in options.optimizer.stateNames.enumerated() {
            for spec in model.layout.specs {
                file.tensors.append(("optimizer.\(name).\(spec.name)",
                                     SafeTensors.Tensor(Array(optimizer.states[s][spec.range]), shape: spec.shape)))
            }
        }
        if let carry {
            file.tensors.append(("train.hidden", SafeTensors.Tensor(carry.hidden, shape: [carry.layers, carry.batch, carry.hiddenSize])))
            file.tensors.append(("train.cell", SafeTensors.Tensor(carry.cell, shape: [carry.layers, carry.batch, carry.cellSize])))
        }
        file.metadata["training"] = jsonString(options)
        file.metadata["state"] = jsonString(state)
        if shards > 1 { file.metadata["shards"] = String(shards) }
        if let extra = checkpointMetadata?(self) { file.metadata.merge(extra) { $1 } }
        return file
    }

    /// A trainer that continues `file` (written by `checkpoint()`) on `source`; the model comes from the file.
    public convenience init(resuming file: SafeTensors.File, source: Source, path: String) throws(LSTMKitError) {
        let model = try SequenceModel<Float>(file: file, source: path)
        guard let json = file.metadata["training"],
              let options = try? JSONDecoder().decode(TrainerOptions.self, from: Data(json.utf8)) else {
            throw .invalidInput("\(path) holds a model but no training options, so training cannot resume from it; train from scratch")
        }
        try self.init(model: model, source: source, options: options)
        try restore(from: file, path: path)
    }

    /// Reads the parameters, the optimizer state, the step, the cursor and the carried state of `file` (written
    /// by `checkpoint()` of a trainer with this model's layout and these options) into this trainer.
    public func restore(from file: SafeTensors.File, path: String) throws(LSTMKitError) {
        guard let json = file.metadata["state"],
              let state = try? JSONDecoder().decode(State.self, from: Data(json.utf8)) else {
            throw .invalidInput("\(path) holds a model but no training state, so training cannot resume from it; train from scratch or sample from it")
        }
        let limit = 1 << 40
        guard (0..<limit).contains(state.step), (0..<limit).contains(state.optimizerSteps),
              (0..<limit).contains(state.epoch), (0..<limit).contains(state.position) else {
            throw .invalidInput("\(path) has a step, epoch or position out of range; the file is damaged")
        }
        if let saved = state.source, saved != source.fingerprint {
            throw .invalidInput("\(path) was trained on other data (or other batches or seed); resume with the same data and settings, or train anew")
        }
        for spec in model.layout.specs {
            let values = try file.floats(named: spec.name, shape: spec.shape, source: path)
            guard values.allSatisfy(\.isFinite) else { throw .invalidInput("\(path): tensor \(spec.name) contains NaN or infinity") }
            model.parameters[spec] = values[...]
        }
        for (s, name) in options.optimizer.stateNames.enumerated() {
            for spec in model.layout.specs {
                let values = try file.floats(named: "optimizer.\(name).\(spec.name)", shape: spec.shape, source: path)
                optimizer.states[s].replaceSubrange(spec.range, with: values)
            }
        }
        optimizer.stepCount = state.optimizerSteps
        if let rows = source.carriedRows {
            let L = model.lstm.stateCount, (P, H) = (model.lstm.outputSize, model.lstm.hiddenSize)
            let hidden = try file.floats(named: "train.hidden", shape: [L, rows, P], source: path)
            let cell = try file.floats(named: "train.cell", shape: [L, rows, H], source: path)
            carry = LSTMState(hidden: hidden, cell: cell, layers: L, batch: rows, hiddenSize: P, cellSize: H)
        }
        step = state.step
        shardsInCheckpoint = file.metadata["shards"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
        source.cursor = SourceCursor(epoch: state.epoch, position: state.position)
        bestValidationLoss = state.bestValidationLoss
        validationsWithoutImprovement = max(0, state.withoutImprovement ?? 0)
    }
}
