/// A batch of B sequences of T steps, carrying its own shape: numeric features (B rows of F values per step) or
/// token ids, laid out time-major (T, B, ·) or batch-first (B, T, ·), with optional per-row lengths.
///
/// Every initializer checks the shape and throws `LSTMKitError.shapeMismatch` naming what was given and what was
/// expected, so a wrong shape is a readable error in release builds too.
public struct SequenceBatch<Scalar: LSTMScalar>: Sendable {
    /// The batch's numbers: features or token ids, laid out as the batch's `layout` says.
    public enum Values: Sendable {
        /// (T, B, F) or (B, T, F).
        case features([Scalar])
        /// (T, B) or (B, T).
        case tokens([Int32])
    }

    /// The features or token ids, laid out as `layout` says.
    public let values: Values
    /// T: the longest row's steps.
    public let steps: Int
    /// B: the number of sequences.
    public let batch: Int
    /// F: values per step (1 for tokens).
    public let features: Int
    /// Whether `values` is time-major (T, B, ·) or batch-first (B, T, ·).
    public let layout: SequenceLayout
    /// The real steps of each row (1...T), nil when every row has T.
    public let lengths: [Int]?

    /// Numeric features, already laid out: `values` holds T·B·F numbers.
    public init(features values: [Scalar], steps T: Int, batch B: Int, features F: Int,
                layout: SequenceLayout = .timeMajor, lengths: [Int]? = nil) throws(LSTMKitError) {
        guard F >= 1 else { throw .shapeMismatch("SequenceBatch: features must be at least 1, got \(F)") }
        try Self.checkShape(values.count, steps: T, batch: B, width: F, lengths: lengths, what: "values")
        self.values = .features(values)
        (steps, batch, features, self.layout, self.lengths) = (T, B, F, layout, lengths)
        // Padding is never read (NaN there is fine); real steps must be finite.
        for t in 0..<T {
            for b in 0..<B where isReal(step: t, row: b) {
                let base = index(step: t, row: b) * F
                if let j = (0..<F).first(where: { !values[base + $0].isFinite }) {
                    throw .invalidInput("SequenceBatch: value \(j) of step \(t) of row \(b) is \(values[base + j]); inputs must be finite numbers")
                }
            }
        }
    }

    /// Token ids, already laid out: `tokens` holds T·B ids.
    public init(tokens: [Int32], steps T: Int, batch B: Int, layout: SequenceLayout = .timeMajor,
                lengths: [Int]? = nil) throws(LSTMKitError) {
        try Self.checkShape(tokens.count, steps: T, batch: B, width: 1, lengths: lengths, what: "tokens")
        values = .tokens(tokens)
        (steps, batch, features, self.layout, self.lengths) = (T, B, 1, layout, lengths)
    }

    /// B sequences of any lengths, each a list of steps of F values: padded to the longest, batch-first.
    public init(sequences: [[[Scalar]]]) throws(LSTMKitError) {
        guard let F = sequences.first?.first?.count else {
            throw .shapeMismatch("SequenceBatch: got no sequences or an empty first sequence, expected at least one step")
        }
        let lengths = sequences.map(\.count)
        let T = lengths.max() ?? 0
        var values = [Scalar](repeating: 0, count: sequences.count * T * F)
        for (b, sequence) in sequences.enumerated() {
            for (t, step) in sequence.enumerated() {
                guard step.count == F else {
                    throw .shapeMismatch("SequenceBatch: sequence \(b) step \(t) has \(step.count) values, expected \(F) like the first step")
                }
                for (j, v) in step.enumerated() { values[(b * T + t) * F + j] = v }
            }
        }
        try self.init(features: values, steps: T, batch: sequences.count, features: F, layout: .batchFirst,
                      lengths: Set(lengths).count == 1 ? nil : lengths)
    }

    /// B sequences of one value per step (a univariate series each), of any lengths.
    public init(series: [[Scalar]]) throws(LSTMKitError) {
        try self.init(sequences: series.map { $0.map { [$0] } })
    }

    /// B token sequences of any lengths, padded to the longest (with id 0, never read), batch-first.
    public init(tokenSequences: [[Int32]]) throws(LSTMKitError) {
        let lengths = tokenSequences.map(\.count)
        let T = lengths.max() ?? 0
        var tokens = [Int32](repeating: 0, count: tokenSequences.count * T)
        for (b, sequence) in tokenSequences.enumerated() {
            for (t, token) in sequence.enumerated() { tokens[b * T + t] = token }
        }
        try self.init(tokens: tokens, steps: T, batch: tokenSequences.count, layout: .batchFirst,
                      lengths: Set(lengths).count == 1 ? nil : lengths)
    }

    static func checkShape(_ count: Int, steps T: Int, batch B: Int, width F: Int, lengths: [Int]?,
                           what: String) throws(LSTMKitError) {
        guard T >= 1 else { throw .shapeMismatch("SequenceBatch: steps must be at least 1, got \(T)") }
        guard B >= 1 else { throw .shapeMismatch("SequenceBatch: batch must be at least 1, got \(B)") }
        guard count == T * B * F else {
            throw .shapeMismatch("SequenceBatch: got \(count) \(what), expected steps × batch\(F > 1 ? " × features" : "") = \(T) × \(B)\(F > 1 ? " × \(F)" : "") = \(T * B * F)")
        }
        if let lengths {
            guard lengths.count == B else {
                throw .shapeMismatch("SequenceBatch: got \(lengths.count) lengths, expected one per row (batch \(B))")
            }
            if let bad = lengths.firstIndex(where: { $0 < 1 || $0 > T }) {
                throw .shapeMismatch("SequenceBatch: length \(lengths[bad]) of row \(bad) is outside 1...\(T) (steps)")
            }
        }
    }

    /// Whether (step t, row b) is a real step, not padding.
    func isReal(step t: Int, row b: Int) -> Bool { lengths.map { t < $0[b] } ?? true }

    /// The position of (t, b) in the batch's layout.
    func index(step t: Int, row b: Int) -> Int { layout == .timeMajor ? t * batch + b : b * steps + t }
}

/// What a model is trained to produce for a batch: one class per row or step (cross-entropy), or values (MSE and the
/// quantile loss: `outputs` numbers per row or step).
public enum SequenceTargets<Scalar: LSTMScalar>: Sendable {
    /// Class ids: B of them for a last-step head, T·B in the batch's layout for an every-step head (padding ignored).
    case classes([Int32])
    /// B·outputs values for a last-step head, T·B·outputs in the batch's layout for an every-step head.
    case values([Scalar])
}
