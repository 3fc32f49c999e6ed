import Testing
@testable import LSTMKit

/// With identity gate and cell activations the layer is the seed derivation's LSTM "ignoring the non-linearities":
/// i, f, g, o are the raw pre-activations, S_t = f⊙S_{t-1} + i⊙g and h_t = o⊙S_t. Computed here directly from
/// those equations, one scalar at a time, in a way that shares no code with the library.
struct SeedModeTests {
    @Test func identityModeIsTheSeedLSTM() throws {
        let I = 3, H = 2, T = 4
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: I, hiddenSize: H, activations: [.linear], layout: &layout)
        var random = RandomSource(seed: 11)
        var parameters = ParameterBuffer<Double>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let x = (0..<(T * I)).map { _ in random.uniform(-1, 1) }
        let out = lstm.forward(x, steps: T, batch: 1, parameters: parameters, stash: LSTMStash())

        let W = Array(parameters[lstm.layers[0].weightIH])  // (4H, I)
        let U = Array(parameters[lstm.layers[0].weightHH])  // (4H, H)
        let b = zip(parameters[lstm.layers[0].biasIH], parameters[lstm.layers[0].biasHH]).map { $0 + $1 }
        var h = [Double](repeating: 0, count: H), S = h
        for t in 0..<T {
            // I_t = [x_t, h_{t-1}];  Z = W × I_t + b
            let input = Array(x[(t * I)..<((t + 1) * I)]) + h
            let Z = (0..<(4 * H)).map { r in
                (0..<I).reduce(0.0) { $0 + W[r * I + $1] * input[$1] }
                    + (0..<H).reduce(0.0) { $0 + U[r * H + $1] * input[I + $1] } + b[r]
            }
            for j in 0..<H {
                let i = Z[j], f = Z[H + j], g = Z[2 * H + j], o = Z[3 * H + j]
                S[j] = f * S[j] + i * g
                h[j] = o * S[j]
                #expect(abs(out.output[t * H + j] - h[j]) <= 1e-14 * max(1, abs(h[j])))
            }
        }
        #expect(zip(out.final.cell, S).allSatisfy { abs($0 - $1) <= 1e-14 * max(1, abs($1)) })
    }
}
