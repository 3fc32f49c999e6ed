import ArgumentParser
import Foundation
import LSTMKit

/// Set from the SIGINT handler; read between steps.
nonisolated(unsafe) private var interruptRequested: sig_atomic_t = 0

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a character-level language model (Embedding → LSTM → Linear → softmax).",
        discussion: """
        Reads a UTF-8 text (FILE, or standard input with -, or the bundled default corpus when FILE is omitted), \
        holds out the last --val-fraction for validation, and trains with truncated BPTT over --batch stateful \
        streams. Writes CHECKPOINT (safetensors), CHECKPOINT-minus-extension.best.safetensors (best validation \
        loss), .metrics.jsonl and .loss.svg beside it. Ctrl-C saves and stops; --resume continues exactly.
        """
    )

    @Argument(help: "UTF-8 text to learn; - for standard input; omit for the bundled corpus.") var file: String?
    @Option(help: "LSTM hidden size H.") var hidden = 256
    @Option(help: "Number of LSTM layers.") var layers = 2
    @Option(help: "Embedding size.") var embedding = 64
    @Option(help: "Truncated-BPTT window length T.") var seqLength = 64
    @Option(help: "Number of parallel streams (batch size B).") var batch = 32
    @Option(help: "Total optimizer steps (including those of a resumed checkpoint).") var steps: Int?
    @Option(help: "Train for this many passes over the training text instead of --steps.") var epochs: Double?
    @Option(help: "adam, adamw, sgd (momentum 0.9), rmsprop or adagrad.") var optimizer = "adam"
    @Option(help: "Learning rate.") var lr = 2e-3
    @Option(help: "Learning-rate schedule: constant or cosine (decays to lr/10 at the last step).") var schedule = "constant"
    @Option(help: "Warm-up steps for the cosine schedule.") var warmup = 0
    @Option(help: "Clip gradients to this global norm (0: no clipping).") var clip = 5.0
    @Option(help: "Fraction of the text held out for validation.") var valFraction = 0.05
    @Option(help: "Validate and save a checkpoint every N steps.") var evalEvery = 100
    @Option(help: "Without a terminal, print a log line every N steps.") var logEvery = 10
    @Option(help: "Checkpoint file to write (and read with --resume).") var checkpoint = "charmodel.safetensors"
    @Flag(help: "Continue training from --checkpoint.") var resume = false
    @Flag(help: "Overwrite an existing --checkpoint instead of refusing.") var force = false
    @Option(help: "Clip every LSTM cell state to [-C, C] (cuDNN's cell clip); off by default.") var cellClip: Double?
    @Option(help: "Dropout probability between LSTM layers while training (PyTorch's dropout; needs --layers ≥ 2).")
    var dropout = 0.0
    @Option(help: "Variational recurrent dropout in every LSTM layer while training (one mask per sequence, Gal & Ghahramani).")
    var recurrentDropout = 0.0
    @Flag(help: "Peephole connections in every LSTM layer (i and f see the previous cell state, o the new one).")
    var peepholes = false
    @Flag(help: "Layer-normalized LSTM (Ba, Kiros & Hinton): normalize both gate products and the cell in every layer.")
    var layerNorm = false
    @Option(help: "Projected LSTM (LSTMP, PyTorch's proj_size): h has P < --hidden values; 0: none.")
    var proj = 0
    @Option(help: "Memory-lean BPTT: keep the LSTM state every K steps of a window and recompute the rest in backward (bitwise the same model; for long --seq-length); 0: off.")
    var bpttCheckpoint = 0
    @Option(help: "When a loss or gradient is NaN or infinite: stop (keep the last checkpoint) or skip (leave the model unchanged, move to the next window; stops after 10 in a row).")
    var onNonfinite = "stop"
    @Option(help: "Random seed for initialisation.") var seed: UInt64 = 1
    @Option(help: "Threads for the matrix products (default: all cores); any count gives bitwise the same model.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        try reportingFailures {
            try train()
        }
    }

    private func optimizerConfiguration() throws -> OptimizerConfiguration {
        switch optimizer.lowercased() {
        case "adam": return .adam()
        case "adamw": return .adamW()
        case "sgd": return .sgd(momentum: 0.9)
        case "rmsprop": return .rmsProp(alpha: 0.95)
        case "adagrad": return .adagrad()
        default: throw Failure(message: "unknown optimizer '\(optimizer)'; use adam, adamw, sgd, rmsprop or adagrad")
        }
    }

    private func checkSizes() throws {
        for (name, value) in [("--hidden", hidden), ("--layers", layers), ("--embedding", embedding),
                              ("--seq-length", seqLength), ("--batch", batch), ("--eval-every", evalEvery),
                              ("--log-every", logEvery), ("--threads", threads)] {
            guard value >= 1 else { throw Failure(message: "\(name) must be at least 1, got \(value)") }
        }
        if let steps, steps < 1 { throw Failure(message: "--steps must be at least 1, got \(steps)") }
        if let epochs, !(epochs > 0 && epochs.isFinite) { throw Failure(message: "--epochs must be a positive number, got \(epochs)") }
        if steps != nil && epochs != nil { throw Failure(message: "give --steps or --epochs, not both") }
        guard lr > 0, lr.isFinite else { throw Failure(message: "--lr must be a positive number, got \(lr)") }
        if let cellClip, !(cellClip > 0 && cellClip < 1e38) {
            throw Failure(message: "--cell-clip must be a positive number, got \(cellClip)")
        }
        guard dropout >= 0 && dropout < 1 else { throw Failure(message: "--dropout must be in [0, 1), got \(dropout)") }
        guard recurrentDropout >= 0 && recurrentDropout < 1 else {
            throw Failure(message: "--recurrent-dropout must be in [0, 1), got \(recurrentDropout)")
        }
        guard proj >= 0 else { throw Failure(message: "--proj must be 0 (none) or a size below --hidden, got \(proj)") }
        guard bpttCheckpoint >= 0 else { throw Failure(message: "--bptt-checkpoint must be 0 (off) or a number of steps, got \(bpttCheckpoint)") }
        guard dropout == 0 || layers >= 2 else {
            throw Failure(message: "--dropout acts between LSTM layers; use --layers 2 or more, or --dropout 0")
        }
        guard onNonfinite == "stop" || onNonfinite == "skip" else {
            throw Failure(message: "--on-nonfinite must be stop or skip, got \(onNonfinite)")
        }
        guard clip >= 0, clip.isFinite else { throw Failure(message: "--clip must be 0 (off) or a positive number, got \(clip)") }
        guard valFraction >= 0, valFraction < 1 else { throw Failure(message: "--val-fraction must be in [0, 1), got \(valFraction)") }
        guard warmup >= 0 else { throw Failure(message: "--warmup must be 0 or more, got \(warmup)") }
        guard ["constant", "cosine"].contains(schedule) else { throw Failure(message: "unknown --schedule '\(schedule)'; use constant or cosine") }
        // A model whose parameters alone would not fit in memory is refused before anything is allocated.
        // In Double: a huge --hidden would overflow Int.
        let perLayer = 4 * Double(hidden) * (Double(max(embedding, hidden)) + Double(hidden) + 2)
        let parameterBytes = 4.0 * Double(layers) * perLayer * 4  // weights, gradients, two optimizer states
        guard parameterBytes < 8e9 else {
            throw Failure(message: "--hidden \(hidden) with --layers \(layers) needs about \(Int(parameterBytes / 1e9)) GB for parameters and optimizer state; use a smaller model")
        }
    }

    /// Fails early if the checkpoint cannot be written, so no training time is lost.
    private func checkWritable(_ paths: CheckpointPaths) throws {
        let folder = URL(fileURLWithPath: paths.checkpoint).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(message: "cannot write checkpoint \(paths.checkpoint): folder \(folder) does not exist")
        }
        guard access(folder, W_OK) == 0 else {
            throw Failure(message: "cannot write checkpoint \(paths.checkpoint): folder \(folder) is not writable")
        }
        if FileManager.default.fileExists(atPath: paths.checkpoint), access(paths.checkpoint, W_OK) != 0 {
            throw Failure(message: "cannot write checkpoint \(paths.checkpoint): the file is not writable")
        }
    }

    private func train() throws {
        try checkSizes()
        let paths = CheckpointPaths(checkpoint)
        try checkWritable(paths)
        if !resume && !force && FileManager.default.fileExists(atPath: paths.checkpoint) {
            throw Failure(message: "\(paths.checkpoint) already exists; pass --resume to continue it, --force to overwrite it, or choose another --checkpoint")
        }
        let corpus = try readCorpus(file)
        // A run killed while writing (SIGKILL, power loss) leaves its temporary file; the checkpoint itself is intact.
        for path in [paths.checkpoint, paths.best, paths.plot] { AtomicFile.removeStaleTemporaries(of: path) }

        let trainer: CharacterTrainer
        if resume {
            guard FileManager.default.fileExists(atPath: paths.checkpoint) else {
                throw Failure(message: "--resume: \(paths.checkpoint) does not exist; train without --resume first")
            }
            let file: SafeTensors.File
            do { file = try SafeTensors.read(path: paths.checkpoint) } catch {
                throw Failure(message: "cannot resume from \(paths.checkpoint): \(error.description)")
            }
            let loaded = try CharacterModelFile.load(file, source: paths.checkpoint)
            let c = loaded.model.configuration
            guard cellClip == nil, dropout == 0, recurrentDropout == 0, !peepholes, !layerNorm, proj == 0, bpttCheckpoint == 0 else {
                throw Failure(message: "--resume continues the model in \(paths.checkpoint) as it was built and trained; drop --cell-clip, --dropout, --recurrent-dropout, --peepholes, --layer-norm, --proj and --bptt-checkpoint")
            }
            let tokens = try loaded.vocabulary.encode(corpus.scalars, source: corpus.source)
            trainer = try CharacterTrainer(resuming: file, tokens: tokens, source: paths.checkpoint)
            try MemoryBudget.require(
                MemoryBudget.trainingBytes(vocabulary: c.vocabularySize, embedding: c.embedding, hidden: c.hidden,
                                           layers: c.layers, batch: trainer.options.batch, steps: trainer.options.seqLength,
                                           layerNorm: c.layerNorm ?? false, checkpointInterval: trainer.options.checkpointInterval ?? 0),
                for: "resuming \(paths.checkpoint)", hint: "free memory or set a larger LSTM_MEMORY_LIMIT")
        } else {
            let vocabulary = try Vocabulary(building: corpus.scalars)
            try MemoryBudget.require(
                MemoryBudget.trainingBytes(vocabulary: vocabulary.count, embedding: embedding, hidden: hidden,
                                           layers: layers, batch: batch, steps: seqLength, layerNorm: layerNorm,
                                           checkpointInterval: bpttCheckpoint),
                for: "training --hidden \(hidden) --layers \(layers) --batch \(batch) --seq-length \(seqLength)",
                hint: "use a smaller model, batch or window")
            let tokens = try vocabulary.encode(corpus.scalars, source: corpus.source)
            var options = TrainingOptions()
            options.seqLength = seqLength
            options.batch = batch
            options.optimizer = try optimizerConfiguration()
            options.learningRate = lr
            options.clip = clip
            options.validationFraction = valFraction
            options.seed = seed
            options.checkpointInterval = bpttCheckpoint > 0 ? bpttCheckpoint : nil
            trainer = try CharacterTrainer(
                tokens: tokens, vocabulary: vocabulary,
                model: .init(vocabularySize: vocabulary.count, embedding: embedding, hidden: hidden, layers: layers,
                             cellClip: cellClip, dropout: dropout > 0 ? dropout : nil,
                             recurrentDropout: recurrentDropout > 0 ? recurrentDropout : nil,
                             peepholes: peepholes ? true : nil, layerNorm: layerNorm ? true : nil,
                             projection: proj > 0 ? proj : nil),
                options: options)
        }
        trainer.threads = threads
        let totalSteps = steps ?? epochs.map { max(1, Int(($0 * Double(trainer.windowsPerEpoch)).rounded())) } ?? 1000
        guard totalSteps > trainer.step else {
            throw Failure(message: "\(paths.checkpoint) is already at step \(trainer.step); give a larger --steps to continue")
        }
        let options = trainer.options
        let schedule: LearningRateSchedule = schedule == "cosine"
            ? .cosine(warmup: warmup, total: totalSteps, minimum: options.learningRate / 10) : options.schedule
        let report = try TrainingReport(paths: paths, totalSteps: totalSteps, startStep: trainer.step,
                                        logEvery: logEvery, resuming: resume)
        let c = trainer.model.configuration
        report.note("""
            \(resume ? "resuming at step \(trainer.step)" : "training") on \(corpus.source): \(trainer.trainTokens.count) training and \(trainer.validationTokens.count) validation characters, vocabulary \(c.vocabularySize)
            model: embedding \(c.embedding), \(c.layers)×LSTM(\(c.hidden))\(trainer.model.lstm.variantDescription), \(trainer.model.layout.count) parameters; batch \(options.batch) × seq \(options.seqLength), \(options.optimizer.name) lr \(options.learningRate), \(totalSteps) steps (\(trainer.windowsPerEpoch) per epoch), \(threads) thread\(threads == 1 ? "" : "s")
            """)

        // Ctrl-C (SIGINT) and SIGTERM finish the current step, save, and exit. A parent may have started us with
        // signals blocked (a blocked mask is inherited across exec), so unblock them too.
        for sig in [SIGINT, SIGTERM] { signal(sig) { _ in interruptRequested = 1 } }
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        defer { for sig in [SIGINT, SIGTERM] { signal(sig, SIG_DFL) } }

        func save() throws {
            do { try SafeTensors.write(trainer.checkpoint(), path: paths.checkpoint) } catch {
                throw Failure(message: "could not save checkpoint: \(String(describing: error))")
            }
        }
        func validate() throws {
            guard let loss = trainer.validationLoss() else { return }
            let best = trainer.bestValidationLoss.map { loss < $0 } ?? true
            if best {
                trainer.bestValidationLoss = loss
                do { try SafeTensors.write(trainer.checkpoint(), path: paths.best) } catch {
                    throw Failure(message: "could not save the best checkpoint: \(String(describing: error))")
                }
            }
            report.validated(step: trainer.step, loss: loss, best: best)
        }

        let tokensPerStep = Double(options.seqLength * options.batch)
        // Throughput over the last ≤ 20 steps, timing the steps alone (not validation or saving).
        var recent: [Double] = []
        var tokensPerSecond = 0.0
        var skipped = 0, skippedInARow = 0
        while trainer.step < totalSteps {
            if interruptRequested != 0 {
                try save()
                report.note("stopped by a signal at step \(trainer.step); checkpoint saved to \(paths.checkpoint); continue with --resume")
                throw ExitCode(130)
            }
            let learningRate = schedule.learningRate(base: options.learningRate, step: trainer.step)
            let stepStart = Date()
            do {
                let result = try trainer.trainStep(schedule: schedule)
                skippedInARow = 0
                recent.append(Date().timeIntervalSince(stepStart))
                if recent.count > 20 { recent.removeFirst() }
                tokensPerSecond = Double(recent.count) * tokensPerStep / max(recent.reduce(0, +), 1e-9)
                report.trained(step: trainer.step, loss: result.loss, gradientNorm: result.gradientNorm,
                               learningRate: learningRate, tokensPerSecond: tokensPerSecond)
            } catch .nonFinite(let what) where onNonfinite == "skip" && skippedInARow < 10 {
                // The loss or a gradient was not finite; the model is untouched.
                skippedInARow += 1
                skipped += 1
                trainer.skipWindow()
                report.note("non-finite value: \(what); step skipped, the model is unchanged (\(skipped) skipped so far)")
            } catch {
                report.note("")
                let why = skippedInARow >= 10 ? " (after 10 steps in a row were skipped)" : ""
                throw Failure(message: "\(error.description)\(why); training stopped, the last checkpoint \(paths.checkpoint) is kept")
            }
            if trainer.step % evalEvery == 0 || trainer.step == totalSteps {
                try validate()
                try save()
            }
        }
        report.note("done: step \(trainer.step); checkpoint \(paths.checkpoint), best \(paths.best), metrics \(paths.metrics), plot \(paths.plot)")
    }
}
