import ArgumentParser
import Foundation
import LSTMKit

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a character-level language model (Embedding → LSTM → Linear → softmax).",
        discussion: """
        Reads a UTF-8 text (FILE, or standard input with -, or the bundled default corpus when FILE is omitted), \
        holds out the last --val-fraction for validation (or validates on --validation), and trains with \
        truncated BPTT over --batch stateful streams. Writes CHECKPOINT (safetensors), \
        CHECKPOINT-minus-extension.best.safetensors (best validation loss), .metrics.jsonl and .loss.svg beside it. \
        Ctrl-C saves and stops; --resume continues exactly.
        """
    )

    @Argument(help: "UTF-8 text to learn; - for standard input; omit for the bundled corpus.") var file: String?
    @Option(help: "A separate UTF-8 text to validate on, instead of holding out --val-fraction (the vocabulary covers both).")
    var validation: String?
    @Option(help: "Characters seen fewer times in the texts join the unknown character (which also stands for characters the model never saw).")
    var minCharCount = 1
    @Option(help: "Checkpoint file to write (and read with --resume).") var checkpoint = "charmodel.safetensors"
    @Flag(help: "Continue training from --checkpoint.") var resume = false
    @Flag(help: "Overwrite an existing --checkpoint instead of refusing.") var force = false
    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Training") var training: TrainingFlags
    @OptionGroup(title: "Runtime") var runtime: ThreadOptions
    @OptionGroup(title: "Data-parallel training (mpirun -np N lstm train …)") var parallel: ParallelOptions
    @OptionGroup var random: SeedOption

    func validate() throws {
        guard minCharCount >= 1 else { throw ValidationError("--min-char-count must be at least 1, got \(minCharCount)") }
        guard validation != "-" else { throw ValidationError("--validation needs a file (training may read standard input, validation may not)") }
    }

    func run() throws {
        try reportingFailures { try train() }
    }

    /// Fails early if the checkpoint cannot be written, so no training time is lost.
    private func checkWritable(_ files: TrainingFiles) throws {
        let folder = URL(fileURLWithPath: files.checkpoint).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(message: "cannot write checkpoint \(files.checkpoint): folder \(folder) does not exist")
        }
        guard access(folder, W_OK) == 0 else {
            throw Failure(message: "cannot write checkpoint \(files.checkpoint): folder \(folder) is not writable")
        }
        if FileManager.default.fileExists(atPath: files.checkpoint), access(files.checkpoint, W_OK) != 0 {
            throw Failure(message: "cannot write checkpoint \(files.checkpoint): the file is not writable")
        }
    }

    private func train() throws {
        let group = try processGroup()
        let files = TrainingFiles(checkpoint: checkpoint)
        let (trainer, corpus, heldOut) = try agreeingOnSetup(group) {
            if group.rank == 0 { try checkWritable(files) }
            if !resume && !force && FileManager.default.fileExists(atPath: files.checkpoint) {
                throw Failure(message: "\(files.checkpoint) already exists; pass --resume to continue it, --force to overwrite it, or choose another --checkpoint")
            }
            let corpus = try readCorpus(file)
            let heldOut = try validation.map { try readCorpus($0) }
            // A run killed while writing (SIGKILL, power loss) leaves its temporary file; the checkpoint is intact.
            if group.rank == 0 { for path in [files.checkpoint, files.best, files.plot] { AtomicFile.removeStaleTemporaries(of: path) } }
            let trainer = try resume ? resumedTrainer(files, corpus: corpus, heldOut: heldOut)
                                     : newTrainer(corpus: corpus, heldOut: heldOut)
            return (trainer, corpus, heldOut)
        }
        trainer.threads = runtime.threads
        let shards = try agreeingOnSetup(group) {
            try parallel.shards(for: group, resumed: trainer.trainer.shardsInCheckpoint, checkpoint: files.checkpoint)
        }
        if shards > 1 || group.size > 1 { try trainer.trainer.distribute(over: group, shards: shards) }
        let totalSteps = training.steps ?? training.epochs.map { max(1, Int(($0 * Double(trainer.windowsPerEpoch)).rounded())) } ?? 1000
        guard totalSteps > trainer.step else {
            throw Failure(message: "\(files.checkpoint) is already at step \(trainer.step); give a larger --steps to continue")
        }
        let options = trainer.options
        let schedule: LearningRateSchedule = training.schedule == .cosine
            ? .cosine(warmup: training.warmup, total: totalSteps, minimum: options.learningRate / 10) : options.schedule
        let report = TrainingReport(totalSteps: totalSteps, startStep: trainer.step, logEvery: training.logEvery,
                                    lastValidation: resume ? lastValidationLoss(in: files.metrics, upTo: trainer.step) : nil)
        let c = trainer.model.configuration
        let threads = runtime.threads
        report.note("""
            \(resume ? "resuming at step \(trainer.step)" : "training") on \(corpus.source): \(trainer.trainTokens.count) training and \(trainer.validationTokens.count) validation characters\(heldOut.map { " (\($0.source))" } ?? ""), vocabulary \(c.vocabularySize)
            model: embedding \(c.embedding), \(c.layers)×LSTM(\(c.hidden))\(trainer.model.lstm.variantDescription), \(trainer.model.layout.count) parameters; batch \(options.batch) × seq \(options.seqLength), \(options.optimizer.name) lr \(options.learningRate), \(totalSteps) steps (\(trainer.windowsPerEpoch) per epoch), \(threads) thread\(threads == 1 ? "" : "s")\(group.size > 1 ? " × \(group.size) processes" : ""), \(shards) gradient shard\(shards == 1 ? "" : "s")
            """)

        let fit = FitOptions(steps: totalSteps, schedule: schedule, validateEvery: training.evalEvery,
                             onNonFinite: training.onNonfinite, files: files, lossUnit: "nats per character", logsBits: true)
        let outcome: Trainer<TokenStreams>.Outcome
        do {
            outcome = try Interrupt.handling { requested in
                try trainer.trainer.fit(fit, progress: report.show, stopRequested: requested)
            }
        } catch {
            report.note("")
            throw Failure(message: "\(flagged(String(describing: error))); training stopped, the last checkpoint \(files.checkpoint) is kept")
        }
        if outcome == .stopped {
            report.note("stopped by a signal at step \(trainer.step); checkpoint saved to \(files.checkpoint); continue with --resume")
            throw ExitCode(130)
        }
        report.note("done: step \(trainer.step); checkpoint \(files.checkpoint), best \(files.best), metrics \(files.metrics), plot \(files.plot)")
    }

    private func newTrainer(corpus: CorpusText, heldOut: CorpusText?) throws -> CharacterTrainer {
        let vocabulary = try Vocabulary(building: corpus.scalars + (heldOut?.scalars ?? []), minimumCount: minCharCount)
        guard vocabulary.count >= 2 else {
            throw Failure(message: "no character occurs --min-char-count \(minCharCount) times, so the vocabulary would hold only the unknown character; lower --min-char-count")
        }
        try MemoryBudget.require(
            MemoryBudget.trainingBytes(vocabulary: vocabulary.count, embedding: model.embedding, hidden: model.hidden,
                                       layers: model.layers, batch: training.batch, steps: training.seqLength,
                                       layerNorm: model.layerNorm, checkpointInterval: training.bpttCheckpoint),
            for: "training --hidden \(model.hidden) --layers \(model.layers) --batch \(training.batch) --seq-length \(training.seqLength)",
            hint: "use a smaller model, batch or window")
        var options = TrainingOptions()
        options.seqLength = training.seqLength
        options.batch = training.batch
        options.optimizer = training.optimizer.configuration
        options.learningRate = training.lr
        options.clip = training.clip
        options.validationFraction = heldOut == nil ? training.valFraction : 0
        // An absolute path, so that --resume finds it from any folder.
        options.validationFile = heldOut.map { URL(fileURLWithPath: $0.source).standardizedFileURL.path }
        options.seed = random.seed
        options.checkpointInterval = training.bpttCheckpoint > 0 ? training.bpttCheckpoint : nil
        let tokens = try vocabulary.encode(corpus.scalars, source: corpus.source)
        let configuration = model.configuration(vocabularySize: vocabulary.count)
        if let heldOut {
            let validationTokens = try vocabulary.encode(heldOut.scalars, source: heldOut.source)
            return try CharacterTrainer(training: tokens[...], validation: validationTokens[...], vocabulary: vocabulary,
                                        model: configuration, options: options)
        }
        return try CharacterTrainer(tokens: tokens, vocabulary: vocabulary, model: configuration, options: options)
    }

    private func resumedTrainer(_ files: TrainingFiles, corpus: CorpusText, heldOut: CorpusText?) throws -> CharacterTrainer {
        guard FileManager.default.fileExists(atPath: files.checkpoint) else {
            throw Failure(message: "--resume: \(files.checkpoint) does not exist; train without --resume first")
        }
        let file: SafeTensors.File
        do { file = try SafeTensors.read(path: files.checkpoint) } catch {
            throw Failure(message: "cannot resume from \(files.checkpoint): \(error.description)")
        }
        let loaded = try CharacterModelFile.load(file, source: files.checkpoint)
        guard !model.setsVariants, training.bpttCheckpoint == 0 else {
            throw Failure(message: "--resume continues the model in \(files.checkpoint) as it was built and trained; drop --cell-clip, --dropout, --recurrent-dropout, --peepholes, --layer-norm, --proj and --bptt-checkpoint")
        }
        let saved = try CharacterTrainer.savedOptions(in: file, source: files.checkpoint)
        let heldOut = try heldOut ?? saved.validationFile.map { try readCorpus($0) }
        let tokens = try loaded.vocabulary.encode(corpus.scalars, source: corpus.source)
        let trainer: CharacterTrainer
        if let heldOut {
            let validationTokens = try loaded.vocabulary.encode(heldOut.scalars, source: heldOut.source)
            trainer = try CharacterTrainer(resuming: file, training: tokens[...], validation: validationTokens[...],
                                           source: files.checkpoint)
        } else {
            trainer = try CharacterTrainer(resuming: file, tokens: tokens, source: files.checkpoint)
        }
        let c = loaded.model.configuration
        try MemoryBudget.require(
            MemoryBudget.trainingBytes(vocabulary: c.vocabularySize, embedding: c.embedding, hidden: c.hidden,
                                       layers: c.layers, batch: trainer.options.batch, steps: trainer.options.seqLength,
                                       layerNorm: c.layerNorm ?? false, checkpointInterval: trainer.options.checkpointInterval ?? 0),
            for: "resuming \(files.checkpoint)", hint: "free memory or set a larger LSTM_MEMORY_LIMIT")
        return trainer
    }

    /// The last validation loss a metrics file logged at or before `step` (what the progress line shows on resuming).
    private func lastValidationLoss(in path: String, upTo step: Int) -> Double? {
        guard let bytes = AtomicFile.read(path: path) else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line -> Double? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = object["step"] as? Int, s <= step else { return nil }
            return object["val_loss"] as? Double
        }.last
    }
}
