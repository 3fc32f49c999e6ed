import Testing
@testable import LSTMKit

/// Running T calls of one step each, carrying (h, c) forward and (δh, δc) backward, gives the whole-sequence result.
///
/// Forward, δx, δh0 and δc0 are bitwise equal: every row of every product is summed in the same order whatever the
/// number of rows (see `GEMM`). δW and δb are sums over steps taken in a different order (per-step calls add step
/// T−1 first; the whole-sequence product adds step 0 first), so they agree to rounding: 1e-13 relative in Double,
/// for at most T·B = 21 terms of size ≤ 1.
struct StepwiseTests {
    @Test(arguments: [LSTMActivations.standard, .linear, LSTMActivations(gate: .hardSigmoid, cell: .tanh)])
    func singleStepsEqualWholeSequence(activations: LSTMActivations) throws {
        let configuration = GradientCheck.Configuration(layers: 2, inputSize: 3, hiddenSize: 5, batch: 3, steps: 7,
                                                        activations: activations)
        let problem = try GradientCheck.Problem(configuration, seed: 5)
        let (T, B, I, H) = (7, 3, 3, 5)
        let lstm = problem.lstm

        let stash = LSTMStash<Double>()
        let whole = lstm.forward(problem.x, steps: T, batch: B, initial: problem.initial,
                                 parameters: problem.parameters, stash: stash)
        var wholeGradients = ParameterBuffer<Double>(layout: problem.parameters.layout)
        let wholeInput = lstm.backward(dOutput: problem.dOutput, dFinal: problem.dFinal,
                                       parameters: problem.parameters, stash: stash, gradients: &wholeGradients)

        // Forward one step at a time, keeping each step's stash for its backward.
        var state = problem.initial
        var outputs: [Double] = []
        var stashes: [LSTMStash<Double>] = []
        for t in 0..<T {
            let s = LSTMStash<Double>()
            let out = lstm.forward(Array(problem.x[(t * B * I)..<((t + 1) * B * I)]), steps: 1, batch: B,
                                   initial: state, parameters: problem.parameters, stash: s)
            outputs += out.output
            state = out.final
            stashes.append(s)
        }
        #expect(outputs == whole.output)
        #expect(state == whole.final)

        var carry = problem.dFinal ?? LSTMState(layers: 2, batch: B, hiddenSize: H)
        var stepGradients = ParameterBuffer<Double>(layout: problem.parameters.layout)
        var dx = [Double](repeating: 0, count: T * B * I)
        for t in stride(from: T - 1, through: 0, by: -1) {
            let d = lstm.backward(dOutput: Array(problem.dOutput[(t * B * H)..<((t + 1) * B * H)]), dFinal: carry,
                                  parameters: problem.parameters, stash: stashes[t], gradients: &stepGradients)
            dx.replaceSubrange((t * B * I)..<((t + 1) * B * I), with: d.input)
            carry = d.initial
        }
        #expect(dx == wholeInput.input)
        #expect(carry == wholeInput.initial)
        for (a, b) in zip(stepGradients.storage, wholeGradients.storage) {
            #expect(abs(a - b) <= 1e-13 * max(1, abs(b)))
        }
    }

    /// Truncated BPTT: a window started from a carried state treats it as a constant; its gradients are exactly those
    /// of that window computed alone, and the carried state is exactly the whole sequence's state at the boundary.
    @Test func truncatedWindowsCarryStateWithoutGradient() throws {
        let configuration = GradientCheck.Configuration(layers: 2, inputSize: 2, hiddenSize: 3, batch: 2, steps: 8)
        let problem = try GradientCheck.Problem(configuration, seed: 9)
        let lstm = problem.lstm
        let (B, I) = (2, 2)
        var carrier = TruncatedBPTT<Double>(lstm: lstm, batch: B)
        carrier.state = problem.initial
        let whole = lstm.forward(problem.x, steps: 8, batch: B, initial: problem.initial,
                                 parameters: problem.parameters, stash: LSTMStash())
        let stash = LSTMStash<Double>()
        var outputs: [Double] = []
        for w in 0..<2 {
            let window = Array(problem.x[(w * 4 * B * I)..<((w + 1) * 4 * B * I)])
            let before = carrier.state
            let out = carrier.forward(window, steps: 4, parameters: problem.parameters, stash: stash)
            outputs += out
            var g1 = ParameterBuffer<Double>(layout: problem.parameters.layout)
            _ = lstm.backward(dOutput: problem.dOutput[0..<(4 * B * 3)].map { $0 }, parameters: problem.parameters,
                              stash: stash, gradients: &g1)
            // The same window run alone from `before`.
            let alone = LSTMStash<Double>()
            _ = lstm.forward(window, steps: 4, batch: B, initial: before, parameters: problem.parameters, stash: alone)
            var g2 = ParameterBuffer<Double>(layout: problem.parameters.layout)
            _ = lstm.backward(dOutput: problem.dOutput[0..<(4 * B * 3)].map { $0 }, parameters: problem.parameters,
                              stash: alone, gradients: &g2)
            #expect(g1.storage == g2.storage)
        }
        #expect(outputs == whole.output)
        #expect(carrier.state == whole.final)
        carrier.reset(row: 1)
        #expect(carrier.state.hidden[3..<6].allSatisfy { $0 == 0 })
        #expect(carrier.state.hidden[0..<3] == whole.final.hidden[0..<3])
    }
}

/// The batch-1 stream gives exactly the whole-sequence forward pass, step by step and chunk by chunk, on any number
/// of threads (H = 130: 9 groups of 16 units, enough work per step for the fused step to split them over threads).
struct StreamTests {
    @Test(arguments: [LSTMActivations.standard, .linear, LSTMActivations(cellClip: 0.5, peepholes: true)],
          [(37, 1), (130, 1), (130, 2), (130, 3)])
    func streamEqualsForward(activations: LSTMActivations, shape: (hidden: Int, threads: Int)) throws {
        var layout = ParameterLayout()
        let H = shape.hidden
        let lstm = try LSTM(inputSize: 5, hiddenSize: H, layers: 2, activations: [activations], layout: &layout)
        var random = RandomSource(seed: 12)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let T = 9
        let x = (0..<(T * 5)).map { _ in Float(random.uniform(-1, 1)) }
        let whole = lstm.forward(x, steps: T, batch: 1, parameters: parameters, stash: LSTMStash())
        let stream = LSTMStream(lstm: lstm, parameters: parameters, threads: shape.threads)
        var stepped: [Float] = []
        for t in 0..<T { stepped += stream.step(Array(x[(t * 5)..<((t + 1) * 5)])) }
        #expect(stepped == whole.output)
        #expect(stream.state == whole.final)
        stream.reset()
        #expect(stream.feed(x, steps: T) == whole.output)
        // A state set from outside continues exactly.
        let first = lstm.forward(Array(x[0..<20]), steps: 4, batch: 1, parameters: parameters, stash: LSTMStash())
        stream.state = first.final
        #expect(stream.feed(Array(x[20...]), steps: 5) == Array(whole.output[(4 * H)...]))
    }
}
