/// How a time column writes its stamps, and how they are read back and continued.
public enum TimeFormat: String, Sendable, Hashable, Codable {
    /// `1949`
    case year
    /// `1949Q1` (also read: `1949-Q1`)
    case quarter
    /// `1949-01`
    case month
    /// `1949-01-31`
    case date
    /// `2024-03-01 13:00` (also read with `T`)
    case minute
    /// `2024-03-01 13:00:05`
    case second
    /// `17`
    case integer
}

/// The spacing of a series: a count of a calendar unit (1 month, 3 months, 7 days, 1 hour, …).
public struct Frequency: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The calendar unit of a frequency; minutes and hours count in `second`, weeks in `day`.
    public enum Unit: String, Sendable, Hashable, Codable {
        /// Calendar years.
        case year
        /// Calendar quarters.
        case quarter
        /// Calendar months.
        case month
        /// Days (weeks are 7 of them).
        case day
        /// Seconds (minutes and hours are multiples).
        case second
        /// Plain integer time stamps, one unit apart per step.
        case integer
    }
    /// The unit `step` counts.
    public var unit: Unit
    /// How many units lie between consecutive time stamps.
    public var step: Int

    /// A frequency of one time stamp every `step` units.
    /// - Parameters:
    ///   - unit: The calendar unit.
    ///   - step: The units between consecutive stamps.
    public init(_ unit: Unit, step: Int = 1) {
        self.unit = unit
        self.step = step
    }

    /// Its name as people say it: monthly, quarterly, weekly, daily, hourly, every 15 minutes, …
    public var description: String {
        switch (unit, step) {
        case (.year, 1): return "yearly"
        case (.quarter, 1), (.month, 3): return "quarterly"
        case (.month, 1): return "monthly"
        case (.day, 7): return "weekly"
        case (.day, 1), (.second, 86_400): return "daily"
        case (.second, 3600): return "hourly"
        case (.second, let s) where s % 60 == 0: return "every \(s / 60) minutes"
        case (.integer, 1): return "every step (integer time)"
        default: return "every \(step) \(unit.rawValue)s"
        }
    }

    /// The season length its calendar suggests: monthly 12, quarterly 4, weekly 52, daily 7, hourly 24, yearly 1.
    public var defaultSeason: Int {
        switch (unit, step) {
        case (.month, 1): return 12
        case (.quarter, 1), (.month, 3): return 4
        case (.day, 7): return 52
        case (.day, 1), (.second, 86_400): return 7
        case (.second, let s) where s > 0 && 86_400 % s == 0 && s < 86_400: return 86_400 / s
        default: return 1
        }
    }

    /// M4's horizon for the frequency: yearly 6, quarterly 8, monthly 18, weekly 13, daily 14, hourly 48.
    public var defaultHorizon: Int {
        switch (unit, step) {
        case (.year, _): return 6
        case (.quarter, 1), (.month, 3): return 8
        case (.month, 1): return 18
        case (.day, 7): return 13
        case (.day, 1), (.second, 86_400): return 14
        case (.second, let s) where s < 86_400: return max(1, 2 * 86_400 / s)
        default: return 10
        }
    }
}

/// Reading, ordering and continuing time stamps. A stamp becomes an ordinal in its format's unit (years, quarters,
/// months, days since 1970-01-01, seconds since 1970-01-01 00:00, or the integer itself), so spacing is subtraction.
public enum TimeStamps {
    /// The format of `text` and its ordinal, or nil if it is none of the formats.
    public static func parse(_ text: String) -> (format: TimeFormat, ordinal: Int)? {
        let trimmed = text.trimmingSpaces()
        if let v = Int(trimmed), !trimmed.hasPrefix("+") {
            return (trimmed.count == 4 && v >= 1000 ? .year : .integer, v)
        }
        let s = Array(trimmed.unicodeScalars)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= s.count, !range.isEmpty else { return nil }
            var v = 0
            for k in range {
                guard s[k].value >= 48 && s[k].value <= 57 else { return nil }
                v = v * 10 + Int(s[k].value - 48)
            }
            return v
        }
        guard s.count >= 4, let year = number(0..<4) else { return nil }
        if s.count == 4 { return (.year, year) }
        if s.count == 6 || s.count == 7, s[s.count - 2] == "Q", let q = number((s.count - 1)..<s.count), (1...4).contains(q),
           s.count == 6 || s[4] == "-" {
            return (.quarter, year * 4 + q - 1)
        }
        guard s.count >= 7, s[4] == "-", let month = number(5..<7), (1...12).contains(month) else { return nil }
        if s.count == 7 { return (.month, year * 12 + month - 1) }
        guard s.count >= 10, s[7] == "-", let day = number(8..<10), day >= 1, day <= daysIn(month: month, year: year) else {
            return nil
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        if s.count == 10 { return (.date, days) }
        guard s.count >= 16, s[10] == " " || s[10] == "T", let hour = number(11..<13), hour < 24, s[13] == ":",
              let minute = number(14..<16), minute < 60 else { return nil }
        let base = days * 86_400 + hour * 3600 + minute * 60
        if s.count == 16 { return (.minute, base) }
        guard s.count == 19, s[16] == ":", let second = number(17..<19), second < 60 else { return nil }
        return (.second, base + second)
    }

    /// `ordinal` written in `format`.
    public static func format(_ ordinal: Int, as format: TimeFormat) -> String {
        func pad(_ v: Int, _ n: Int) -> String {
            let t = String(v)
            return String(repeating: "0", count: max(0, n - t.count)) + t
        }
        switch format {
        case .integer: return String(ordinal)
        case .year: return pad(ordinal, 4)
        case .quarter: return pad(floorDiv(ordinal, 4), 4) + "Q" + String(ordinal - 4 * floorDiv(ordinal, 4) + 1)
        case .month: return pad(floorDiv(ordinal, 12), 4) + "-" + pad(ordinal - 12 * floorDiv(ordinal, 12) + 1, 2)
        case .date:
            let (y, m, d) = civilFromDays(ordinal)
            return pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2)
        case .minute, .second:
            let days = floorDiv(ordinal, 86_400), rest = ordinal - days * 86_400
            let (y, m, d) = civilFromDays(days)
            let hm = pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2) + " " + pad(rest / 3600, 2) + ":" + pad(rest % 3600 / 60, 2)
            return format == .minute ? hm : hm + ":" + pad(rest % 60, 2)
        }
    }

    /// The frequency of sorted, distinct ordinals of one format, or nil when their spacing is irregular (then
    /// `irregularIndex` is the first stamp that breaks it). Dates on the same day of every month (or on every
    /// month's last day) are monthly, quarterly or yearly by their month spacing.
    public static func frequency(of ordinals: [Int], format: TimeFormat) -> (frequency: Frequency?, irregularIndex: Int?) {
        guard ordinals.count >= 2 else { return (nil, nil) }
        // Integer stamps span all of Int: a gap wider than Int.max (found by the CSV fuzzer: -8.6e18 then 8.6e18)
        // is no regular spacing, not an overflow.
        func constant(_ values: [Int]) -> (Int?, Int?) {
            let (d, wide) = values[1].subtractingReportingOverflow(values[0])
            if wide { return (nil, 1) }
            for k in 2..<values.count {
                let (step, over) = values[k].subtractingReportingOverflow(values[k - 1])
                if over || step != d { return (nil, k) }
            }
            return (d, nil)
        }
        let unit: Frequency.Unit
        var values = ordinals
        switch format {
        case .year: unit = .year
        case .quarter: unit = .quarter
        case .month: unit = .month
        case .integer: unit = .integer
        case .minute, .second: unit = .second
        case .date:
            let dates = ordinals.map(civilFromDays)
            let sameDay = Set(dates.map(\.2)).count == 1 && dates[0].2 <= 28
            let monthEnds = dates.allSatisfy { $0.2 == daysIn(month: $0.1, year: $0.0) }
            if sameDay || monthEnds {
                values = dates.map { $0.0 * 12 + $0.1 - 1 }
                let (d, bad) = constant(values)
                guard let d, d > 0 else { return (nil, bad) }
                return (d % 12 == 0 ? Frequency(.year, step: d / 12) : Frequency(.month, step: d), nil)
            }
            unit = .day
        }
        let (d, bad) = constant(values)
        guard let d, d > 0 else { return (nil, bad) }
        return (Frequency(unit, step: d), nil)
    }

    /// The stamp `count` steps of `frequency` after `ordinal` (for dates on a day of the month: that day, or the
    /// month's last day, of the later month). Integer stamps near the ends of Int stop at Int.min or Int.max.
    public static func advance(_ ordinal: Int, by count: Int, frequency: Frequency, format: TimeFormat) -> Int {
        guard format == .date, frequency.unit == .month || frequency.unit == .year else {
            let (span, wide) = count.multipliedReportingOverflow(by: frequency.step)
            let (stamp, over) = ordinal.addingReportingOverflow(span)
            if wide || over { return (count < 0) == (frequency.step < 0) ? Int.max : Int.min }
            return stamp
        }
        let (y, m, d) = civilFromDays(ordinal)
        let months = y * 12 + m - 1 + count * frequency.step * (frequency.unit == .year ? 12 : 1)
        let (ny, nm) = (floorDiv(months, 12), months - 12 * floorDiv(months, 12) + 1)
        let lastDay = d == daysIn(month: m, year: y)
        return daysFromCivil(year: ny, month: nm, day: lastDay ? daysIn(month: nm, year: ny) : min(d, daysIn(month: nm, year: ny)))
    }

    /// The position of a stamp inside the season (0 ..< season), the same for every series of a frequency: month of
    /// the year, quarter, day of the week, hour of the day, …
    public static func phase(_ ordinal: Int, frequency: Frequency, format: TimeFormat, season: Int) -> Int {
        guard season > 1 else { return 0 }
        var index = ordinal / max(1, frequency.step)
        if format == .date, frequency.unit == .month || frequency.unit == .year {
            let (y, m, _) = civilFromDays(ordinal)
            index = (y * 12 + m - 1) / frequency.step
        } else if frequency.unit == .second || frequency.unit == .day {
            index = floorDiv(ordinal, frequency.step)
        }
        return index - season * floorDiv(index, season)
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month m: Int, year y: Int) -> Int {
        [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func daysFromCivil(year: Int, month m: Int, day d: Int) -> Int {
        let y = m <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
