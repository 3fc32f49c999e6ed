import Foundation
import Testing

@testable import LSTMKit

/// LSTM variants: dropout between layers and recurrent dropout (the gradient checks are in GradientCheckTests).
struct DropoutTests {
    static func model(dropout: Double, layers: Int = 2, hidden: Int = 32) throws -> (LSTM, ParameterBuffer<Float>) {
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: 5, hiddenSize: hidden, layers: layers, dropout: dropout, layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        var random = RandomSource(seed: 4)
        lstm.initialize(&parameters, random: &random)
        return (lstm, parameters)
    }

    static let (T, B) = (10, 8)
    static let x: [Float] = {
        var random = RandomSource(seed: 5)
        return (0..<(T * B * 5)).map { _ in Float(random.uniform(-1, 1)) }
    }()

    /// Without a seed (inference) dropout is off: the same bits as the same weights with dropout 0.
    @Test func offAtInference() throws {
        let (lstm, parameters) = try Self.model(dropout: 0.5)
        let (plain, _) = try Self.model(dropout: 0)
        let a = lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: LSTMStash())
        let b = plain.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: LSTMStash())
        #expect(a.output == b.output && a.final == b.final)
    }

    /// Deterministic by seed, different across seeds, about p of the values dropped between layers, none after
    /// the last layer (PyTorch's semantics), and the same bits on 1 and 2 threads.
    @Test func maskIsSeededAndOnlyBetweenLayers() throws {
        let p = 0.3
        let (lstm, parameters) = try Self.model(dropout: p)
        func run(_ seed: UInt64, threads: Int = 1) -> ([Float], LSTMStash<Float>) {
            let stash = LSTMStash<Float>(threads: threads)
            return (lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: stash,
                                 dropoutSeed: seed).output, stash)
        }
        let (a, stash) = run(7), (b, _) = run(7), (c, _) = run(8), (d, _) = run(7, threads: 2)
        #expect(a == b && a == d)
        #expect(a != c)
        let n = Self.T * Self.B * 32
        let mask = stash.dropoutMasks.array(0..<n)
        let dropped = Double(mask.filter { $0 == 0 }.count) / Double(n)
        #expect(abs(dropped - p) < 0.04, "dropped fraction \(dropped)")
        #expect(mask.allSatisfy { $0 == 0 || $0 == Float(1 / (1 - p)) })
        #expect(!a.contains(0), "the top layer's outputs are not dropped")
        // And the layer above really saw the dropped values.
        let plain = lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: LSTMStash())
        #expect(plain.output != a)
    }

    /// Backward uses the forward's mask: 1 and 2 threads agree bitwise, and the δ reaching the layer below is zero
    /// exactly where its output was dropped (checked through δx = 0 when every value is dropped but one row).
    @Test func backwardIsThreadIndependent() throws {
        let (lstm, parameters) = try Self.model(dropout: 0.4, layers: 3, hidden: 24)
        var results: [[Float]] = []
        for threads in [1, 2] {
            let stash = LSTMStash<Float>(threads: threads)
            let out = lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: stash,
                                   dropoutSeed: 3)
            var gradients = ParameterBuffer<Float>(layout: parameters.layout)
            let dx = lstm.backward(dOutput: out.output.map { $0 * 0.5 + 0.1 }, parameters: parameters, stash: stash,
                                   gradients: &gradients)
            results.append(gradients.storage + dx.input)
        }
        #expect(results[0] == results[1])
    }

    @Test func invalidDropoutIsRejected() {
        for (p, layers) in [(1.0, 2), (-0.1, 2), (.nan, 2), (0.2, 1)] {
            var layout = ParameterLayout()
            #expect(throws: LSTMKitError.self) {
                try LSTM(inputSize: 2, hiddenSize: 3, layers: layers, dropout: p, layout: &layout)
            }
        }
        for p in [1.0, -0.1, .nan] {
            var layout = ParameterLayout()
            #expect(throws: LSTMKitError.self) {
                try LSTM(LSTMConfiguration(inputSize: 2, hiddenSize: 3, recurrentDropout: p), layout: &layout)
            }
        }
    }

    /// Recurrent dropout: one (B, H) mask per layer, drawn once and used at every step (the output of a step with
    /// the mask applied by hand to h_{t-1} matches), seeded, off at inference, thread-independent.
    @Test func recurrentMaskIsOnePerSequence() throws {
        var layout = ParameterLayout()
        let configuration = LSTMConfiguration(inputSize: 5, hiddenSize: 16, layers: 1, recurrentDropout: 0.5)
        let lstm = try LSTM(configuration, layout: &layout)
        #expect(lstm.configuration == configuration)
        var parameters = ParameterBuffer<Float>(layout: layout)
        var random = RandomSource(seed: 4)
        lstm.initialize(&parameters, random: &random)
        let stash = LSTMStash<Float>()
        let out = lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: stash, dropoutSeed: 9)
        let mask = stash.recurrentMasks.array(0..<(Self.B * 16))
        #expect(mask.contains(0) && mask.contains(2))
        // Step by step with the same mask applied to the carried h by hand, on a plain LSTM: the same bits.
        var plainLayout = ParameterLayout()
        let plain = try LSTM(inputSize: 5, hiddenSize: 16, layout: &plainLayout)
        var state = LSTMState<Float>(layers: 1, batch: Self.B, hiddenSize: 16)
        var stepped: [Float] = []
        for t in 0..<Self.T {
            state.hidden = zip(state.hidden, mask).map { $0 * $1 }
            let step = plain.forward(Array(Self.x[(t * Self.B * 5)..<((t + 1) * Self.B * 5)]), steps: 1, batch: Self.B,
                                     initial: state, parameters: parameters, stash: LSTMStash())
            stepped += step.output
            state = step.final
        }
        #expect(stepped == out.output)
        let inference = lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: LSTMStash())
        let plainOut = plain.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters, stash: LSTMStash())
        #expect(inference.output == plainOut.output)
        let threaded = lstm.forward(Self.x, steps: Self.T, batch: Self.B, parameters: parameters,
                                    stash: LSTMStash(threads: 2), dropoutSeed: 9)
        #expect(threaded.output == out.output)
    }
}
