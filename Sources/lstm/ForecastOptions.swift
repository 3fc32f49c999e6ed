import ArgumentParser
import Foundation
import LSTMKit

extension FillPolicy: ExpressibleByArgument {}

/// Which columns of the CSV file hold what (`lstm forecast train`, `backtest`).
struct ForecastDataOptions: ParsableArguments {
    @Argument(help: "CSV file with a header row.") var data: String
    @Option(help: "Column to forecast; repeat it (or separate with commas) for several series in columns.")
    var target: [String] = []
    @Option(help: "Time column (default: one named time, date, ds or timestamp, else the first).") var time: String?
    @Option(help: "Column naming each row's series (long format: many series, one target column).") var series: String?
    @Option(help: "Comma-separated numeric columns observed in the past, read as inputs.") var covariates: String?
    @Option(help: "Accept empty or NaN cells: previous (carry the last value) or linear (interpolate).") var fill: FillPolicy?

    var targets: [String] { target.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } }
    var covariateNames: [String] { covariates.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? [] }

    func validate() throws {
        guard !targets.isEmpty else { throw ValidationError("name the column to forecast with --target COL") }
    }

    func read() throws -> ForecastData {
        try readForecastData(data, targets: targets, time: time, series: series, covariates: covariateNames, fill: fill)
    }
}

/// The forecaster's shape and training (`lstm forecast train`, `backtest`).
struct ForecastModelOptions: ParsableArguments {
    @Option(help: "Steps to forecast (default from the frequency: yearly 6, quarterly 8, monthly 18, weekly 13, daily 14, hourly 48).")
    var horizon: Int?
    @Option(help: "Steps of history each forecast reads (default: two horizons or two seasons, fitted to the data).")
    var lookback: Int?
    @Option(help: "Season length (default from the frequency: monthly 12, quarterly 4, weekly 52, daily 7, hourly 24, yearly 1).")
    var season: Int?
    @Option(help: "Comma-separated quantiles to predict (0.5 is always added).") var quantiles = "0.1,0.5,0.9"
    @Option(help: "LSTM hidden size.") var hidden = 64
    @Option(help: "LSTM layers.") var layers = 1
    @Option(help: "Training steps (at most: training stops early when validation stops improving).") var steps = 400
    @Option(help: "Windows per step.") var batch = 32
    @Option(help: "Learning rate.") var lr = 3e-3
    @Option(help: "Seasons averaged into the seasonal anchor the network corrects (1: seasonal naive).") var anchorSeasons = 3
    @Option(help: "Networks trained from different seeds; the forecast is their mean without the highest and lowest.") var members = 5

    var quantileValues: [Double] { quantiles.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        for (name, value) in [("--horizon", horizon), ("--lookback", lookback), ("--season", season)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        for (name, value) in [("--hidden", hidden), ("--layers", layers), ("--steps", steps), ("--batch", batch),
                              ("--members", members)] where value < 1 {
            throw ValidationError("\(name) must be at least 1, got \(value)")
        }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number, got \(lr)") }
        let q = quantiles.split(separator: ",")
        guard !q.isEmpty, q.allSatisfy({ Double($0.trimmingCharacters(in: .whitespaces)).map { $0 > 0 && $0 < 1 } ?? false }) else {
            throw ValidationError("--quantiles must be numbers between 0 and 1 separated by commas, got \(quantiles)")
        }
    }

    func configuration(for data: ForecastData, seed: UInt64) throws -> ForecasterConfiguration {
        let shortest = data.series.map(\.values.count).min() ?? 0
        var c = ForecasterConfiguration.defaults(frequency: data.frequency, shortest: shortest, horizon: horizon,
                                                 season: season, lookback: lookback)
        c.quantiles = Array(Set(quantileValues + [0.5])).sorted()
        c.hiddenSize = hidden
        c.layers = layers
        c.steps = steps
        c.batch = batch
        c.learningRate = lr
        c.seed = seed
        c.anchorSeasons = anchorSeasons
        c.members = members
        return c
    }
}

func readForecastData(_ path: String, targets: [String], time: String?, series: String?, covariates: [String],
                      fill: FillPolicy?) throws -> ForecastData {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
        throw Failure(message: "cannot read \(path): no such file")
    }
    if let size = MemoryBudget.fileSize(path) {
        try MemoryBudget.require(size * 40, for: "the \(MemoryBudget.describe(size)) CSV file \(path)", hint: "give a smaller file")
    }
    guard let bytes = AtomicFile.read(path: path) else { throw Failure(message: "cannot read \(path)") }
    guard !bytes.isEmpty else { throw Failure(message: "\(path) is empty; give a CSV file with a header row and data rows") }
    let table = try CSVTable.parse(bytes, source: path)
    return try ForecastData.read(table, source: path, targets: targets, time: time, series: series, covariates: covariates, fill: fill)
}
