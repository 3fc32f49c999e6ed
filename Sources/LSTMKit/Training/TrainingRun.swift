import Foundation

/// The files a training run writes beside each other: the latest checkpoint, the best one (lowest validation
/// loss), the metrics (one JSON object per line) and the loss plot (SVG).
public struct TrainingFiles: Sendable, Hashable {
    /// The latest checkpoint, written at every validation, at the end, and when a stop is requested.
    public var checkpoint: String
    /// The checkpoint with the lowest validation loss so far.
    public var best: String
    /// The metrics file: one JSON object per line for each step and each validation.
    public var metrics: String
    /// The SVG plot of training and validation loss, redrawn after every validation.
    public var plot: String

    /// `NAME.safetensors` → `NAME.best.safetensors`, `NAME.metrics.jsonl`, `NAME.loss.svg`.
    public init(checkpoint: String) {
        self.checkpoint = checkpoint
        let base = checkpoint.hasSuffix(".safetensors") ? String(checkpoint.dropLast(".safetensors".count)) : checkpoint
        best = base + ".best.safetensors"
        metrics = base + ".metrics.jsonl"
        plot = base + ".loss.svg"
    }
}

/// What `Trainer.fit` reports as it goes.
public enum TrainingEvent: Sendable {
    /// A step was trained: steps completed, its mean loss, the gradient norm before clipping, the learning rate,
    /// and the throughput in tokens (or steps) per second over the last 20 steps.
    case trained(step: Int, loss: Double, gradientNorm: Double, learningRate: Double, tokensPerSecond: Double)
    /// A validation ran after `step` steps: its mean `loss`, and `best` when that is the lowest so far (the
    /// best checkpoint is then written, when there are files).
    case validated(step: Int, loss: Double, best: Bool)
    /// A step whose loss or gradient was not finite was skipped (`NonFinitePolicy.skip`).
    case skipped(step: Int, reason: String, skippedSoFar: Int)
}

/// How `Trainer.fit` runs.
public struct FitOptions: Sendable {
    /// Train until this many steps are done (counting those of a resumed checkpoint).
    public var steps: Int
    /// The learning-rate schedule of this run; the trainer's own when nil.
    public var schedule: LearningRateSchedule?
    /// Validate, and write the checkpoint, every this many steps and at the end.
    public var validateEvery: Int
    /// What to do when a step's loss or gradient is not finite.
    public var onNonFinite: NonFinitePolicy
    /// Where to write checkpoints, metrics and the plot; nil writes nothing.
    public var files: TrainingFiles?
    /// The loss's unit on the plot, e.g. "nats per character".
    public var lossUnit: String
    /// Also log the validation loss in bits (`val_bpc`), for language models.
    public var logsBits: Bool
    /// Early stopping: end after this many validations in a row without a better loss (nil: never).
    public var patience: Int?

    /// Creates options; each argument sets the property of the same name. By default the run validates every
    /// 100 steps, stops on a non-finite step, writes no files and never stops early.
    public init(steps: Int, schedule: LearningRateSchedule? = nil, validateEvery: Int = 100,
                onNonFinite: NonFinitePolicy = .stop, files: TrainingFiles? = nil, lossUnit: String = "mean loss",
                logsBits: Bool = false, patience: Int? = nil) {
        self.patience = patience
        self.steps = steps
        self.schedule = schedule
        self.validateEvery = validateEvery
        self.onNonFinite = onNonFinite
        self.files = files
        self.lossUnit = lossUnit
        self.logsBits = logsBits
    }
}

extension Trainer {
    /// How a `fit` ended.
    public enum Outcome: Sendable, Equatable {
        /// Every one of the asked-for `steps` was trained.
        case finished
        /// `stopRequested` returned true; the checkpoint was saved first.
        case stopped
        /// `patience` validations in a row found no better loss; the checkpoint was saved.
        case stoppedEarly
    }

    /// Trains to `options.steps`: validates every `validateEvery` steps (writing the best checkpoint when the loss
    /// improves), writes the checkpoint then and at the end, appends to the metrics file and redraws the plot. The
    /// checkpoints and the plot are written atomically. `stopRequested` is asked before every step; when it says
    /// yes the checkpoint is saved and `.stopped` returned. A non-finite step stops with the error (nothing saved
    /// after it), or with `.skip` is skipped, at most 10 in a row.
    public func fit(_ options: FitOptions, progress: (TrainingEvent) -> Void = { _ in },
                    stopRequested: () -> Bool = { false }) throws(LSTMKitError) -> Outcome {
        guard options.steps > step else {
            throw .invalidConfiguration("the trainer is already at step \(step); ask for more steps to continue")
        }
        guard options.validateEvery >= 1 else {
            throw .invalidConfiguration("validateEvery must be at least 1, got \(options.validateEvery)")
        }
        // With several processes, process 0 alone writes files; all of them see the progress events, take part
        // in building a checkpoint (it gathers the carried state) and in deciding to stop.
        let writes = group.rank == 0
        let log = try options.files.flatMap { files throws(LSTMKitError) in
            writes ? try TrainingLog(files: files, resumingAt: step, lossUnit: options.lossUnit, logsBits: options.logsBits) : nil
        }
        func save(_ path: String) throws(LSTMKitError) {
            let file = try checkpoint()
            var failure: String?
            if writes {
                do { try SafeTensors.write(file, path: path) } catch { failure = "could not save checkpoint \(path): \(error)" }
            }
            if let message = try group.firstFailure(failure) { throw .invalidInput(message) }
        }
        let tokensPerStep = Double(source.stepsPerBatch)
        var recent: [Double] = []   // the last ≤ 20 steps' times, not counting validation or saving
        var skipped = 0, skippedInARow = 0
        while step < options.steps {
            if try stopAgreed(stopRequested()) {
                if let files = options.files { try save(files.checkpoint) }
                return .stopped
            }
            let started = Date()
            do {
                let r = try trainStep(schedule: options.schedule)
                skippedInARow = 0
                recent.append(Date().timeIntervalSince(started))
                if recent.count > 20 { recent.removeFirst() }
                let tokensPerSecond = Double(recent.count) * tokensPerStep / max(recent.reduce(0, +), 1e-9)
                log?.trained(step: step, loss: r.loss, gradientNorm: r.gradientNorm, learningRate: r.learningRate,
                             tokensPerSecond: tokensPerSecond)
                progress(.trained(step: step, loss: r.loss, gradientNorm: r.gradientNorm, learningRate: r.learningRate,
                                  tokensPerSecond: tokensPerSecond))
            } catch .nonFinite(let what) where options.onNonFinite == .skip {
                guard skippedInARow < 10 else {
                    throw .nonFinite("\(what) (after 10 steps in a row were skipped)")
                }
                skippedInARow += 1
                skipped += 1
                skipBatch()
                progress(.skipped(step: step, reason: what, skippedSoFar: skipped))
            }
            if step % options.validateEvery == 0 || step == options.steps {
                if let loss = try validationLoss() {
                    let best = bestValidationLoss.map { loss < $0 } ?? true
                    if best {
                        bestValidationLoss = loss
                        if let files = options.files { try save(files.best) }
                    }
                    log?.validated(step: step, loss: loss)
                    progress(.validated(step: step, loss: loss, best: best))
                    validationsWithoutImprovement = best ? 0 : validationsWithoutImprovement + 1
                }
                if let files = options.files { try save(files.checkpoint) }
                if let patience = options.patience, validationsWithoutImprovement >= patience, step < options.steps {
                    return .stoppedEarly
                }
            }
        }
        return .finished
    }
}

/// The metrics file (JSON lines: `step`, `train_loss`, `grad_norm`, `lr`, `tokens_per_second`; and `step`,
/// `val_loss` (and `val_bpc`)) and the SVG plot of training and validation loss against step.
public final class TrainingLog {
    struct Point { var step: Int; var value: Double }
    let files: TrainingFiles
    let lossUnit: String
    let logsBits: Bool
    private var train: [Point] = []
    private var validation: [Point] = []
    private var metrics: FileHandle?

    /// Opens the metrics file; resuming at step n keeps its lines up to n (those an interrupted run wrote after
    /// its last checkpoint are dropped) and the plot's history with them.
    public init(files: TrainingFiles, resumingAt step: Int, lossUnit: String, logsBits: Bool) throws(LSTMKitError) {
        self.files = files
        self.lossUnit = lossUnit
        self.logsBits = logsBits
        var kept = ""
        if step > 0, let bytes = AtomicFile.read(path: files.metrics) {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let s = object["step"] as? Int, s <= step else { continue }
                kept += line + "\n"
                if let loss = object["train_loss"] as? Double { train.append(Point(step: s, value: loss)) }
                if let loss = object["val_loss"] as? Double { validation.append(Point(step: s, value: loss)) }
            }
        }
        guard FileManager.default.createFile(atPath: files.metrics, contents: Data(kept.utf8)),
              let handle = FileHandle(forWritingAtPath: files.metrics) else {
            throw .invalidInput("cannot write the metrics file \(files.metrics)")
        }
        handle.seekToEndOfFile()
        metrics = handle
    }

    deinit { try? metrics?.close() }

    /// The last validation loss in the kept history.
    public var lastValidationLoss: Double? { validation.last?.value }

    func trained(step: Int, loss: Double, gradientNorm: Double, learningRate: Double, tokensPerSecond: Double) {
        write(["step": step, "train_loss": loss, "grad_norm": gradientNorm, "lr": learningRate,
               "tokens_per_second": tokensPerSecond.rounded()])
        train.append(Point(step: step, value: loss))
    }

    func validated(step: Int, loss: Double) {
        validation.append(Point(step: step, value: loss))
        write(logsBits ? ["step": step, "val_loss": loss, "val_bpc": loss / log(2.0)] : ["step": step, "val_loss": loss])
        writePlot()
    }

    private func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        metrics?.write(data + Data("\n".utf8))
    }

    /// Train and validation loss against step, as a standalone SVG a browser shows.
    func writePlot() {
        let width = 720.0, height = 420.0, left = 64.0, right = 16.0, top = 36.0, bottom = 48.0
        let all = train + validation
        guard let maxStep = all.map(\.step).max(), var high = all.map(\.value).max(), var low = all.map(\.value).min() else { return }
        if high - low < 1e-9 { high += 0.5; low -= 0.5 }
        low = max(0, low - 0.05 * (high - low))
        let x = { (s: Int) in left + (width - left - right) * Double(s) / Double(max(maxStep, 1)) }
        let y = { (v: Double) in top + (height - top - bottom) * (1 - (v - low) / (high - low)) }
        func f(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(width / 2))" y="20" text-anchor="middle" font-size="14">loss (\(xmlEscaped(lossUnit))) — \(xmlEscaped(URL(fileURLWithPath: files.checkpoint).lastPathComponent))</text>

        """
        for k in 0...4 {
            let v = low + (high - low) * Double(k) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(y(v))\" y2=\"\(y(v))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(f(v, 2))</text>\n"
            let s = Int(Double(maxStep) * Double(k) / 4)
            svg += "<text x=\"\(x(s))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(s)</text>\n"
        }
        svg += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height - 8))\" text-anchor=\"middle\">step</text>\n"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"none\" stroke=\"#888\"/>\n"
        func polyline(_ points: [Point], _ colour: String) -> String {
            let coordinates = points.map { "\(f(x($0.step), 1)),\(f(y($0.value), 1))" }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(coordinates)\"/>\n"
        }
        svg += polyline(train, "#1f77b4")
        svg += polyline(validation, "#d62728")
        for p in validation { svg += "<circle cx=\"\(f(x(p.step), 1))\" cy=\"\(f(y(p.value), 1))\" r=\"3\" fill=\"#d62728\"/>\n" }
        svg += "<rect x=\"\(width - right - 150)\" y=\"\(top + 8)\" width=\"140\" height=\"44\" fill=\"white\" stroke=\"#ccc\"/>\n"
        svg += "<line x1=\"\(width - right - 140)\" x2=\"\(width - right - 116)\" y1=\"\(top + 22)\" y2=\"\(top + 22)\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"\(width - right - 110)\" y=\"\(top + 26)\">train</text>\n"
        svg += "<line x1=\"\(width - right - 140)\" x2=\"\(width - right - 116)\" y1=\"\(top + 40)\" y2=\"\(top + 40)\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"\(width - right - 110)\" y=\"\(top + 44)\">validation</text>\n"
        svg += "</svg>\n"
        try? AtomicFile.write(Array(svg.utf8), to: files.plot)
    }
}

func xmlEscaped(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
