import Foundation

/// Point-forecast accuracy over a held-out window, as the M4 competition scores it.
///
/// ```
/// MAE   = mean |y − ŷ|                RMSE = √ mean (y − ŷ)²
/// sMAPE = 100 · mean 2|y − ŷ| / (|y| + |ŷ|)              (a term with y = ŷ = 0 counts 0)
/// MASE  = MAE / mean_{t>m} |y_t − y_{t−m}| over the training history (m = season; the in-sample seasonal-naive error)
/// ```
public struct ForecastAccuracy: Sendable, Hashable, Codable {
    /// Mean absolute error, in the series' units.
    public var mae: Double
    /// Root mean squared error, in the series' units.
    public var rmse: Double
    /// Symmetric mean absolute percentage error, in percent (0 to 200).
    public var smape: Double
    /// Mean absolute scaled error: MAE over the history's in-sample seasonal-naive MAE (infinity when that is 0).
    public var mase: Double

    /// Scores a point forecast against the values that occurred.
    /// - Parameters:
    ///   - actual: The held-out values, oldest first.
    ///   - forecast: The forecast of the same steps, as many as `actual`.
    ///   - history: The values before the held-out window; they scale MASE.
    ///   - season: The season length m of MASE's seasonal-naive scale (1 for naive).
    public init(actual: [Double], forecast: [Double], history: [Double], season: Int) {
        let n = Double(max(actual.count, 1))
        var absolute = 0.0, squared = 0.0, symmetric = 0.0
        for (y, f) in zip(actual, forecast) {
            absolute += abs(y - f)
            squared += (y - f) * (y - f)
            let d = abs(y) + abs(f)
            symmetric += d > 0 ? 2 * abs(y - f) / d : 0
        }
        mae = absolute / n
        rmse = (squared / n).squareRoot()
        smape = 100 * symmetric / n
        let scale = Self.scale(history, season: season)
        mase = scale > 0 ? mae / scale : .infinity
    }

    /// The in-sample seasonal-naive MAE (naive for m = 1, or when the history is not longer than m).
    public static func scale(_ history: [Double], season m: Int) -> Double {
        let lag = history.count > m && m >= 1 ? m : 1
        guard history.count > lag else { return 0 }
        var sum = 0.0
        for t in lag..<history.count { sum += abs(history[t] - history[t - lag]) }
        return sum / Double(history.count - lag)
    }

    /// Averages over several windows (folds or series): arithmetic for MAE, RMSE and sMAPE, geometric for MASE.
    public static func mean(_ all: [ForecastAccuracy]) -> ForecastAccuracy {
        var m = ForecastAccuracy(actual: [], forecast: [], history: [], season: 1)
        let n = Double(max(all.count, 1))
        m.mae = all.map(\.mae).reduce(0, +) / n
        m.rmse = all.map(\.rmse).reduce(0, +) / n
        m.smape = all.map(\.smape).reduce(0, +) / n
        m.mase = exp(all.map { log(max($0.mase, 1e-12)) }.reduce(0, +) / n)
        return m
    }
}

/// The simple forecasts a model must beat.
public enum Baseline: String, Sendable, Hashable, Codable, CaseIterable {
    /// The last value, repeated.
    case naive
    /// The value one season earlier: ŷ_{T+h} = y_{T+h−m·⌈h/m⌉}.
    case seasonalNaive = "seasonal naive"
    /// The line through the first and the last value, continued.
    case drift

    /// The next `H` values after `history` by this method (zeros for an empty history).
    /// - Parameters:
    ///   - history: The observed values, oldest first.
    ///   - H: The number of steps to forecast.
    ///   - m: The season length; seasonal naive acts as naive when m ≤ 1 or the history is shorter than m.
    /// - Returns: `H` values, one per step ahead.
    public func forecast(_ history: [Double], horizon H: Int, season m: Int) -> [Double] {
        guard let last = history.last else { return [Double](repeating: 0, count: H) }
        switch self {
        case .naive:
            return [Double](repeating: last, count: H)
        case .seasonalNaive:
            guard m > 1, history.count >= m else { return [Double](repeating: last, count: H) }
            return (1...max(H, 1)).prefix(H).map { h in history[history.count - m + (h - 1) % m] }
        case .drift:
            let slope = history.count > 1 ? (last - history[0]) / Double(history.count - 1) : 0
            return (1...max(H, 1)).prefix(H).map { last + slope * Double($0) }
        }
    }
}
