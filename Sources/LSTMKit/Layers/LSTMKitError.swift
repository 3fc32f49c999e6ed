/// Errors LSTMKit reports to its callers. Each description is one line: what was wrong and what to do.
public enum LSTMKitError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidConfiguration(String)
    case shapeMismatch(String)
    case invalidInput(String)
    case nonFinite(String)
    /// Training produced non-finite parameters (the update itself diverged); the trainer must not be saved.
    case diverged(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let s): return "invalid configuration: \(s)"
        case .shapeMismatch(let s): return "shape mismatch: \(s)"
        case .invalidInput(let s): return s
        case .nonFinite(let s): return "non-finite value: \(s)"
        case .diverged(let s): return "training diverged: \(s)"
        }
    }
}
