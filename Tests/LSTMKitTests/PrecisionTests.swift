import Testing
@testable import LSTMKit

/// Float agrees with Double on the same model.
///
/// Tolerance: every value is a chain of at most T·L = 21 steps forward (and as many back), each a dot product of
/// length ≤ I + H = 9 followed by σ/tanh. A dot product of length n has relative error ≤ n·u·Σ|aᵢbᵢ|/|Σaᵢbᵢ| with
/// u = 2⁻²⁴ ≈ 6e-8 (Higham, Accuracy and Stability, §3.1), the activations add ~2 ulp, and σ' ≤ 1/4, |tanh'| ≤ 1 keep
/// errors from growing through the gates. That bounds each step by ~1e-6 of the tensor's scale and the whole chain
/// (forward then backward, ≤ 42 steps) by ~4e-5; we require 1e-4 of each tensor's largest magnitude, which a wrong
/// Float path (a dropped term, a mistyped index) misses by orders of magnitude.
struct PrecisionTests {
    /// The element-wise variants and the structural ones (bidirectional, projection, variable lengths, layer
    /// normalization, whose Float path runs the C element-wise kernel plus the Swift normalization), each on the
    /// fast Float kernels against Double.
    static let cases: [(LSTMActivations, Bool, Int, [Int]?)] = [
        (.standard, false, 0, nil), (.linear, false, 0, nil), (LSTMActivations(gate: .hardSigmoid, cell: .tanh), false, 0, nil),
        (.standard, true, 3, [4, 7, 1]), (LSTMActivations(peepholes: true, layerNorm: true), false, 0, nil),
        (LSTMActivations(cellClip: 0.8, peepholes: true, layerNorm: true), true, 2, [7, 2, 5]),
    ]

    @Test(arguments: cases)
    func floatAgreesWithDouble(activations: LSTMActivations, bidirectional: Bool, projection: Int,
                               lengths: [Int]?) throws {
        var configuration = GradientCheck.Configuration(layers: 3, inputSize: 5, hiddenSize: 4, batch: 3, steps: 7,
                                                        activations: activations)
        configuration.bidirectional = bidirectional
        configuration.projectionSize = projection
        configuration.lengths = lengths
        let problem = try GradientCheck.Problem(configuration, seed: 21)
        let (T, B) = (7, 3)
        let lstm = problem.lstm

        let stashD = LSTMStash<Double>()
        let outD = lstm.forward(problem.x, steps: T, batch: B, lengths: lengths, initial: problem.initial,
                                parameters: problem.parameters, stash: stashD)
        var gradD = ParameterBuffer<Double>(layout: problem.parameters.layout)
        let inD = lstm.backward(dOutput: problem.dOutput, dFinal: problem.dFinal, parameters: problem.parameters,
                                stash: stashD, gradients: &gradD)

        let parametersF = ParameterBuffer<Float>(converting: problem.parameters)
        let f = { (a: [Double]) in a.map { Float($0) } }
        func stateF(_ s: LSTMState<Double>) -> LSTMState<Float> {
            LSTMState(hidden: f(s.hidden), cell: f(s.cell), layers: s.layers, batch: s.batch, hiddenSize: s.hiddenSize,
                      cellSize: s.cellSize)
        }
        let stashF = LSTMStash<Float>()
        let outF = lstm.forward(f(problem.x), steps: T, batch: B, lengths: lengths, initial: stateF(problem.initial),
                                parameters: parametersF, stash: stashF)
        var gradF = ParameterBuffer<Float>(layout: parametersF.layout)
        let inF = lstm.backward(dOutput: f(problem.dOutput), dFinal: problem.dFinal.map(stateF),
                                parameters: parametersF, stash: stashF, gradients: &gradF)

        func expectClose(_ name: String, _ single: some Collection<Float>, _ double: some Collection<Double>) {
            let scale = double.map(abs).max() ?? 0
            let worst = zip(single, double).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst <= 1e-4 * scale, "\(name): max diff \(worst), scale \(scale)")
        }
        expectClose("output", outF.output, outD.output)
        expectClose("h_T", outF.final.hidden, outD.final.hidden)
        expectClose("c_T", outF.final.cell, outD.final.cell)
        for spec in gradD.layout.specs { expectClose(spec.name, gradF[spec], gradD[spec]) }
        expectClose("x", inF.input, inD.input)
        expectClose("h0", inF.initial.hidden, inD.initial.hidden)
        expectClose("c0", inF.initial.cell, inD.initial.cell)
    }
}
