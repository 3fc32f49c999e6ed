/// Generates characters one at a time from a `CharacterModel`, carrying the LSTM state between calls.
///
/// Each draw: p = softmax(logits / temperature), restricted to the `topK` most likely characters when topK > 0
/// (ties broken by lower id), and one uniform number from the sampler's own seeded generator picks the character by
/// inverse CDF. Temperature 0 means argmax. The same seed, prime and model give the same text everywhere.
public struct CharacterSampler {
    public let model: CharacterModel
    public let parameters: ParameterBuffer<Float>
    public var temperature: Double
    public var topK: Int
    public var random: RandomSource
    public private(set) var state: LSTMState<Float>
    private let stash = LSTMStash<Float>()

    public init(model: CharacterModel, parameters: ParameterBuffer<Float>, temperature: Double = 1, topK: Int = 0, seed: UInt64) {
        self.model = model
        self.parameters = parameters
        self.temperature = temperature
        self.topK = topK
        random = RandomSource(seed: seed)
        state = model.zeroState(batch: 1)
    }

    /// Runs `tokens` through the model and draws the character that follows them.
    public mutating func feed(_ tokens: [Int32]) -> Int32 {
        precondition(!tokens.isEmpty)
        let V = model.configuration.vocabularySize
        let logits = model.logits(tokens, steps: tokens.count, batch: 1, state: &state, parameters: parameters, stash: stash)
        let last = logits[((tokens.count - 1) * V)...].map(Double.init)
        return draw(last)
    }

    mutating func draw(_ logits: [Double]) -> Int32 {
        if temperature == 0 {
            var best = 0
            for v in 1..<logits.count where logits[v] > logits[best] { best = v }
            return Int32(best)
        }
        var candidates = Array(logits.indices)
        if topK > 0 && topK < logits.count {
            candidates.sort { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
            candidates = Array(candidates.prefix(topK)).sorted()
        }
        let m = candidates.map { logits[$0] }.max()!
        let weights = candidates.map { Double.exponential((logits[$0] - m) / temperature) }
        let total = weights.reduce(0, +)
        var u = random.nextUnit() * total
        for (k, w) in zip(candidates, weights) {
            if u < w { return Int32(k) }
            u -= w
        }
        return Int32(candidates.last!)
    }
}
