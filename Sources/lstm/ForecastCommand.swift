import ArgumentParser
import Foundation
import LSTMKit

struct ForecastCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast",
        abstract: "Forecast time series from a CSV file with prediction intervals, scored against simple baselines.",
        subcommands: [ForecastTrainCommand.self, ForecastPredictCommand.self, ForecastBacktestCommand.self]
    )
}

struct ForecastTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a forecaster on every series of a CSV file.",
        discussion: """
        Holds out the last --horizon points of every series for validation (best weights, early stopping), trains \
        --members networks from different seeds, then prints the held-out accuracy of their combined forecast beside naive and \
        seasonal naive. Writes CHECKPOINT (resumable) and CHECKPOINT-minus-extension.best.safetensors (the \
        forecaster to predict with).
        """
    )

    @OptionGroup(title: "Data") var data: ForecastDataOptions
    @OptionGroup(title: "Model") var model: ForecastModelOptions
    @Option(help: "Checkpoint file to write (and read with --resume).") var checkpoint = "forecaster.safetensors"
    @Flag(help: "Continue training from --checkpoint.") var resume = false
    @Flag(help: "Overwrite an existing --checkpoint instead of refusing.") var force = false
    @OptionGroup(title: "Runtime") var runtime: ThreadOptions
    @OptionGroup(title: "Data-parallel training (mpirun -np N lstm forecast train …)") var parallel: ParallelOptions
    @OptionGroup var random: SeedOption

    func run() throws {
        try reportingFailures { try train() }
    }

    private func train() throws {
        let group = try processGroup()
        let files = TrainingFiles(checkpoint: checkpoint)
        let (series, forecaster) = try agreeingOnSetup(group) { () throws -> (ForecastData, Forecaster) in
            // The data first: a wrong column or a bad cell is the more useful message (nothing is written before fit).
            let series = try data.read()
            if !resume && !force && FileManager.default.fileExists(atPath: files.checkpoint) {
                throw Failure(message: "\(files.checkpoint) already exists; pass --resume to continue it, --force to overwrite it, or choose another --checkpoint")
            }
            let forecaster: Forecaster
            var saved: Int?
            if resume {
                let file: SafeTensors.File
                do { file = try SafeTensors.read(path: files.checkpoint) } catch {
                    throw Failure(message: "cannot resume from \(files.checkpoint): \(describe(error))")
                }
                forecaster = try Forecaster(file: file, source: files.checkpoint)
                saved = file.metadata["m0.shards"].flatMap { Int($0) } ?? 1
            } else {
                forecaster = try Forecaster(model.configuration(for: series, seed: random.seed), frequency: series.frequency,
                                            format: series.format, covariates: series.covariateNames)
                forecaster.columns = ForecastColumns(targets: data.targets, time: series.timeColumn, series: series.seriesColumn)
            }
            forecaster.parallel = (group, try parallel.shards(for: group, resumed: saved, checkpoint: files.checkpoint))
            return (series, forecaster)
        }
        forecaster.threads = runtime.threads
        let c = forecaster.configuration
        let lengths = series.series.map(\.values.count)
        say("""
            \(series.series.count) series (\(series.series.prefix(5).map(\.name).joined(separator: ", "))\(series.series.count > 5 ? ", …" : "")) of \(lengths.min()!)\(lengths.min() == lengths.max() ? "" : "–\(lengths.max()!)") points, \(series.frequency) (from the time stamps)
            season \(c.season)\(model.season == nil ? " (from the frequency)" : ""), horizon \(c.horizon)\(model.horizon == nil ? " (from the frequency)" : ""), lookback \(c.lookback); the last \(c.horizon) points of every series are held out for validation
            model: \(c.members) × LSTM(\(c.hiddenSize))\(c.layers > 1 ? " × \(c.layers) layers" : "") (combined by a trimmed mean), quantiles \(c.quantiles.map { "\($0)" }.joined(separator: ", ")), up to \(model.steps) steps\(resume ? "; resuming" : "")
            """)
        let started = Date()
        let report: Forecaster.FitReport
        do {
            // On a terminal one line that updates (member, step, last and best validation loss); otherwise a log
            // line when a member improves or every 100 steps.
            let interactive = isatty(STDOUT_FILENO) == 1
            var bestLoss: [Int: Double] = [:]
            report = try Interrupt.handling { requested in
                try forecaster.fit(series.series, steps: model.steps, files: files, resume: resume, progress: { member, event in
                    switch event {
                    case let .trained(step, loss, _, _, _) where interactive && step % 5 == 0:
                        let best = bestLoss[member].map { format($0, 4) } ?? "–"
                        FileHandle.standardOutput.write(Data("\r\u{1B}[Kmember \(member + 1)/\(c.members)  step \(step)/\(model.steps)  train loss \(format(loss, 4))  best validation \(best)".utf8))
                    case let .validated(step, loss, best):
                        if best { bestLoss[member] = loss }
                        if !interactive && (best || step % 100 == 0) {
                            say("member \(member + 1), step \(step): validation loss \(format(loss, 4))\(best ? " (best so far)" : "")")
                        }
                    default: break
                    }
                }, stopRequested: requested)
            }
            if interactive { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        } catch {
            throw Failure(message: "\(flagged(String(describing: error))); training stopped, the last checkpoint \(files.checkpoint) is kept")
        }
        if report.stopped {
            say("stopped by a signal at step \(report.steps); checkpoint saved to \(files.checkpoint); continue with --resume")
            throw ExitCode(130)
        }
        say("trained up to \(report.steps) steps per member on \(report.trainingWindows) windows in \(format(Date().timeIntervalSince(started), 1)) s")
        say("")
        say("held-out accuracy (last \(c.horizon) points of every series; they chose the kept weights, so `lstm forecast backtest` is the unbiased estimate):")
        printAccuracy(report.heldOut.map { ($0.name, [("lstm", $0.model), ("naive", $0.naive), ("seasonal naive", $0.seasonalNaive)]) })
        say("")
        say("forecaster: \(files.best); forecast with: lstm forecast predict \(files.best) \(data.data)")
    }
}

/// A table of MAE, RMSE, sMAPE, MASE per method, per series (or per fold), and their mean when there are several.
func printAccuracy(_ rows: [(name: String, methods: [(String, ForecastAccuracy)])]) {
    let nameWidth = max(8, rows.map(\.name.count).max() ?? 0)
    func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
        let p = String(repeating: " ", count: max(0, n - s.count))
        return right ? p + s : s + p
    }
    say(pad("series", nameWidth) + "  " + pad("method", 15) + pad("MAE", 12, right: true) + pad("RMSE", 12, right: true)
        + pad("sMAPE %", 10, right: true) + pad("MASE", 9, right: true))
    func line(_ name: String, _ method: String, _ a: ForecastAccuracy) {
        say(pad(name, nameWidth) + "  " + pad(method, 15) + pad(String(format: "%.4g", a.mae), 12, right: true)
            + pad(String(format: "%.4g", a.rmse), 12, right: true) + pad(String(format: "%.2f", a.smape), 10, right: true)
            + pad(String(format: "%.3f", a.mase), 9, right: true))
    }
    for row in rows.prefix(20) {
        for (k, (method, accuracy)) in row.methods.enumerated() { line(k == 0 ? row.name : "", method, accuracy) }
    }
    if rows.count > 20 { say("… \(rows.count - 20) more series") }
    if rows.count > 1, let methods = rows.first?.methods.map(\.0) {
        for (k, method) in methods.enumerated() {
            line(k == 0 ? "mean" : "", method, ForecastAccuracy.mean(rows.map { $0.methods[k].1 }))
        }
        say("(mean: arithmetic for MAE, RMSE and sMAPE, geometric for MASE)")
    }
}

struct ForecastPredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Forecast the next steps after the last row of every series in a CSV file."
    )

    @Argument(help: "A forecaster (.best.safetensors written by lstm forecast train, or its checkpoint).") var checkpoint: String
    @Argument(help: "CSV file with the same columns as the one the forecaster was trained on.") var data: String
    @Option(help: "Steps to forecast (default and at most: the forecaster's horizon).") var horizon: Int?
    @Option(help: "Write the forecasts to this CSV file instead of standard output.") var output: String?
    @Option(help: "Draw history, forecast and interval band into this SVG file.") var plot: String?
    @Option(help: "Accept empty or NaN cells: previous or linear.") var fill: FillPolicy?

    func run() throws {
        try reportingFailures {
            let forecaster = try Forecaster(contentsOf: checkpoint)
            guard let columns = forecaster.columns else {
                throw Failure(message: "\(checkpoint) does not say which columns it was trained on; train it with lstm forecast train")
            }
            let series = try readForecastData(data, targets: columns.targets, time: columns.time, series: columns.series,
                                              covariates: forecaster.covariateNames, fill: fill)
            guard series.frequency == forecaster.frequency, series.format == forecaster.format else {
                throw Failure(message: "\(data) is \(series.frequency) (\(series.format.rawValue) time stamps), but the forecaster was trained on \(forecaster.frequency) (\(forecaster.format.rawValue)) data")
            }
            let forecasts = try forecaster.forecast(series.series, horizon: horizon)
            let many = series.series.count > 1 || columns.series != nil
            let quantileColumns = forecaster.configuration.quantiles.enumerated().filter { $0.element != 0.5 }
            let header = (many ? ["series"] : []) + ["time", "forecast"] + quantileColumns.map { "q\($0.element)" }
            var rows: [[String]] = []
            for f in forecasts {
                for (h, t) in f.times.enumerated() {
                    rows.append((many ? [f.name] : []) + [TimeStamps.format(t, as: forecaster.format), number(f.median[h])]
                                + quantileColumns.map { number(f.values[$0.offset][h]) })
                }
            }
            let text = CSVTable.format(header: header, rows: rows)
            if let output {
                do { try AtomicFile.write(Array(text.utf8), to: output) } catch {
                    throw Failure(message: "cannot write \(output): \(error)")
                }
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            if let plot {
                let svg = ForecastPlot.svg(history: series.series, forecasts: forecasts, format: forecaster.format,
                                           title: "forecast of \(URL(fileURLWithPath: data).lastPathComponent)")
                do { try AtomicFile.write(Array(svg.utf8), to: plot) } catch {
                    throw Failure(message: "cannot write \(plot): \(error)")
                }
            }
        }
    }

    private func number(_ v: Double) -> String { String(format: "%.6g", v) }
}

struct ForecastBacktestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Rolling-origin evaluation: train at K origins (expanding window), forecast H steps from each.",
        discussion: "Fold k trains on everything before its origin (holding out its own validation window) and is scored on the H points after it, beside naive, seasonal naive and drift."
    )

    @OptionGroup(title: "Data") var data: ForecastDataOptions
    @OptionGroup(title: "Model") var model: ForecastModelOptions
    @Option(help: "Number of forecast origins (the last K·H points, H at a time).") var folds = 3
    @OptionGroup(title: "Runtime") var runtime: ThreadOptions
    @OptionGroup var random: SeedOption

    func validate() throws {
        guard folds >= 1 else { throw ValidationError("--folds must be at least 1, got \(folds)") }
    }

    func run() throws {
        try reportingFailures {
            let series = try data.read()
            var c = try model.configuration(for: ForecastData(series: series.series.map { $0.prefix($0.values.count - folds * (model.horizon ?? series.frequency.defaultHorizon)) },
                                                              format: series.format, frequency: series.frequency,
                                                              covariateNames: series.covariateNames), seed: random.seed)
            c.seed = random.seed
            let H = c.horizon, m = c.season
            say("\(folds) folds of \(H) steps, season \(m), lookback \(c.lookback), \(series.frequency)")
            var rows: [(name: String, methods: [(String, ForecastAccuracy)])] = []
            for k in 0..<folds {
                let cut = series.series.map { $0.values.count - (folds - k) * H }
                let histories = zip(series.series, cut).map { $0.prefix($1) }
                let forecaster = try Forecaster(c, frequency: series.frequency, format: series.format, covariates: series.covariateNames)
                forecaster.threads = runtime.threads
                try forecaster.fit(histories)
                let forecasts = try forecaster.forecast(histories)
                var perSeries: [[(String, ForecastAccuracy)]] = []
                for (s, (history, f)) in zip(series.series, zip(histories, forecasts)) {
                    let actual = Array(s.values[history.values.count..<(history.values.count + H)])
                    func score(_ name: String, _ forecast: [Double]) -> (String, ForecastAccuracy) {
                        (name, ForecastAccuracy(actual: actual, forecast: forecast, history: history.values, season: m))
                    }
                    perSeries.append([score("lstm", f.median),
                                      score("naive", Baseline.naive.forecast(history.values, horizon: H, season: m)),
                                      score("seasonal naive", Baseline.seasonalNaive.forecast(history.values, horizon: H, season: m)),
                                      score("drift", Baseline.drift.forecast(history.values, horizon: H, season: m))])
                }
                let origin = histories[0].times.last.map { TimeStamps.format($0, as: series.format) } ?? "?"
                rows.append(("fold \(k + 1) (after \(origin))", (0..<4).map { j in
                    (perSeries[0][j].0, ForecastAccuracy.mean(perSeries.map { $0[j].1 }))
                }))
            }
            printAccuracy(rows)
        }
    }
}
