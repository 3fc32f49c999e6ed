/// Generates characters one at a time from a `CharacterModel`, carrying the LSTM state between calls.
///
/// Runs on an `LSTMStream` (weights packed once, no allocation per step); the logits are exactly those of the
/// batch forward pass.
///
/// Each draw: p = softmax(logits / temperature), restricted to the `topK` most likely characters when topK > 0
/// (ties broken by lower id), and one uniform number from the sampler's own seeded generator picks the character by
/// inverse CDF. Temperature 0 means argmax. The same seed, prime and model give the same text everywhere.
public struct CharacterSampler {
    /// The model whose embedding, LSTM and head produce the logits.
    public let model: CharacterModel
    /// The model's weights; the LSTM's are also packed into the sampler's stream when the sampler is made.
    public let parameters: ParameterBuffer<Float>
    /// Divides the logits before the softmax: below 1 sharper, above 1 flatter; 0 picks the most likely character.
    public var temperature: Double
    /// When above 0, draws only among the `topK` most likely characters (ties to the lower id); 0 draws among all.
    public var topK: Int
    /// The generator each draw takes one uniform number from (none at temperature 0).
    public var random: RandomSource
    private let stream: LSTMStream
    private var hidden: [Float]   // (H)
    private var logits: [Float]   // (V)

    /// The LSTM state after the characters fed so far.
    public var state: LSTMState<Float> { stream.state }

    /// Never drawn: the vocabulary's unknown entry, which stands for characters the model has not seen.
    public var excluded: Int32?

    /// A sampler starting from a zero state.
    ///
    /// `temperature`, `topK` and `excluded` set the properties of the same names and `seed` seeds `random`; the model's
    /// LSTM weights are packed into a stream here.
    public init(model: CharacterModel, parameters: ParameterBuffer<Float>, temperature: Double = 1, topK: Int = 0, seed: UInt64,
                excluding excluded: Int32? = nil) {
        self.excluded = excluded
        self.model = model
        self.parameters = parameters
        self.temperature = temperature
        self.topK = topK
        random = RandomSource(seed: seed)
        stream = LSTMStream(lstm: model.lstm, parameters: parameters)
        hidden = [Float](repeating: 0, count: model.lstm.outputSize)
        logits = [Float](repeating: 0, count: model.configuration.vocabularySize)
    }

    /// Runs `tokens` through the model and draws the character that follows them.
    public mutating func feed(_ tokens: [Int32]) -> Int32 {
        require(!tokens.isEmpty, "CharacterSampler.feed: got no tokens, expected at least one")
        let V = model.configuration.vocabularySize, E = model.configuration.embedding, H = model.lstm.outputSize
        let head = model.head, embedding = model.embedding
        parameters.storage.withUnsafeBufferPointer { p in
            hidden.withUnsafeMutableBufferPointer { h in
                for token in tokens {
                    require(token >= 0 && Int(token) < V, "CharacterSampler: token \(token) outside 0..<\(V)")
                    stream.step(p.baseAddress! + embedding.weight.offset + Int(token) * E, output: h.baseAddress!)
                }
                logits.withUnsafeMutableBufferPointer { y in
                    // The head as Linear.forward computes it: h·Wᵀ, then + b.
                    GEMM.gemm(transposeA: false, transposeB: true, M: 1, N: V, K: H, h.baseAddress!, lda: H,
                              p.baseAddress! + head.weight.offset, ldb: H, y.baseAddress!, ldc: V, accumulate: false)
                    if let bias = head.bias { for v in 0..<V { y[v] += p[bias.offset + v] } }
                }
            }
        }
        return draw(logits.map(Double.init))
    }

    mutating func draw(_ logits: [Double]) -> Int32 {
        if temperature == 0 {
            var best = excluded == 0 && logits.count > 1 ? 1 : 0
            for v in 0..<logits.count where logits[v] > logits[best] && Int32(v) != excluded { best = v }
            return Int32(best)
        }
        var candidates = Array(logits.indices).filter { $0 != excluded.map(Int.init) }
        if candidates.isEmpty { candidates = Array(logits.indices) }
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
