import Foundation

/// One series: values at regularly spaced time stamps, and covariates observed at the same stamps.
public struct TimeSeries: Sendable, Hashable {
    /// The series' name; a forecaster keys its scalings by it, and its forecast carries it.
    public var name: String
    /// The observed values, oldest first.
    public var values: [Double]
    /// The time stamps as ordinals (`TimeStamps`), one per value.
    public var times: [Int]
    /// Per step, the value of each covariate (all of the same count).
    public var covariates: [[Double]]

    /// Creates a series from its values.
    /// - Parameters:
    ///   - name: The series' name.
    ///   - values: The observed values, oldest first.
    ///   - times: One ordinal time stamp per value; nil numbers the steps 0, 1, 2, ….
    ///   - covariates: Per step, the covariate values; nil gives every step none.
    public init(name: String, values: [Double], times: [Int]? = nil, covariates: [[Double]]? = nil) {
        self.name = name
        self.values = values
        self.times = times ?? Array(0..<values.count)
        self.covariates = covariates ?? Array(repeating: [], count: values.count)
    }

    /// The first `count` steps.
    public func prefix(_ count: Int) -> TimeSeries {
        TimeSeries(name: name, values: Array(values.prefix(count)), times: Array(times.prefix(count)),
                   covariates: Array(covariates.prefix(count)))
    }
}

/// What to do with an empty or NaN cell: refuse it (nil), carry the previous value, or interpolate linearly.
public enum FillPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// `previous` carries the last number forward; `linear` draws a line between the numbers around a gap (and
    /// carries the last number over a gap at the end). Both fill a gap at the start with the first number.
    case previous, linear
}

/// Series read from a CSV table, with their shared time format and frequency.
public struct ForecastData: Sendable {
    /// The series, in the order they first appear (long format) or of the target columns (wide format).
    public var series: [TimeSeries]
    /// How the time column writes its stamps (one format for the whole column).
    public var format: TimeFormat
    /// The spacing every series shares.
    public var frequency: Frequency
    /// The covariate columns, in the order of each step's `covariates` values.
    public var covariateNames: [String]
    /// The time column's name (for writing forecasts back).
    public var timeColumn: String
    /// The series column's name in long format, nil when every target column is a series.
    public var seriesColumn: String?

    /// Creates data from series already read; each argument sets the property of the same name.
    public init(series: [TimeSeries], format: TimeFormat, frequency: Frequency, covariateNames: [String] = [],
                timeColumn: String = "time", seriesColumn: String? = nil) {
        self.series = series
        self.format = format
        self.frequency = frequency
        self.covariateNames = covariateNames
        self.timeColumn = timeColumn
        self.seriesColumn = seriesColumn
    }

    /// The series in `table`: long format (one `target` column and a `series` column naming each row's series)
    /// or wide (every `targets` column a series). The time column is `time`, else one named time, date, ds or
    /// timestamp, else the first column. Every bad cell is an error naming the line and the column.
    public static func read(_ table: CSVTable, source: String, targets: [String], time: String? = nil,
                            series seriesColumn: String? = nil, covariates: [String] = [],
                            fill: FillPolicy? = nil) throws(LSTMKitError) -> ForecastData {
        guard !table.rows.isEmpty else {
            throw .invalidInput("\(source) has a header but no data rows; give at least a few dozen rows")
        }
        guard !targets.isEmpty else { throw .invalidInput("name the column to forecast (the target)") }
        let timeIndex: Int
        if let time {
            timeIndex = try table.column(time, source: source)
        } else {
            timeIndex = table.header.firstIndex { ["time", "date", "ds", "timestamp"].contains($0.lowercased()) } ?? 0
        }
        let timeName = table.header[timeIndex]
        let targetIndices = try targets.map { name throws(LSTMKitError) in try table.column(name, source: source) }
        let covariateIndices = try covariates.map { name throws(LSTMKitError) in try table.column(name, source: source) }
        if let bad = (targetIndices + covariateIndices).first(where: { $0 == timeIndex }) {
            throw .invalidInput("\(source): column \(table.header[bad]) is the time column; choose another --time or target")
        }
        let seriesIndex = try seriesColumn.map { name throws(LSTMKitError) in try table.column(name, source: source) }
        if seriesIndex != nil && targets.count > 1 {
            throw .invalidInput("with a series column (long format) give one target column, got \(targets.count)")
        }

        // Time stamps: one format for the whole column.
        var stamps: [(format: TimeFormat, ordinal: Int)] = []
        for (r, row) in table.rows.enumerated() {
            guard let stamp = TimeStamps.parse(row[timeIndex]) else {
                throw .invalidInput("\(source) line \(table.lines[r]), column \(timeName): '\(row[timeIndex])' is not a time stamp (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS], YYYYQn or an integer)")
            }
            stamps.append(stamp)
        }
        var formats = Set(stamps.map(\.format))
        if formats == [.integer, .year] { formats = [.integer] }  // 998, 999, 1000: integers, not years
        guard formats.count == 1, let format = formats.first else {
            let first = stamps[0].format
            let r = stamps.firstIndex { $0.format != first && !(formats == [.integer] && $0.format == .year) } ?? 0
            throw .invalidInput("\(source) line \(table.lines[r]), column \(timeName): '\(table.rows[r][timeIndex])' is written differently from the first time stamp '\(table.rows[0][timeIndex])'; use one format for the whole column")
        }

        // Rows of each series, in order of first appearance.
        var groups: [(name: String, column: Int, rows: [Int])] = []
        if let seriesIndex {
            var position: [String: Int] = [:]
            for (r, row) in table.rows.enumerated() {
                let name = row[seriesIndex]
                if let k = position[name] { groups[k].rows.append(r) } else {
                    position[name] = groups.count
                    groups.append((name, targetIndices[0], [r]))
                }
            }
        } else {
            groups = targetIndices.map { (table.header[$0], $0, Array(table.rows.indices)) }
        }

        var result: [TimeSeries] = []
        var frequency: Frequency?
        for group in groups {
            let ordinals = group.rows.map { stamps[$0].ordinal }
            for k in 1..<max(1, ordinals.count) where ordinals[k] <= ordinals[k - 1] {
                let r = group.rows[k]
                throw .invalidInput("\(source) line \(table.lines[r]), column \(timeName): time stamp \(table.rows[r][timeIndex]) is \(ordinals[k] == ordinals[k - 1] ? "a duplicate of" : "before") the one on line \(table.lines[group.rows[k - 1]])\(groups.count > 1 ? " (series \(group.name))" : ""); sort the rows by time, one row per time stamp")
            }
            if ordinals.count >= 2 {
                let (f, irregular) = TimeStamps.frequency(of: ordinals, format: format)
                guard let f else {
                    let r = group.rows[irregular ?? 1]
                    throw .invalidInput("\(source) line \(table.lines[r]), column \(timeName): time stamp \(table.rows[r][timeIndex]) breaks the regular spacing of the rows before it\(groups.count > 1 ? " (series \(group.name))" : ""); add the missing rows (empty cells with --fill) or give evenly spaced time stamps")
                }
                if let frequency, frequency != f {
                    throw .invalidInput("\(source): series \(group.name) is \(f), but \(result[0].name) is \(frequency); give series of one frequency")
                }
                frequency = f
            }
            let values = try column(group.column, rows: group.rows, table: table, source: source, fill: fill)
            let covariateValues = try covariateIndices.map { c throws(LSTMKitError) in
                try column(c, rows: group.rows, table: table, source: source, fill: fill)
            }
            let perStep = (0..<values.count).map { t in covariateValues.map { $0[t] } }
            result.append(TimeSeries(name: group.name, values: values, times: ordinals, covariates: perStep))
        }
        guard let frequency else {
            throw .invalidInput("\(source): every series has a single row; a forecast needs a history")
        }
        return ForecastData(series: result, format: format, frequency: frequency,
                            covariateNames: covariateIndices.map { table.header[$0] }, timeColumn: timeName,
                            seriesColumn: seriesIndex.map { table.header[$0] })
    }

    /// The numbers of one column over `rows`, with empty and NaN cells filled as `fill` says (or refused).
    static func column(_ c: Int, rows: [Int], table: CSVTable, source: String,
                       fill: FillPolicy?) throws(LSTMKitError) -> [Double] {
        let name = table.header[c]
        var values: [Double?] = []
        for r in rows {
            let cell = table.rows[r][c].trimmingSpaces()
            if cell.isEmpty || ["nan", "na", "null"].contains(cell.lowercased()) {
                guard fill != nil else {
                    throw .invalidInput("\(source) line \(table.lines[r]), column \(name): \(cell.isEmpty ? "empty cell" : "'\(cell)'"); fill it in, or pass --fill previous or --fill linear")
                }
                values.append(nil)
                continue
            }
            guard let v = Double(cell), v.isFinite else {
                throw .invalidInput("\(source) line \(table.lines[r]), column \(name): '\(cell)' is not a number")
            }
            values.append(v)
        }
        guard let firstKnown = values.firstIndex(where: { $0 != nil }) else {
            throw .invalidInput("\(source): column \(name) has no numbers\(rows.count < table.rows.count ? " in one of its series" : "")")
        }
        var out = [Double](repeating: 0, count: values.count)
        var previous: Int?
        for k in values.indices {
            if let v = values[k] {
                out[k] = v
                if fill == .linear, let p = previous, k - p > 1 {
                    for j in (p + 1)..<k { out[j] = out[p] + (v - out[p]) * Double(j - p) / Double(k - p) }
                }
                previous = k
            } else {
                out[k] = previous.map { out[$0] } ?? values[firstKnown]!
            }
        }
        return out
    }
}
