import Foundation

/// How a `Forecaster` is built and trained; saved with it.
public struct ForecasterConfiguration: Sendable, Hashable, Codable {
    /// H: steps forecast at once (direct multi-horizon, MQ-RNN style).
    public var horizon: Int
    /// L: steps of history each forecast reads.
    public var lookback: Int
    /// m: the season length (1 for none); drives the anchor the network corrects, the calendar inputs and MASE.
    public var season: Int
    /// The quantiles predicted; 0.5 (the point forecast) is always among them.
    public var quantiles: [Double]
    /// Hidden units of each LSTM layer.
    public var hiddenSize: Int
    /// Stacked LSTM layers in each network.
    public var layers: Int
    /// Optimizer steps.
    public var steps: Int
    /// Training windows per optimizer step.
    public var batch: Int
    /// The learning rate each member trains with.
    public var learningRate: Double
    /// Seeds member 0's initial weights and window order; the other members' seeds derive from it.
    public var seed: UInt64
    /// Validate on the held-out window every this many steps; stop after `patience` validations without a better
    /// loss (nil: never stop early).
    public var validateEvery: Int
    /// Validations without a better loss after which a member stops early (nil: never stops early).
    public var patience: Int?
    /// Model log(y) instead of y: nil decides per series (log when every training value is positive).
    public var logTransform: Bool?
    /// sin/cos of the position in the season as inputs (known for every step, past and future).
    public var calendar: Bool
    /// Seasons averaged into the anchor the network corrects (1: seasonal naive).
    public var anchorSeasons: Int = 3
    /// Networks trained from different seeds; the forecast combines them quantile by quantile: the mean without the
    /// highest and the lowest (a trimmed mean; the plain mean with 2 members or fewer).
    public var members: Int = 5

    /// Creates a configuration; each argument sets the property of the same name.
    ///
    /// `quantiles` gains 0.5 if it lacks it and is sorted with duplicates removed; `anchorSeasons` (3) and
    /// `members` (5) keep their defaults. The values are checked when a `Forecaster` is made from it.
    public init(horizon: Int, lookback: Int, season: Int, quantiles: [Double] = [0.1, 0.5, 0.9], hiddenSize: Int = 64,
                layers: Int = 1, steps: Int = 400, batch: Int = 32, learningRate: Double = 3e-3, seed: UInt64 = 1,
                validateEvery: Int = 20, patience: Int? = 6, logTransform: Bool? = nil, calendar: Bool = true) {
        self.horizon = horizon
        self.lookback = lookback
        self.season = season
        self.quantiles = Array(Set(quantiles + [0.5])).sorted()
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.steps = steps
        self.batch = batch
        self.learningRate = learningRate
        self.seed = seed
        self.validateEvery = validateEvery
        self.patience = patience
        self.logTransform = logTransform
        self.calendar = calendar
    }

    /// Defaults for series of `frequency` whose shortest has `length` points: M4's horizon, a season from the
    /// calendar, and a lookback of two horizons or two seasons, shortened to leave training windows.
    public static func defaults(frequency: Frequency, shortest length: Int, horizon: Int? = nil, season: Int? = nil,
                                lookback: Int? = nil) -> ForecasterConfiguration {
        let m = max(1, season ?? frequency.defaultSeason)
        let H = max(1, horizon ?? frequency.defaultHorizon)
        var L = lookback ?? max(2 * H, 2 * m, 8)
        if lookback == nil {
            // Keep at least max(8, a quarter of the history) training windows: L ≤ n − 2H − windows + 1.
            let windows = max(8, length / 4)
            L = max(max(m, H, 4), min(L, length - 2 * H - windows + 1))
        }
        return ForecasterConfiguration(horizon: H, lookback: L, season: m)
    }
}

/// How one series is put on the network's scale, fitted on its training part.
public struct SeriesScaling: Sendable, Hashable, Codable {
    /// Work with log(y).
    public var log: Bool
    /// s: the in-sample seasonal-naive MAE of the (log) training values; residuals are in units of s.
    public var scale: Double
    /// Per covariate, its mean over the training part, subtracted from its inputs.
    public var covariateMeans: [Double]
    /// Per covariate, its standard deviation over the training part (1 when constant); inputs are divided by it.
    public var covariateDeviations: [Double]
}

/// A forecast of one series: time stamps, and for every quantile its values.
public struct Forecast: Sendable, Hashable {
    /// The name of the series forecast.
    public var name: String
    /// The time stamps of the forecast steps, as ordinals (`TimeStamps`), one per step.
    public var times: [Int]
    /// The quantile levels, ascending; `values` has one row per level.
    public var quantiles: [Double]
    /// values[k][h]: quantile k at step h; non-decreasing in k at every step.
    public var values: [[Double]]

    /// The median (the point forecast).
    public var median: [Double] { values[quantiles.firstIndex(of: 0.5) ?? quantiles.count / 2] }
}

/// A global LSTM forecaster over one or many series (DeepAR's per-series scaling, MQ-RNN's direct multi-horizon
/// quantiles): each forecast reads the last L steps and predicts the next H at several quantiles at once.
///
/// ```
/// z_t   = log y_t (when every training value is positive) or y_t
/// b_h   = level + the seasonal shape at h averaged over the last k seasons   the anchor (k = anchorSeasons,
///         as many as the context holds; k = 1: z_{T+h−m⌈h/m⌉}, seasonal naive; m = 1: z_T, naive)
/// input = [(z_t − level)/s, sin, cos of the season phase, covariates]   t = T−L+1 … T, level = mean of the last m z
/// ẑ_{T+h}(q) = b_h + s · r_h(q),  r = Linear(h_T of the LSTM)        (H × quantiles, pinball loss)
/// ```
/// The head starts at zero, so an untrained forecaster is the anchor forecast and training learns the
/// correction (the ES-RNN idea: the network models what a classic method leaves). Scaling is fitted on the
/// training part of every series; the last H points of each are held out for validation (best weights, early
/// stopping).
public final class Forecaster {
    /// (`steps` follows the last `fit`: a resumed run to more steps records its new total.)
    public private(set) var configuration: ForecasterConfiguration
    /// The ensemble's networks (`configuration.members` of them), each from its own seed.
    public let models: [SequenceModel<Float>]
    /// The spacing of the series it forecasts; forecast time stamps continue it.
    public let frequency: Frequency
    /// How the series' time stamps are written; forecast time stamps are computed in it.
    public let format: TimeFormat
    /// The covariates each series must carry at every step, in this order.
    public let covariateNames: [String]
    /// Per series name.
    public private(set) var scalings: [String: SeriesScaling]
    /// The validation loss of the weights kept (the best seen), after `fit`.
    public private(set) var validationLoss: Double?
    /// The processes `fit` trains over, and the gradient shards of every step (``Trainer/distribute(over:shards:)``);
    /// process 0 alone writes files.
    public var parallel: (group: ProcessGroup, shards: Int) = (.single, 1)
    /// Where the series were read from, so a later file is read the same way (saved with the forecaster).
    public var columns: ForecastColumns?

    /// The name of the forecaster file format, `lstmkit.forecaster`.
    public static let fileFormat = "lstmkit.forecaster"

    /// Creates an untrained forecaster for series of `frequency` whose stamps are written in `format`.
    ///
    /// It holds `configuration.members` networks reading the value, the calendar inputs and the `covariates`;
    /// their heads start at zero, so until `fit` each forecasts the anchor.
    /// - Throws: `LSTMKitError.invalidConfiguration` when the horizon, season, lookback, a quantile, steps,
    ///   batch, validateEvery or members is out of range.
    public init(_ configuration: ForecasterConfiguration, frequency: Frequency, format: TimeFormat,
                covariates: [String] = []) throws(LSTMKitError) {
        let c = configuration
        guard c.horizon >= 1 else { throw .invalidConfiguration("the horizon must be at least 1 step, got \(c.horizon)") }
        guard c.season >= 1 else { throw .invalidConfiguration("the season must be at least 1, got \(c.season)") }
        guard c.lookback >= max(1, c.season) else {
            throw .invalidConfiguration("the lookback must be at least one season (\(c.season)) and 1 step, got \(c.lookback)")
        }
        guard c.quantiles.allSatisfy({ $0 > 0 && $0 < 1 }) else {
            throw .invalidConfiguration("quantiles must be between 0 and 1, got \(c.quantiles)")
        }
        guard c.steps >= 1, c.batch >= 1, c.validateEvery >= 1, c.members >= 1 else {
            throw .invalidConfiguration("steps, batch, validateEvery and members must be at least 1")
        }
        self.configuration = c
        self.frequency = frequency
        self.format = format
        covariateNames = covariates
        scalings = [:]
        let features = 1 + (c.calendar && c.season > 1 ? 2 : 0) + covariates.count
        var models: [SequenceModel<Float>] = []
        for k in 0..<c.members {
            let model = try SequenceModel<Float>(input: .features(features), lstm: LSTMConfiguration(hiddenSize: c.hiddenSize, layers: c.layers),
                                                 head: .lastStep(outputs: c.horizon), loss: .quantile(c.quantiles),
                                                 seed: Self.seed(c.seed, member: k))
            for spec in [model.head.weight] + [model.head.bias].compactMap({ $0 }) {
                for e in spec.range { model.parameters.storage[e] = 0 }
            }
            models.append(model)
        }
        self.models = models
    }

    var inputWidth: Int { 1 + (configuration.calendar && configuration.season > 1 ? 2 : 0) + covariateNames.count }

    /// Member k's seed: the configuration's for member 0, then a fixed stride.
    static func seed(_ seed: UInt64, member k: Int) -> UInt64 { seed &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15 }

    /// Threads for every member's products; any count gives bitwise the same forecasts.
    public var threads: Int {
        get { models[0].threads }
        set { for m in models { m.threads = newValue } }
    }

    // MARK: Windows

    /// The forecast the network corrects, from the context (z units): the last season's mean level plus the
    /// seasonal shape averaged over the last k seasons (k = `seasons`, as many as the context holds); for k = 1 the
    /// seasonal-naive forecast; for m = 1 the last value (naive: cyclic yearly series lose with a smoothed level).
    static func anchor(_ context: [Double], horizon H: Int, season m: Int, seasons: Int) -> [Double] {
        let L = context.count
        guard m > 1 else { return [Double](repeating: context[L - 1], count: H) }
        let k = max(1, min(seasons, L / m))
        var shape = [Double](repeating: 0, count: m)
        var lastLevel = 0.0
        for j in 1...k {
            let block = context[(L - j * m)..<(L - (j - 1) * m)]
            let mean = block.reduce(0, +) / Double(m)
            if j == 1 { lastLevel = mean }
            for (p, v) in block.enumerated() { shape[p] += (v - mean) / Double(k) }
        }
        return (0..<H).map { lastLevel + shape[$0 % m] }
    }

    /// Fits the scaling of a series on its first `trainingCount` values.
    func fitScaling(_ series: TimeSeries, trainingCount n: Int) -> SeriesScaling {
        let values = Array(series.values.prefix(n))
        let log = configuration.logTransform ?? values.allSatisfy { $0 > 0 }
        let z = log ? values.map { Foundation.log($0) } : values
        var s = ForecastAccuracy.scale(z, season: configuration.season)
        if !(s > 1e-12) || !s.isFinite { s = max(1e-12, (z.map(abs).max() ?? 1) * 0.01, 1e-6) }
        let C = covariateNames.count
        var means = [Double](repeating: 0, count: C), deviations = [Double](repeating: 1, count: C)
        for j in 0..<C {
            let column = series.covariates.prefix(n).map { $0[j] }
            let mean = column.reduce(0, +) / Double(max(column.count, 1))
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(column.count, 1))
            means[j] = mean
            deviations[j] = variance > 1e-24 ? variance.squareRoot() : 1
        }
        return SeriesScaling(log: log, scale: s, covariateMeans: means, covariateDeviations: deviations)
    }

    func transformed(_ values: [Double], _ scaling: SeriesScaling) -> [Double] {
        scaling.log ? values.map { Foundation.log(max($0, 1e-300)) } : values
    }

    /// The network's input for the forecast made after step `origin − 1` (the L steps before `origin`), and the
    /// baseline b_h of each of the next H steps, in z units.
    func window(_ series: TimeSeries, z: [Double], origin o: Int, scaling: SeriesScaling) -> (input: [[Float]], baseline: [Double]) {
        let c = configuration, L = c.lookback, m = c.season, H = c.horizon
        let context = Array(z[(o - L)..<o])
        let levelSpan = min(L, max(m, 1))
        let level = context.suffix(levelSpan).reduce(0, +) / Double(levelSpan)
        var input: [[Float]] = []
        input.reserveCapacity(L)
        for t in (o - L)..<o {
            var step: [Float] = [Float((z[t] - level) / scaling.scale)]
            if c.calendar && m > 1 {
                let phase = Double(TimeStamps.phase(series.times[t], frequency: frequency, format: format, season: m))
                step += [Float(sin(2 * .pi * phase / Double(m))), Float(cos(2 * .pi * phase / Double(m)))]
            }
            for j in 0..<covariateNames.count {
                step.append(Float((series.covariates[t][j] - scaling.covariateMeans[j]) / scaling.covariateDeviations[j]))
            }
            input.append(step)
        }
        return (input, Self.anchor(context, horizon: H, season: m, seasons: configuration.anchorSeasons))
    }

    /// Training windows (every origin whose targets end before the held-out tail) and one validation window per
    /// series (its last H steps).
    func examples(_ series: [TimeSeries]) throws(LSTMKitError) -> (train: [SequenceDataset.Example], validation: [SequenceDataset.Example]) {
        let c = configuration, L = c.lookback, H = c.horizon
        var train: [SequenceDataset.Example] = [], validation: [SequenceDataset.Example] = []
        for s in series {
            let n = s.values.count
            guard n >= L + 2 * H else {
                throw .invalidInput("series \(s.name) has \(n) points, but training needs at least lookback + 2 × horizon = \(L) + 2 × \(H) = \(L + 2 * H) (one window to learn from and the last \(H) held out); give a longer series, or a smaller lookback or horizon")
            }
            guard let scaling = scalings[s.name] else { continue }
            let z = transformed(s.values, scaling)
            func example(_ o: Int) -> SequenceDataset.Example {
                let (input, baseline) = window(s, z: z, origin: o, scaling: scaling)
                let target = (0..<H).map { Float((z[o + $0] - baseline[$0]) / scaling.scale) }
                return SequenceDataset.Example(input: .features(input), target: .values(target))
            }
            for o in L...(n - 2 * H) { train.append(example(o)) }
            validation.append(example(n - H))
        }
        return (train, validation)
    }

    // MARK: Training

    /// What `fit` measured.
    public struct FitReport: Sendable {
        /// The most steps any member has taken (counting those of a resumed checkpoint).
        public var steps: Int
        /// The members' best validation losses averaged over the ensemble (pinball loss on the scaled residuals).
        public var validationLoss: Double?
        /// The held-out window of every series: the forecaster's accuracy (median), naive's and seasonal naive's.
        public var heldOut: [(name: String, model: ForecastAccuracy, naive: ForecastAccuracy, seasonalNaive: ForecastAccuracy)]
        /// The training windows the series gave; every member trains on the same ones.
        public var trainingWindows: Int
        /// A stop request ended it before every member reached its steps (the checkpoint holds where they were).
        public var stopped: Bool
    }

    /// Fits the scaling of every series not yet seen (on all but its last H points).
    func fitScalings(_ series: [TimeSeries]) throws(LSTMKitError) {
        guard !series.isEmpty else { throw .invalidInput("no series to train on") }
        let H = configuration.horizon
        for s in series where scalings[s.name] == nil {
            guard s.values.count > H else { continue }
            scalings[s.name] = fitScaling(s, trainingCount: s.values.count - H)
        }
    }

    /// The trainer of member k: the windows of `series`, shuffled from the member's seed.
    func trainer(for series: [TimeSeries], member k: Int) throws(LSTMKitError) -> Trainer<SequenceDataset> {
        try fitScalings(series)
        let (train, validation) = try examples(series)
        let seed = Self.seed(configuration.seed, member: k)
        let data = try SequenceDataset(train, validation: validation, batch: configuration.batch, seed: seed)
        return try Trainer(model: models[k], source: data,
                           options: TrainerOptions(learningRate: configuration.learningRate, clip: 1, seed: seed))
    }

    /// Trains every member on `series` (the last H points of each held out), keeping each member's weights with the
    /// best validation loss (its untrained start, the anchor, included). With `files`, writes the checkpoint (every
    /// member's training state, after each member and when stopped) and the best forecaster; `resume` continues
    /// `files.checkpoint`. `steps` (the configuration's when nil) is each member's total.
    @discardableResult
    public func fit(_ series: [TimeSeries], steps: Int? = nil, files: TrainingFiles? = nil, resume: Bool = false,
                    progress: (_ member: Int, TrainingEvent) -> Void = { _, _ in },
                    stopRequested: () -> Bool = { false }) throws(LSTMKitError) -> FitReport {
        try fitScalings(series)
        let E = configuration.members
        var trainers: [Trainer<SequenceDataset>] = []
        for k in 0..<E { trainers.append(try trainer(for: series, member: k)) }
        let group = parallel.group
        var best: [ParameterBuffer<Float>?] = Array(repeating: nil, count: E)
        var stoppedEarly = [Bool](repeating: false, count: E)
        if resume {
            guard let files else { throw .invalidConfiguration("resuming needs the training files") }
            let file: SafeTensors.File
            do { file = try SafeTensors.read(path: files.checkpoint) } catch {
                throw .invalidInput("cannot resume from \(files.checkpoint): \(error.description)")
            }
            for k in 0..<E {
                try trainers[k].restore(from: Self.member(k, of: file, prefix: "m"), path: files.checkpoint)
                if let saved = trainers[k].shardsInCheckpoint, saved != parallel.shards {
                    throw .distributed("\(files.checkpoint) was trained with \(saved) gradient shard\(saved == 1 ? "" : "s"), not \(parallel.shards); resume it with the same count")
                }
                best[k] = try SequenceModel<Float>(file: Self.member(k, of: file, prefix: "b", model: models[k]),
                                                   source: files.checkpoint).parameters
            }
            if let json = file.metadata["members_stopped_early"],
               let flags = try? JSONDecoder().decode([Bool].self, from: Data(json.utf8)), flags.count == E {
                stoppedEarly = flags
            }
        }
        if parallel.shards > 1 || group.size > 1 {
            for trainer in trainers { try trainer.distribute(over: group, shards: parallel.shards) }
        }
        let total = steps ?? configuration.steps
        configuration.steps = total
        func save() throws(LSTMKitError) {
            guard let files else { return }
            var file = SafeTensors.File(metadata: metadata)
            for k in 0..<E {
                let checkpoint = try trainers[k].checkpoint()
                file.tensors += checkpoint.tensors.map { ("m\(k).\($0.name)", $0.tensor) }
                for key in ["training", "state", "shards"] { file.metadata["m\(k).\(key)"] = checkpoint.metadata[key] }
                let kept = best[k] ?? models[k].parameters
                file.tensors += models[k].layout.specs.map { ("b\(k).\($0.name)", SafeTensors.Tensor(Array(kept[$0]), shape: $0.shape)) }
            }
            file.metadata["members_stopped_early"] = jsonString(stoppedEarly)
            var failure: String?
            if group.rank == 0 {
                do { try SafeTensors.write(file, path: files.checkpoint) } catch {
                    failure = "could not save checkpoint \(files.checkpoint): \(error.description)"
                }
            }
            if let message = try group.firstFailure(failure) { throw .invalidInput(message) }
        }
        var stopped = false
        for k in 0..<E where !stoppedEarly[k] && trainers[k].step < total {
            let trainer = trainers[k], model = models[k]
            if trainer.bestValidationLoss == nil, let loss = try trainer.validationLoss() {
                // A member's untrained start (the anchor) is a candidate too: training must beat it to replace it.
                // (A member that has started has a best loss; one a stopped run never reached starts here.)
                trainer.bestValidationLoss = loss
                best[k] = model.parameters
            }
            let outcome = try trainer.fit(FitOptions(steps: total, validateEvery: configuration.validateEvery,
                                                     patience: configuration.patience), progress: { event in
                if case .validated(_, _, true) = event { best[k] = model.parameters }
                progress(k, event)
            }, stopRequested: stopRequested)
            stoppedEarly[k] = outcome == .stoppedEarly
            try save()
            if outcome == .stopped {
                stopped = true
                break
            }
        }
        // The kept weights, for forecasting; the checkpoint keeps each member's latest beside them.
        for k in 0..<E { if let kept = best[k] { models[k].parameters = kept } }
        validationLoss = trainers.compactMap(\.bestValidationLoss).reduce(0, +) / Double(E)
        if let files {
            var failure: String?
            if group.rank == 0 {
                do { try self.save(to: files.best) } catch { failure = error.description }
            }
            if let message = try group.firstFailure(failure) { throw .invalidInput(message) }
        }
        var heldOut: FitReport.Entry = []
        for s in series {
            let n = s.values.count, H = configuration.horizon
            let history = Array(s.values.prefix(n - H)), actual = Array(s.values.suffix(H))
            let f = try forecast([s.prefix(n - H)])[0].median
            let m = configuration.season
            heldOut.append((s.name, ForecastAccuracy(actual: actual, forecast: f, history: history, season: m),
                            ForecastAccuracy(actual: actual, forecast: Baseline.naive.forecast(history, horizon: H, season: m), history: history, season: m),
                            ForecastAccuracy(actual: actual, forecast: Baseline.seasonalNaive.forecast(history, horizon: H, season: m), history: history, season: m)))
        }
        return FitReport(steps: trainers.map(\.step).max() ?? 0, validationLoss: validationLoss, heldOut: heldOut,
                         trainingWindows: trainers[0].source.examples.count,
                         stopped: stopped)
    }

    /// Member k's part of an ensemble file (tensors prefixed `<prefix><k>.`) as a file of its own; with `model`,
    /// given that model's description (the best weights carry none).
    static func member(_ k: Int, of file: SafeTensors.File, prefix: String, model: SequenceModel<Float>? = nil) -> SafeTensors.File {
        let p = "\(prefix)\(k)."
        var part = SafeTensors.File(tensors: file.tensors.filter { $0.name.hasPrefix(p) }.map { (String($0.name.dropFirst(p.count)), $0.tensor) })
        for (key, value) in file.metadata where key.hasPrefix("m\(k).") { part.metadata[String(key.dropFirst("m\(k).".count))] = value }
        if let model { part.metadata.merge(model.file().metadata.filter { $0.key != "state" && $0.key != "training" }) { $1 } }
        return part
    }

    // MARK: Forecasting

    /// The next `horizon` steps (at most the trained horizon) after the last point of each series, at every
    /// quantile; a series must be one the forecaster was trained on (its scaling) and at least `lookback` long.
    public func forecast(_ series: [TimeSeries], horizon: Int? = nil) throws(LSTMKitError) -> [Forecast] {
        let c = configuration, H = horizon ?? c.horizon, K = c.quantiles.count
        guard H >= 1, H <= c.horizon else {
            throw .invalidConfiguration("the forecaster predicts 1 to \(c.horizon) steps (its horizon), asked for \(H)")
        }
        var inputs: [[[Float]]] = [], baselines: [[Double]] = [], zs: [SeriesScaling] = []
        for s in series {
            guard let scaling = scalings[s.name] else {
                throw .invalidInput("series \(s.name) is not one the forecaster was trained on (\(scalings.keys.sorted().joined(separator: ", ")))")
            }
            guard s.values.count >= c.lookback else {
                throw .invalidInput("series \(s.name) has \(s.values.count) points; a forecast reads the last \(c.lookback) (the lookback)")
            }
            guard s.covariates.allSatisfy({ $0.count == covariateNames.count }) else {
                throw .shapeMismatch("series \(s.name) has covariates of another count than the forecaster's \(covariateNames.count)")
            }
            let z = transformed(s.values, scaling)
            let (input, baseline) = window(s, z: z, origin: s.values.count, scaling: scaling)
            inputs.append(input)
            baselines.append(baseline)
            zs.append(scaling)
        }
        guard !inputs.isEmpty else { return [] }
        let batch = try SequenceBatch(sequences: inputs)
        var outputs: [[Float]] = []   // per member (B, horizon × K)
        for model in models { outputs.append(try model.predict(batch).outputs) }
        return series.enumerated().map { b, s in
            let scaling = zs[b]
            var values = [[Double]](repeating: [Double](repeating: 0, count: H), count: K)
            for h in 0..<H {
                // Each member's K predictions sorted (monotone rearrangement), then per quantile the mean of the
                // members without the highest and the lowest: that is monotone in every member's value, so ordered
                // vectors combine into an ordered one and quantiles never cross.
                let perMember = outputs.map { o in (0..<K).map { Double(o[b * c.horizon * K + h * K + $0]) }.sorted() }
                let sorted = (0..<K).map { k in Self.trimmedMean(perMember.map { $0[k] }) }
                for k in 0..<K {
                    let z = baselines[b][h] + scaling.scale * sorted[k]
                    values[k][h] = scaling.log ? exp(z) : z
                }
            }
            let last = s.times.last ?? (s.values.count - 1)
            let times = (1...H).map { TimeStamps.advance(last, by: $0, frequency: frequency, format: format) }
            return Forecast(name: s.name, times: times, quantiles: c.quantiles, values: values)
        }
    }

    static func trimmedMean(_ v: [Double]) -> Double {
        let s = v.sorted()
        let kept = s.count > 2 ? Array(s.dropFirst().dropLast()) : s
        return kept.reduce(0, +) / Double(kept.count)
    }

    // MARK: Files

    struct Saved: Codable {
        var configuration: ForecasterConfiguration
        var frequency: Frequency
        var format: TimeFormat
        var covariates: [String]
        var scalings: [String: SeriesScaling]
        var columns: ForecastColumns?
    }

    static func metadata(configuration: ForecasterConfiguration, frequency: Frequency, format: TimeFormat,
                         covariates: [String], scalings: [String: SeriesScaling], columns: ForecastColumns?) -> [String: String] {
        ["forecaster": jsonString(Saved(configuration: configuration, frequency: frequency, format: format,
                                        covariates: covariates, scalings: scalings, columns: columns))]
    }

    var metadata: [String: String] {
        Self.metadata(configuration: configuration, frequency: frequency, format: format, covariates: covariateNames,
                      scalings: scalings, columns: columns)
    }

    /// Every member's (kept) tensors, prefixed `b0.`, `b1.`, …, and the forecaster's description.
    public func save(to path: String) throws(LSTMKitError) {
        var file = SafeTensors.File(metadata: metadata)
        for (k, model) in models.enumerated() {
            if let tensor = firstNonFinite(model.parameters) { throw .nonFinite("member \(k): \(tensor) is not finite; not saving") }
            file.tensors += model.file().tensors.map { ("b\(k).\($0.name)", $0.tensor) }
        }
        do { try SafeTensors.write(file, path: path) } catch { throw .invalidInput("cannot write \(path): \(error.description)") }
    }

    /// A forecaster saved by `save(to:)`, or the kept weights in a training checkpoint of `lstm forecast train`.
    public convenience init(contentsOf path: String) throws(LSTMKitError) {
        let file: SafeTensors.File
        do { file = try SafeTensors.read(path: path) } catch { throw .invalidInput("\(path): \(error.description)") }
        try self.init(file: file, source: path)
    }

    /// A forecaster from a safetensors file already read: one `save(to:)` wrote, or a training checkpoint.
    /// - Parameters:
    ///   - file: The file's tensors and metadata.
    ///   - source: The file's name, for error messages.
    /// - Throws: `LSTMKitError.invalidInput` when the file has no forecaster description or describes networks
    ///   larger than its tensors, and any error of building the networks or reading their tensors.
    public convenience init(file: SafeTensors.File, source: String) throws(LSTMKitError) {
        guard let json = file.metadata["forecaster"],
              let saved = try? JSONDecoder().decode(Saved.self, from: Data(json.utf8)) else {
            throw .invalidInput("\(source) is not a forecaster (no forecaster metadata); train one with lstm forecast train")
        }
        // The description must fit the tensors before networks of its size are allocated (a small damaged file
        // could claim huge ones): every member has its 4H × H recurrent weights and its head.
        let c = saved.configuration
        let available = file.tensors.reduce(0) { $0 + $1.tensor.elementCount }
        guard c.members >= 1, c.members <= file.tensors.count, c.hiddenSize >= 1, c.layers >= 1,
              c.layers <= file.tensors.count, c.hiddenSize <= available / 4 / c.hiddenSize,
              c.horizon >= 1, c.horizon <= available / max(1, c.quantiles.count), saved.covariates.count <= available else {
            throw .invalidInput("\(source) describes a forecaster larger than the tensors it holds; the file is damaged")
        }
        try self.init(c, frequency: saved.frequency, format: saved.format, covariates: saved.covariates)
        for (k, model) in models.enumerated() {
            model.parameters = try SequenceModel<Float>(file: Self.member(k, of: file, prefix: "b", model: model), source: source).parameters
        }
        scalings = saved.scalings
        columns = saved.columns
    }
}

extension Forecaster.FitReport {
    /// The type of `heldOut`: per series, its name and the held-out accuracy of the forecaster (median), naive
    /// and seasonal naive.
    public typealias Entry = [(name: String, model: ForecastAccuracy, naive: ForecastAccuracy, seasonalNaive: ForecastAccuracy)]
}

/// The CSV columns a forecaster was trained from.
public struct ForecastColumns: Sendable, Hashable, Codable {
    /// The target columns: one in long format, one per series in wide format.
    public var targets: [String]
    /// The time column.
    public var time: String
    /// The column naming each row's series (long format); nil in wide format.
    public var series: String?

    /// Records the columns a forecaster was trained from.
    /// - Parameters:
    ///   - targets: The target columns.
    ///   - time: The time column.
    ///   - series: The series column, or nil for wide format.
    public init(targets: [String], time: String, series: String?) {
        self.targets = targets
        self.time = time
        self.series = series
    }
}
