/// Errors LSTMKit reports to its callers. Each description is one line: what was wrong and what to do.
public enum LSTMKitError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A model, layer or training setting that cannot be used (a size below 1, a rate outside its range, …).
    case invalidConfiguration(String)
    /// Data whose size or content does not fit the model (a count, a layout, a token outside the vocabulary).
    case shapeMismatch(String)
    /// User-supplied data that cannot be used (a file, a column, a value); the message is shown as it is.
    case invalidInput(String)
    /// A NaN or infinity where a finite number is needed (a loss, a gradient, a parameter about to be saved).
    case nonFinite(String)
    /// Training produced non-finite parameters (the update itself diverged); the trainer must not be saved.
    case diverged(String)
    /// A data-parallel job that cannot go on: MPI missing or failing, processes that disagree (flags, data,
    /// parameters), a process count that does not divide the shards.
    case distributed(String)

    /// The message, prefixed with the kind of error (no prefix for `invalidInput`).
    public var description: String {
        switch self {
        case .invalidConfiguration(let s): return "invalid configuration: \(s)"
        case .shapeMismatch(let s): return "shape mismatch: \(s)"
        case .invalidInput(let s): return s
        case .nonFinite(let s): return "non-finite value: \(s)"
        case .diverged(let s): return "training diverged: \(s)"
        case .distributed(let s): return "distributed training: \(s)"
        }
    }
}
