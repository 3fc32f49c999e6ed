import Foundation
import Testing
@testable import LSTMKit

/// Time stamps, frequencies, the CSV reader, bad inputs, and what the forecaster learns.
struct TimeStampTests {
    @Test func everyFormatParsesAndWritesBack() {
        for (text, format) in [("1949", TimeFormat.year), ("1949Q3", .quarter), ("1949-07", .month), ("1949-07-31", .date),
                               ("2024-03-01 13:05", .minute), ("2024-03-01 13:05:09", .second), ("17", .integer), ("-3", .integer)] {
            let parsed = TimeStamps.parse(text)
            #expect(parsed?.format == format, "\(text)")
            if let parsed { #expect(TimeStamps.format(parsed.ordinal, as: format) == text) }
        }
        #expect(TimeStamps.parse("2024-03-01T13:05")?.format == .minute)
        #expect(TimeStamps.parse("1949-Q2")?.ordinal == TimeStamps.parse("1949Q2")?.ordinal)
        for bad in ["1949-13", "1949-02-30", "19490-1", "2024-03-01 25:00", "March", "", "1949Q5"] {
            #expect(TimeStamps.parse(bad) == nil, "\(bad)")
        }
    }

    static func ordinals(_ texts: [String]) -> (TimeFormat, [Int]) {
        let parsed = texts.map { TimeStamps.parse($0)! }
        return (parsed[0].format, parsed.map(\.ordinal))
    }

    @Test func frequencyAndSeasonAreInferred() {
        let cases: [([String], String, Int, Int)] = [
            (["1949-01", "1949-02", "1949-03"], "monthly", 12, 18),
            (["1949-01-01", "1949-02-01", "1949-03-01"], "monthly", 12, 18),
            (["2023-01-31", "2023-02-28", "2023-03-31", "2023-04-30"], "monthly", 12, 18),
            (["1990Q4", "1991Q1", "1991Q2"], "quarterly", 4, 8),
            (["2000-01-01", "2000-04-01", "2000-07-01"], "quarterly", 4, 8),
            (["2024-01-01", "2024-01-08", "2024-01-15"], "weekly", 52, 13),
            (["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"], "daily", 7, 14),
            (["2024-03-01 22:00", "2024-03-01 23:00", "2024-03-02 00:00"], "hourly", 24, 48),
            (["2024-03-01 00:00", "2024-03-01 00:15", "2024-03-01 00:30"], "every 15 minutes", 96, 192),
            (["1871", "1872", "1873"], "yearly", 1, 6),
            (["2000-06-15", "2001-06-15", "2002-06-15"], "yearly", 1, 6),
            (["1", "2", "3"], "every step (integer time)", 1, 10),
        ]
        for (texts, name, season, horizon) in cases {
            let (format, ordinals) = Self.ordinals(texts)
            let f = TimeStamps.frequency(of: ordinals, format: format).frequency
            #expect(f?.description == name, "\(texts)")
            #expect(f?.defaultSeason == season, "\(texts)")
            #expect(f?.defaultHorizon == horizon, "\(texts)")
        }
        let (format, gappy) = Self.ordinals(["2024-01", "2024-02", "2024-04", "2024-05"])
        #expect(TimeStamps.frequency(of: gappy, format: format).irregularIndex == 2)
    }

    @Test func stampsContinueAtTheirFrequency() {
        func next(_ texts: [String], _ count: Int) -> [String] {
            let (format, ordinals) = Self.ordinals(texts)
            let f = TimeStamps.frequency(of: ordinals, format: format).frequency!
            return (1...count).map { TimeStamps.format(TimeStamps.advance(ordinals.last!, by: $0, frequency: f, format: format), as: format) }
        }
        #expect(next(["2023-11-30", "2023-12-31"], 3) == ["2024-01-31", "2024-02-29", "2024-03-31"])
        #expect(next(["2023-11-15", "2023-12-15"], 2) == ["2024-01-15", "2024-02-15"])
        #expect(next(["1960Q3", "1960Q4"], 2) == ["1961Q1", "1961Q2"])
        #expect(next(["1999-11", "1999-12"], 2) == ["2000-01", "2000-02"])
        #expect(next(["2024-12-31 22:00", "2024-12-31 23:00"], 2) == ["2025-01-01 00:00", "2025-01-01 01:00"])
        #expect(next(["2024-02-26", "2024-03-04"], 1) == ["2024-03-11"])
        #expect(next(["1", "3"], 2) == ["5", "7"])
        // Integer stamps at the ends of Int: a gap wider than Int.max is irregular (the CSV fuzzer's crash), the
        // stamps after Int.max stop there.
        let huge = [-8_612_933_377_076_003_960, 8_612_933_377_076_003_960]
        #expect(TimeStamps.frequency(of: huge, format: .integer).frequency == nil)
        #expect(TimeStamps.frequency(of: huge, format: .integer).irregularIndex == 1)
        #expect(TimeStamps.frequency(of: [0, 1, Int.max], format: .integer).irregularIndex == 2)
        let f = TimeStamps.frequency(of: [Int.max - 2, Int.max - 1], format: .integer).frequency!
        #expect((1...3).map { TimeStamps.advance(Int.max - 1, by: $0, frequency: f, format: .integer) }
                == [Int.max, Int.max, Int.max])
    }
}

struct CSVTests {
    static func table(_ text: String) throws -> CSVTable { try CSVTable.parse(Array(text.utf8), source: "t.csv") }

    @Test func rfc4180() throws {
        let t = try Self.table("\u{FEFF}a,\"b, c\",d\r\n1,\"say \"\"hi\"\"\",\"two\nlines\"\r\n\n3,4,5")
        #expect(t.header == ["a", "b, c", "d"])
        #expect(t.rows == [["1", "say \"hi\"", "two\nlines"], ["3", "4", "5"]])
        #expect(t.lines == [2, 5])
        #expect(CSVTable.format(header: ["x", "y,z"], rows: [["1", "a\"b"]]) == "x,\"y,z\"\n1,\"a\"\"b\"\n")
    }

    @Test func badFilesNameTheLine() {
        func message(_ text: String) -> String {
            do { _ = try Self.table(text); return "parsed" } catch { return String(describing: error) }
        }
        #expect(message("a,b\n1,2\n3\n") == "t.csv line 3: 1 fields, but the header has 2 (a, b)")
        #expect(message("a,b\n1,\"2\n") == "t.csv line 2: a quoted field is never closed")
        #expect(message("a,a\n1,2\n") == "t.csv line 1: the header names column a twice")
        #expect(message("") == "t.csv is empty; give a CSV file with a header row and data rows")
        #expect(message("a,b\n1,x\"y\n").contains("line 2: a quote inside an unquoted field"))
    }
}

struct ForecastDataTests {
    static func read(_ text: String, targets: [String] = ["y"], series: String? = nil, covariates: [String] = [],
                     fill: FillPolicy? = nil) throws -> ForecastData {
        try ForecastData.read(CSVTests.table(text), source: "t.csv", targets: targets, series: series,
                              covariates: covariates, fill: fill)
    }

    static func message(_ body: () throws -> Void) -> String {
        do { try body(); return "read" } catch { return String(describing: error) }
    }

    @Test func longAndWideFormats() throws {
        let long = try Self.read("date,store,y\n2024-01,a,1\n2024-01,b,5\n2024-02,a,2\n2024-02,b,6\n2024-03,a,3\n2024-03,b,7\n",
                                 series: "store")
        #expect(long.series.map(\.name) == ["a", "b"])
        #expect(long.series[1].values == [5, 6, 7])
        #expect(long.frequency.description == "monthly" && long.timeColumn == "date" && long.seriesColumn == "store")
        let wide = try Self.read("t,x,z,w\n1,1,2,9\n2,3,4,9\n3,5,6,9\n", targets: ["x", "z"], covariates: ["w"])
        #expect(wide.series.map(\.name) == ["x", "z"] && wide.series[0].covariates == [[9], [9], [9]])
    }

    @Test func badCellsNameLineAndColumn() {
        let header = "time,y\n"
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-02,abc\n") }
                == "t.csv line 3, column y: 'abc' is not a number")
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-02,\n2024-03,3\n") }
                == "t.csv line 3, column y: empty cell; fill it in, or pass --fill previous or --fill linear")
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-03,2\n2024-02,3\n") }
                .hasPrefix("t.csv line 4, column time: time stamp 2024-02 is before the one on line 3"))
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-02,2\n2024-02,3\n") }
                .hasPrefix("t.csv line 4, column time: time stamp 2024-02 is a duplicate of the one on line 3"))
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-02,2\n2024-04,3\n") }
                .hasPrefix("t.csv line 4, column time: time stamp 2024-04 breaks the regular spacing"))
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-02,2\n", targets: ["sales"]) }
                == "t.csv has no column sales; its columns are time, y")
        #expect(Self.message { _ = try Self.read(header) } == "t.csv has a header but no data rows; give at least a few dozen rows")
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-13,2\n") }
                .hasPrefix("t.csv line 3, column time: '2024-13' is not a time stamp"))
        #expect(Self.message { _ = try Self.read(header + "2024-01,1\n2024-02-01,2\n") }
                .contains("is written differently from the first time stamp"))
        // Integer stamps further apart than Int.max (the CSV fuzzer's input, Fuzz/Corpus/csv): a message, not a trap.
        #expect(Self.message { _ = try Self.read(header + "-8612933377076003960,1\n8612933377076003960,2\n") }
                .hasPrefix("t.csv line 3, column time: time stamp 8612933377076003960 breaks the regular spacing"))
    }

    @Test func emptyCellsCanBeFilled() throws {
        let text = "time,y\n1,\n2,2\n3,NaN\n4,\n5,8\n6,\n"
        #expect(try Self.read(text, fill: .previous).series[0].values == [2, 2, 2, 2, 8, 8])
        #expect(try Self.read(text, fill: .linear).series[0].values == [2, 2, 4, 6, 8, 8])
    }
}

struct ForecasterTests {
    /// 10 years of a monthly pattern with a gentle trend and a little noise.
    static func seasonal(_ n: Int = 120, seed: UInt64 = 3) -> (TimeSeries, (Int) -> Double) {
        var random = RandomSource(seed: seed)
        let truth = { (t: Int) in 20 + 0.02 * Double(t) + 4 * sin(2 * Double.pi * Double(t) / 12) + 2 * cos(4 * Double.pi * Double(t) / 12) }
        let values = (0..<n).map { truth($0) + 0.2 * random.normal() }
        let start = TimeStamps.parse("2010-01")!.ordinal
        return (TimeSeries(name: "y", values: values, times: (0..<n).map { start + $0 }), truth)
    }

    static func forecaster(steps: Int = 150) throws -> Forecaster {
        var c = ForecasterConfiguration.defaults(frequency: Frequency(.month), shortest: 120, horizon: 12)
        c.steps = steps
        c.validateEvery = 25
        c.members = 2
        return try Forecaster(c, frequency: Frequency(.month), format: .month)
    }

    @Test func recoversASeasonalPatternWithQuantilesInOrder() throws {
        let (series, truth) = Self.seasonal()
        let forecaster = try Self.forecaster()
        let report = try forecaster.fit([series])
        #expect(report.trainingWindows > 30)
        let f = try forecaster.forecast([series])[0]
        #expect(TimeStamps.format(f.times[0], as: .month) == "2020-01" && f.times.count == 12)
        let actual = (120..<132).map(truth)
        let mae = zip(actual, f.median).map { abs($0 - $1) }.reduce(0, +) / 12
        let naive = actual.map { abs($0 - series.values.last!) }.reduce(0, +) / 12
        #expect(mae < 0.5, "MAE \(mae) against the true pattern (amplitude 4 + 2, noise 0.2)")
        #expect(mae < naive / 4, "MAE \(mae), naive \(naive)")
        for h in 0..<12 {
            for k in 1..<f.quantiles.count { #expect(f.values[k - 1][h] <= f.values[k][h]) }
        }
        #expect(f.quantiles == [0.1, 0.5, 0.9])
    }

    @Test func untrainedForecasterIsItsAnchor() throws {
        let (series, _) = Self.seasonal()
        var c = ForecasterConfiguration.defaults(frequency: Frequency(.month), shortest: 120, horizon: 12)
        c.anchorSeasons = 1
        let forecaster = try Forecaster(c, frequency: Frequency(.month), format: .month)
        try forecaster.fitScalings([series])
        let f = try forecaster.forecast([series])[0]
        let seasonalNaive = Baseline.seasonalNaive.forecast(series.values, horizon: 12, season: 12)
        for (a, b) in zip(f.median, seasonalNaive) { #expect(abs(a - b) <= 1e-9 * abs(b)) }
    }

    @Test func shortSeriesAndUnknownSeriesAreErrors() throws {
        let (series, _) = Self.seasonal(30)
        let forecaster = try Self.forecaster()
        #expect(throws: LSTMKitError.self) { try forecaster.fit([series]) }
        let (long, _) = Self.seasonal()
        let trained = try Self.forecaster(steps: 5)
        try trained.fit([long])
        var other = long
        other.name = "z"
        #expect(throws: LSTMKitError.self) { _ = try trained.forecast([other]) }
        #expect(throws: LSTMKitError.self) { _ = try trained.forecast([long], horizon: 13) }
    }

    @Test func savedForecasterForecastsTheSame() throws {
        let (series, _) = Self.seasonal()
        let forecaster = try Self.forecaster(steps: 30)
        try forecaster.fit([series])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("forecaster-\(UUID().uuidString).safetensors").path
        try forecaster.save(to: path)
        let loaded = try Forecaster(contentsOf: path)
        #expect(try loaded.forecast([series]) == forecaster.forecast([series]))
    }

    /// A covariate is an input: the forecast reads it (a leading indicator moves the forecast), scaled by the
    /// series' own training statistics.
    @Test func covariatesAreRead() throws {
        var random = RandomSource(seed: 4)
        let indicator = (0..<120).map { _ in random.uniform(-1, 1) }
        let values = (0..<120).map { t in 50 + 5 * (t >= 3 ? indicator[t - 3] : 0) + 0.1 * random.normal() }
        let series = TimeSeries(name: "y", values: values, times: Array(0..<120), covariates: indicator.map { [$0] })
        var c = ForecasterConfiguration.defaults(frequency: Frequency(.integer), shortest: 120, horizon: 3)
        c.steps = 200
        c.members = 2
        let forecaster = try Forecaster(c, frequency: Frequency(.integer), format: .integer, covariates: ["x"])
        let report = try forecaster.fit([series])
        #expect(report.heldOut[0].model.mase < 0.85 * report.heldOut[0].naive.mase,
                "the indicator leads y by 3 steps: \(report.heldOut[0].model.mase) against naive \(report.heldOut[0].naive.mase)")
        var shifted = series
        for t in 117..<120 { shifted.covariates[t] = [-series.covariates[t][0]] }
        #expect(try forecaster.forecast([series])[0].median != forecaster.forecast([shifted])[0].median)
        #expect(throws: LSTMKitError.self) { _ = try forecaster.forecast([TimeSeries(name: "y", values: values)]) }
    }

    /// Stopped in the middle of the second member and resumed, the ensemble reaches the bytes of an uninterrupted run.
    @Test func stoppedAndResumedEnsembleIsBitwiseTheSame() throws {
        let (series, _) = Self.seasonal(72)
        var c = ForecasterConfiguration.defaults(frequency: Frequency(.month), shortest: 72, horizon: 6)
        (c.steps, c.members, c.hiddenSize, c.validateEvery) = (30, 3, 8, 10)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let whole = TrainingFiles(checkpoint: dir.appendingPathComponent("whole.safetensors").path)
        let split = TrainingFiles(checkpoint: dir.appendingPathComponent("split.safetensors").path)
        try Forecaster(c, frequency: Frequency(.month), format: .month).fit([series], files: whole)
        var asked = 0
        let first = try Forecaster(c, frequency: Frequency(.month), format: .month)
        let report = try first.fit([series], files: split, stopRequested: { asked += 1; return asked > 45 })
        #expect(report.stopped)
        let resumed = try Forecaster(contentsOf: split.checkpoint)
        let rest = try resumed.fit([series], files: split, resume: true)
        #expect(!rest.stopped)
        #expect(try SafeTensors.read(path: split.best) == SafeTensors.read(path: whole.best))
        #expect(try SafeTensors.read(path: split.checkpoint) == SafeTensors.read(path: whole.checkpoint))
    }

    @Test func accuracyAndBaselines() {
        let history: [Double] = [1, 2, 3, 4, 5, 6, 7, 8]
        #expect(Baseline.seasonalNaive.forecast(history, horizon: 5, season: 4) == [5, 6, 7, 8, 5])
        #expect(Baseline.naive.forecast(history, horizon: 2, season: 4) == [8, 8])
        #expect(Baseline.drift.forecast(history, horizon: 2, season: 1) == [9, 10])
        let a = ForecastAccuracy(actual: [10, 10], forecast: [8, 12], history: history, season: 4)
        #expect(a.mae == 2 && a.rmse == 2 && abs(a.smape - 100 * (4.0 / 18 + 4.0 / 22) / 2) < 1e-12)
        #expect(a.mase == 0.5, "in-sample seasonal-naive MAE is 4")
    }
}
