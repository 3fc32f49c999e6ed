/// How an LSTM's weights start.
public enum LSTMInitialization: String, Sendable, Hashable, CaseIterable, Codable {
    /// PyTorch's `nn.LSTM` default: every weight and bias U(−1/√H, 1/√H).
    case pytorch
    /// Glorot/Xavier uniform on each weight matrix as a whole (fan_in = columns, fan_out = 4H rows, as
    /// `torch.nn.init.xavier_uniform_`), biases zero.
    case xavier
    /// Xavier for W_ih, and each of the four H×H gate blocks of W_hh an orthogonal matrix (Saxe et al. 2014),
    /// biases zero.
    case orthogonal
}

extension LSTM {
    /// Fills this LSTM's tensors in `parameters`, drawing from `random` in tensor order.
    ///
    /// `forgetBias`: when set, b_ih's forget block is set to this value and b_hh's forget block to zero,
    ///   so the sum the cell sees is exactly `forgetBias` (Jozefowicz et al. 2015 recommend 1).
    public func initialize<S: LSTMScalar>(
        _ parameters: inout ParameterBuffer<S>, scheme: LSTMInitialization = .pytorch,
        forgetBias: Double? = nil, random: inout RandomSource
    ) {
        let H = hiddenSize
        for (layer, specs) in zip(layers, tensors) {
            switch scheme {
            case .pytorch:
                let k = 1 / Double(H).squareRoot()
                for spec in specs where spec != layer.layerNormGates && spec != layer.layerNormCell {
                    for e in spec.range { parameters.storage[e] = S(random.uniform(-k, k)) }
                }
            case .xavier, .orthogonal:
                for spec in [layer.weightIH, layer.weightHH] + [layer.weightHR].compactMap({ $0 }) {
                    let bound = (6 / Double(spec.shape[0] + spec.shape[1])).squareRoot()
                    for e in spec.range { parameters.storage[e] = S(random.uniform(-bound, bound)) }
                }
                // Orthogonal H×H blocks need a square W_hh block: with a projection (H×P) W_hh stays Xavier.
                if scheme == .orthogonal && outputSize == H {
                    for gate in 0..<4 {
                        let q = Self.randomOrthogonal(H, random: &random)
                        for e in 0..<(H * H) {
                            parameters.storage[layer.weightHH.offset + gate * H * H + e] = S(q[e])
                        }
                    }
                }
                for spec in [layer.biasIH, layer.biasHH] + [layer.peephole].compactMap({ $0 }) {
                    for e in spec.range { parameters.storage[e] = 0 }
                }
            }
            // Layer normalization starts as the identity: γ = 1, β = 0.
            if let gates = layer.layerNormGates {
                for row in 0..<4 { for j in 0..<(4 * H) { parameters.storage[gates.offset + row * 4 * H + j] = row % 2 == 0 ? 1 : 0 } }
            }
            if let cell = layer.layerNormCell {
                for j in 0..<H { parameters.storage[cell.offset + j] = 1; parameters.storage[cell.offset + H + j] = 0 }
            }
            if let forgetBias {
                for j in H..<(2 * H) {
                    parameters.storage[layer.biasIH.offset + j] = S(forgetBias)
                    parameters.storage[layer.biasHH.offset + j] = 0
                }
            }
        }
    }

    /// An n×n orthogonal matrix (row-major): Q of the QR decomposition of a standard normal matrix, by modified
    /// Gram–Schmidt on its columns, with each column's sign fixed by R's diagonal so Q is uniformly distributed
    /// (as `torch.nn.init.orthogonal_` does with Householder QR).
    static func randomOrthogonal(_ n: Int, random: inout RandomSource) -> [Double] {
        var a = (0..<(n * n)).map { _ in random.normal() }
        for j in 0..<n {
            for k in 0..<j {
                var dot = 0.0
                for i in 0..<n { dot += a[i * n + k] * a[i * n + j] }
                for i in 0..<n { a[i * n + j] -= dot * a[i * n + k] }
            }
            var norm = 0.0
            for i in 0..<n { norm += a[i * n + j] * a[i * n + j] }
            norm = norm.squareRoot()
            // R's diagonal entry is `norm` > 0 here, so the sign convention is already the positive one.
            for i in 0..<n { a[i * n + j] /= norm }
        }
        return a
    }
}
