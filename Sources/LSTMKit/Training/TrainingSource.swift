/// One step's data from a `TrainingSource`.
public struct TrainingBatch: Sendable {
    /// The input sequences of the step.
    public var input: SequenceBatch<Float>
    /// What the model should predict for `input`.
    public var targets: SequenceTargets<Float>
    /// The rows continue the rows of the batch before (truncated BPTT): the trainer starts them from the state that
    /// batch ended in, as a constant (no gradient crosses the boundary). False: from zero.
    public var continuesState: Bool

    /// Creates a batch; by default its rows start from a zero state.
    public init(input: SequenceBatch<Float>, targets: SequenceTargets<Float>, continuesState: Bool = false) {
        self.input = input
        self.targets = targets
        self.continuesState = continuesState
    }
}

/// Where a source is in its data: saved in every checkpoint so that a resumed run reads the same batches.
public struct SourceCursor: Sendable, Hashable, Codable {
    /// Completed passes over the training data.
    public var epoch = 0
    /// The position inside the epoch, in the source's own unit (a stream offset, a batch start).
    public var position = 0

    /// Creates a cursor at `position` in `epoch`; the defaults are the very start of the data.
    public init(epoch: Int = 0, position: Int = 0) {
        self.epoch = epoch
        self.position = position
    }
}

/// The data a `Trainer` reads: training batches in a fixed order that depends only on the seed and the cursor, and
/// validation batches.
public protocol TrainingSource {
    /// Where the source is in its data; the trainer saves it in checkpoints and sets it when resuming.
    var cursor: SourceCursor { get set }
    /// Batches in one pass over the training data.
    var batchesPerEpoch: Int { get }
    /// Rows whose LSTM state carries from batch to batch (truncated BPTT), nil when every batch starts from zero.
    var carriedRows: Int? { get }
    /// Training tokens or steps in one batch, for throughput.
    var stepsPerBatch: Int { get }
    /// The batch at the cursor, moving into the next epoch first when this one is used up (the cursor says so).
    mutating func nextBatch() -> TrainingBatch
    /// Moves the cursor past the batch `nextBatch` returned.
    mutating func advance()
    /// The number of validation batches; 0 without validation data.
    var validationBatchCount: Int { get }
    /// Validation batch k (0 ..< validationBatchCount), read in order.
    func validationBatch(_ k: Int) -> TrainingBatch
    /// Identifies the data and how it is cut (a checkpoint resumes only on the source it was written with).
    var fingerprint: String { get }
}

/// 64-bit FNV-1a, fed 64-bit words.
struct Fingerprint {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ v: UInt64) {
        var v = v
        for _ in 0..<8 {
            h = (h ^ (v & 0xFF)) &* 0x0000_0100_0000_01B3
            v >>= 8
        }
    }
    mutating func add(_ v: Int) { add(UInt64(bitPattern: Int64(v))) }
    mutating func add(_ v: Float) { add(UInt64(v.bitPattern)) }
    var text: String { String(h, radix: 16) }
}

/// A token stream cut char-rnn style: the training tokens are split into `batch` contiguous streams, each read
/// window by window (`steps` tokens predicting the next ones), the state carried from one window to the next of the
/// same stream. At the end of the streams a new epoch starts from position 0 and a zero state.
///
/// Validation reads the validation tokens as up to `batch` streams of their own from a zero state, in windows of
/// `steps`.
public struct TokenStreams: TrainingSource {
    /// The training tokens, cut into `batch` contiguous streams of `streamLength` tokens (any remainder is not read).
    public let tokens: ArraySlice<Int32>
    /// The validation tokens.
    public let validationTokens: ArraySlice<Int32>
    /// The number of streams B read side by side: the rows of every batch.
    public let batch: Int
    /// The window length T: the steps of every training batch.
    public let steps: Int
    /// The cursor; its `position` is the offset of the next window inside every stream.
    public var cursor = SourceCursor()
    /// Tokens in each training stream.
    public let streamLength: Int
    private let validationRows: Int
    private let validationLength: Int

    /// Cuts `tokens` into `batch` streams read `steps` tokens at a time, and `validation` into up to `batch`
    /// streams of its own.
    ///
    /// - Throws: `LSTMKitError.invalidConfiguration` when `batch` or `steps` is below 1; `LSTMKitError.invalidInput`
    ///   when `tokens` holds fewer than `batch` × (`steps` + 1) tokens.
    public init(tokens: ArraySlice<Int32>, validation: ArraySlice<Int32>, batch B: Int, steps T: Int) throws(LSTMKitError) {
        guard T >= 1 else { throw .invalidConfiguration("TokenStreams: steps must be at least 1, got \(T)") }
        guard B >= 1 else { throw .invalidConfiguration("TokenStreams: batch must be at least 1, got \(B)") }
        guard tokens.count >= B * (T + 1) else {
            throw .invalidInput("TokenStreams: \(tokens.count) training tokens are too few for one window: batch × (steps + 1) = \(B) × \(T + 1) = \(B * (T + 1))")
        }
        self.tokens = tokens
        validationTokens = validation
        batch = B
        steps = T
        streamLength = tokens.count / B
        let n = validation.count
        validationRows = max(1, min(B, n / (T + 1)))
        validationLength = n / validationRows
    }

    /// Windows in one pass over the streams: (`streamLength` − 1) / `steps`.
    public var batchesPerEpoch: Int { (streamLength - 1) / steps }
    /// `batch`: every stream's state carries from one window to the next.
    public var carriedRows: Int? { batch }
    /// Identifies the training and validation tokens, `batch` and `steps` (a hash with the prefix `streams:`).
    public var fingerprint: String {
        var f = Fingerprint()
        for v in [batch, steps, tokens.count, validationTokens.count] { f.add(v) }
        for t in tokens { f.add(Int(t)) }
        for t in validationTokens { f.add(Int(t)) }
        return "streams:" + f.text
    }
    /// The tokens of one window: `steps` × `batch`.
    public var stepsPerBatch: Int { steps * batch }

    /// The window at the cursor: `steps` tokens of every stream, each predicting the one after it. When the
    /// streams are used up the cursor first moves to position 0 of the next epoch, where the state starts from zero.
    public mutating func nextBatch() -> TrainingBatch {
        if cursor.position + steps + 1 > streamLength {
            cursor.position = 0
            cursor.epoch += 1
        }
        let (T, B) = (steps, batch)
        var inputs = [Int32](repeating: 0, count: T * B), targets = inputs
        let base = tokens.startIndex
        for b in 0..<B {
            let start = base + b * streamLength + cursor.position
            for t in 0..<T {
                inputs[t * B + b] = tokens[start + t]
                targets[t * B + b] = tokens[start + t + 1]
            }
        }
        return TrainingBatch(input: try! SequenceBatch(tokens: inputs, steps: T, batch: B), targets: .classes(targets),
                             continuesState: cursor.position > 0)
    }

    /// Moves the cursor `steps` tokens on, to the next window.
    public mutating func advance() { cursor.position += steps }

    /// Whether a stored cursor fits these streams (a damaged or foreign checkpoint may hold any number).
    public func isValid(_ cursor: SourceCursor) -> Bool {
        cursor.position >= 0 && cursor.position <= streamLength && cursor.epoch >= 0
    }

    /// Windows of `steps` over the validation streams (the last may be shorter); 0 with fewer than 2 validation tokens.
    public var validationBatchCount: Int {
        guard validationTokens.count >= 2 else { return 0 }
        return (max(0, validationLength - 1) + steps - 1) / steps
    }

    /// Validation window k of every validation stream; every window after the first continues the one before.
    ///
    /// - Parameter k: The window, in 0 ..< `validationBatchCount`.
    public func validationBatch(_ k: Int) -> TrainingBatch {
        let B = validationRows, L = validationLength, p = k * steps
        let T = min(steps, L - 1 - p)
        var inputs = [Int32](repeating: 0, count: T * B), targets = inputs
        let base = validationTokens.startIndex
        for b in 0..<B {
            for t in 0..<T {
                inputs[t * B + b] = validationTokens[base + b * L + p + t]
                targets[t * B + b] = validationTokens[base + b * L + p + t + 1]
            }
        }
        return TrainingBatch(input: try! SequenceBatch(tokens: inputs, steps: T, batch: B), targets: .classes(targets),
                             continuesState: k > 0)
    }
}

/// Independent sequences (classification, regression, forecasting windows), each with its own target, reshuffled
/// every epoch from the seed and read `batch` at a time (the last batch of an epoch may be smaller). Rows of a batch
/// may have different lengths; every batch starts from a zero state.
public struct SequenceDataset: TrainingSource {
    /// One sequence and what the model should predict for it.
    public struct Example: Sendable {
        /// A sequence's steps: feature vectors or token ids.
        public enum Input: Sendable {
            /// Steps of F features.
            case features([[Float]])
            /// Token ids, one per step.
            case tokens([Int32])
        }
        /// The sequence.
        public var input: Input
        /// A class (cross-entropy) or values (MSE, quantiles): for a last-step head one target per sequence, for an
        /// every-step head one per step.
        public var target: SequenceTargets<Float>

        /// Creates an example from its sequence and its target.
        public init(input: Input, target: SequenceTargets<Float>) {
            self.input = input
            self.target = target
        }

        var steps: Int {
            switch input {
            case .features(let steps): return steps.count
            case .tokens(let tokens): return tokens.count
            }
        }
    }

    /// The training examples.
    public let examples: [Example]
    /// The validation examples, read in order, `batch` at a time.
    public let validationExamples: [Example]
    /// Examples per batch (the last batch of an epoch, and of validation, may hold fewer).
    public let batch: Int
    /// Seeds the shuffle of every epoch.
    public let seed: UInt64
    /// Targets hold one class, or `outputs` values, per step (an every-step head) rather than per sequence.
    public let targetsPerStep: Bool
    /// The cursor; its `position` counts the examples of the epoch already read.
    public var cursor = SourceCursor()
    private var order: [Int]
    private var orderEpoch: Int

    /// Creates a dataset from training and validation examples, which must all be alike (same input kind, features
    /// per step and number of targets).
    ///
    /// - Throws: `LSTMKitError.invalidConfiguration` when `batch` is below 1; `LSTMKitError.invalidInput` without
    ///   training examples, or for an example without steps or with a value that is not finite;
    ///   `LSTMKitError.shapeMismatch` when examples are not alike.
    public init(_ examples: [Example], validation: [Example] = [], batch: Int, seed: UInt64 = 1,
                targetsPerStep: Bool = false) throws(LSTMKitError) {
        guard batch >= 1 else { throw .invalidConfiguration("SequenceDataset: batch must be at least 1, got \(batch)") }
        guard !examples.isEmpty else { throw .invalidInput("SequenceDataset: no training examples") }
        try Self.checkAlike(examples + validation, targetsPerStep: targetsPerStep)
        self.examples = examples
        validationExamples = validation
        self.batch = batch
        self.seed = seed
        self.targetsPerStep = targetsPerStep
        orderEpoch = 0
        order = Self.permutation(examples.count, seed: seed, epoch: 0)
    }

    /// Every example has steps, the same kind of input and features per step, and the same kind and count of
    /// targets (per step: one class, or the same number of values, for each step).
    static func checkAlike(_ examples: [Example], targetsPerStep: Bool) throws(LSTMKitError) {
        func width(_ e: Example) -> Int? { if case .features(let s) = e.input { s.first?.count ?? 0 } else { nil } }
        func targetCount(_ e: Example) -> (classes: Bool, count: Int) {
            switch e.target {
            case .classes(let c): return (true, c.count)
            case .values(let v): return (false, v.count)
            }
        }
        let first = examples[0], firstTarget = targetCount(first)
        let perStepValues = targetsPerStep && !firstTarget.classes ? firstTarget.count / max(1, first.steps) : 0
        for (k, e) in examples.enumerated() {
            guard e.steps >= 1 else { throw .invalidInput("SequenceDataset: example \(k) has no steps") }
            if case .features(let steps) = e.input {
                if let bad = steps.firstIndex(where: { $0.isEmpty || $0.contains { !$0.isFinite } }) {
                    throw .invalidInput("SequenceDataset: example \(k) step \(bad) has \(steps[bad].isEmpty ? "no features" : "a value that is not a finite number"); give every step at least one finite value")
                }
            }
            if case .values(let v) = e.target, v.contains(where: { !$0.isFinite }) {
                throw .invalidInput("SequenceDataset: example \(k) has a target that is not a finite number")
            }
            if case .features(let steps) = e.input, let bad = steps.firstIndex(where: { $0.count != width(first) }) {
                throw .shapeMismatch("SequenceDataset: example \(k) step \(bad) has \(steps[bad].count) features, expected \(width(first).map(String.init) ?? "token ids") like example 0")
            }
            guard (width(e) == nil) == (width(first) == nil) else {
                throw .shapeMismatch("SequenceDataset: example \(k) mixes token ids and features with example 0")
            }
            let t = targetCount(e)
            let expected = targetsPerStep ? (t.classes ? e.steps : perStepValues * e.steps) : (t.classes ? 1 : firstTarget.count)
            guard t.classes == firstTarget.classes, t.count == expected, expected >= 1 else {
                throw .shapeMismatch("SequenceDataset: example \(k) has \(t.count) \(t.classes ? "classes" : "target values"), expected \(expected) \(firstTarget.classes ? "classes" : "values")\(targetsPerStep ? " (per step)" : " like example 0")")
            }
        }
    }

    /// Numeric sequences (one value per step) with a class each; the last `validationFraction` of them (in the
    /// order given) held out for validation.
    public init(series: [[Float]], classes: [Int32], validationFraction: Double = 0, batch: Int,
                seed: UInt64 = 1) throws(LSTMKitError) {
        guard series.count == classes.count else {
            throw .shapeMismatch("SequenceDataset: got \(series.count) series and \(classes.count) classes, expected one class per series")
        }
        let examples = zip(series, classes).map { Example(input: .features($0.map { [$0] }), target: .classes([$1])) }
        try self.init(splitting: examples, validationFraction: validationFraction, batch: batch, seed: seed)
    }

    /// Numeric sequences (one value per step) with target values each (`outputs` per sequence).
    public init(series: [[Float]], values: [[Float]], validationFraction: Double = 0, batch: Int,
                seed: UInt64 = 1) throws(LSTMKitError) {
        guard series.count == values.count else {
            throw .shapeMismatch("SequenceDataset: got \(series.count) series and \(values.count) targets, expected one target per series")
        }
        let examples = zip(series, values).map { Example(input: .features($0.map { [$0] }), target: .values($1)) }
        try self.init(splitting: examples, validationFraction: validationFraction, batch: batch, seed: seed)
    }

    init(splitting examples: [Example], validationFraction f: Double, batch: Int, seed: UInt64) throws(LSTMKitError) {
        guard f >= 0 && f < 1 else { throw .invalidConfiguration("SequenceDataset: validationFraction must be in [0, 1), got \(f)") }
        let held = Int((Double(examples.count) * f).rounded())
        try self.init(Array(examples.dropLast(held)), validation: Array(examples.suffix(held)), batch: batch, seed: seed)
    }

    /// Fisher–Yates from a generator seeded by the seed and the epoch, so any epoch's order is known without the
    /// ones before it.
    static func permutation(_ n: Int, seed: UInt64, epoch: Int) -> [Int] {
        var random = RandomSource(seed: seed ^ (0xD1B5_4A32_D192_ED03 &* UInt64(epoch + 1)))
        var order = Array(0..<n)
        for k in stride(from: n - 1, to: 0, by: -1) { order.swapAt(k, random.index(below: k + 1)) }
        return order
    }

    /// Batches per epoch: the training examples divided by `batch`, rounded up.
    public var batchesPerEpoch: Int { (examples.count + batch - 1) / batch }
    /// Always nil: every batch starts from a zero state.
    public var carriedRows: Int? { nil }
    /// Identifies the examples, the validation examples, `batch`, `seed` and `targetsPerStep` (a hash with the
    /// prefix `dataset:`).
    public var fingerprint: String {
        var f = Fingerprint()
        for v in [batch, examples.count, validationExamples.count, targetsPerStep ? 1 : 0] { f.add(v) }
        f.add(seed)
        for e in examples + validationExamples {
            switch e.input {
            case .features(let steps): for step in steps { for v in step { f.add(v) } }
            case .tokens(let ids): for id in ids { f.add(Int(id)) }
            }
            switch e.target {
            case .classes(let c): for v in c { f.add(Int(v)) }
            case .values(let v): for x in v { f.add(x) }
            }
        }
        return "dataset:" + f.text
    }
    /// `batch` × the mean number of steps of a training example (rounded down).
    public var stepsPerBatch: Int { batch * (examples.map(\.steps).reduce(0, +) / examples.count) }

    /// The next `batch` examples of this epoch's shuffled order as one padded, batch-first batch; when the epoch is
    /// used up the cursor first moves to the next epoch.
    public mutating func nextBatch() -> TrainingBatch {
        if cursor.position >= examples.count {
            cursor.position = 0
            cursor.epoch += 1
        }
        if orderEpoch != cursor.epoch {
            order = Self.permutation(examples.count, seed: seed, epoch: cursor.epoch)
            orderEpoch = cursor.epoch
        }
        let picked = order[cursor.position..<min(cursor.position + batch, examples.count)].map { examples[$0] }
        return Self.batch(of: picked, perStep: targetsPerStep)
    }

    /// Moves the cursor `batch` examples on.
    public mutating func advance() { cursor.position += batch }

    /// Validation batches: the validation examples divided by `batch`, rounded up.
    public var validationBatchCount: Int { (validationExamples.count + batch - 1) / batch }

    /// Validation examples k·`batch` ..< (k + 1)·`batch` (fewer in the last batch) as one padded batch.
    ///
    /// - Parameter k: The batch, in 0 ..< `validationBatchCount`.
    public func validationBatch(_ k: Int) -> TrainingBatch {
        Self.batch(of: Array(validationExamples[(k * batch)..<min((k + 1) * batch, validationExamples.count)]),
                   perStep: targetsPerStep)
    }

    /// Examples as one padded batch-first batch; targets row by row (per step for an every-step head, padding
    /// filled with class -100 or zero values, which the loss ignores).
    static func batch(of examples: [Example], perStep: Bool) -> TrainingBatch {
        let T = examples.map(\.steps).max() ?? 1
        let lengths = examples.map(\.steps)
        let input: SequenceBatch<Float>
        switch examples[0].input {
        case .features(let first):
            let F = first.first?.count ?? 1
            var values = [Float](repeating: 0, count: examples.count * T * F)
            for (b, e) in examples.enumerated() {
                if case .features(let steps) = e.input {
                    for (t, step) in steps.enumerated() {
                        for j in 0..<min(F, step.count) { values[(b * T + t) * F + j] = step[j] }
                    }
                }
            }
            input = try! SequenceBatch(features: values, steps: T, batch: examples.count, features: F,
                                       layout: .batchFirst, lengths: Set(lengths).count == 1 ? nil : lengths)
        case .tokens:
            var tokens = [Int32](repeating: 0, count: examples.count * T)
            for (b, e) in examples.enumerated() {
                if case .tokens(let ids) = e.input { for (t, id) in ids.enumerated() { tokens[b * T + t] = id } }
            }
            input = try! SequenceBatch(tokens: tokens, steps: T, batch: examples.count, layout: .batchFirst,
                                       lengths: Set(lengths).count == 1 ? nil : lengths)
        }
        // One target per row (last-step head), or one per step (every-step head): padded to T steps per row.
        let targets: SequenceTargets<Float>
        switch examples[0].target {
        case .classes:
            if perStep {
                var classes = [Int32](repeating: -100, count: examples.count * T)
                for (b, e) in examples.enumerated() {
                    if case .classes(let c) = e.target { for (t, v) in c.prefix(T).enumerated() { classes[b * T + t] = v } }
                }
                targets = .classes(classes)
            } else {
                targets = .classes(examples.map { e -> Int32 in if case .classes(let c) = e.target { c.first ?? -100 } else { -100 } })
            }
        case .values(let first):
            if perStep {
                let M = first.count / max(1, examples[0].steps)
                var values = [Float](repeating: 0, count: examples.count * T * M)
                for (b, e) in examples.enumerated() {
                    if case .values(let v) = e.target { for (k, x) in v.prefix(T * M).enumerated() { values[b * T * M + k] = x } }
                }
                targets = .values(values)
            } else {
                targets = .values(examples.flatMap { e -> [Float] in if case .values(let v) = e.target { v } else { [] } })
            }
        }
        return TrainingBatch(input: input, targets: targets)
    }
}
