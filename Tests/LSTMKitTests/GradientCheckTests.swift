import Testing
@testable import LSTMKit

/// Every parameter tensor and x, h0, c0, checked against central differences in Double (see `GradientCheck` for
/// the difference formula and why 1e-6 relative is a bar the exact gradient clears by orders of magnitude while a
/// wrong term in the derivation does not).
struct GradientCheckTests {
    static let activationModes: [LSTMActivations] = GateActivation.allCases.flatMap { gate in
        CellActivation.allCases.map { LSTMActivations(gate: gate, cell: $0) }
    }

    /// L ∈ {1, 2, 3}, I = 3 ≠ H = 4, B ∈ {1, 3}, T ∈ {1, 7}, with and without a gradient on the final state.
    static let shapes: [GradientCheck.Configuration] = [1, 2, 3].flatMap { L in
        [1, 3].flatMap { B in
            [1, 7].flatMap { T in
                [true, false].map { final in
                    GradientCheck.Configuration(layers: L, inputSize: 3, hiddenSize: 4, batch: B, steps: T,
                                                finalStateGradient: final)
                }
            }
        }
    }

    @Test("gradient check: every tensor, every activation mode", arguments: activationModes, shapes)
    func gradientsMatchCentralDifferences(activations: LSTMActivations, shape: GradientCheck.Configuration) throws {
        var configuration = shape
        configuration.activations = activations
        let reports = try GradientCheck.run(configuration, seed: 7)
        let L = configuration.layers
        #expect(reports.count == 4 * L + 3)
        for report in reports {
            #expect(report.maxRelativeError <= 1e-6, "\(report.name): max rel \(report.maxRelativeError) abs \(report.maxAbsoluteError)")
            #expect(report.skipped == 0, "\(report.name): \(report.skipped) components on a kink")
        }
    }

    /// Larger weights push hard-σ gates into their flat regions, where the derivative is exactly zero.
    @Test func hardSigmoidSaturatedRegions() throws {
        let configuration = GradientCheck.Configuration(
            layers: 2, inputSize: 3, hiddenSize: 4, batch: 3, steps: 5,
            activations: LSTMActivations(gate: .hardSigmoid, cell: .tanh), parameterScale: 6)
        let problem = try GradientCheck.Problem(configuration, seed: 3)
        let stash = LSTMStash<Double>()
        _ = problem.lstm.forward(problem.x, steps: 5, batch: 3, initial: problem.initial,
                                 parameters: problem.parameters, stash: stash)
        // The check means something only if some gates are saturated and some are not.
        let gates = stash.gates.array(0..<(2 * 5 * 3 * 16))
        let saturated = gates.enumerated().filter { ($0.offset / 4) % 4 != 2 && ($0.element == 0 || $0.element == 1) }.count
        #expect(saturated > 10)
        #expect(saturated < gates.count * 3 / 4 - 10)
        let reports = try GradientCheck.run(configuration, seed: 3)
        for report in reports {
            #expect(report.maxRelativeError <= 1e-6, "\(report.name): \(report.maxRelativeError)")
        }
        // Kinks are rare at ε ≤ 1e-3: nearly every component is compared.
        let total = reports.map(\.count).reduce(0, +), skipped = reports.map(\.skipped).reduce(0, +)
        #expect(skipped * 100 <= total, "\(skipped) of \(total) components skipped")
    }

    /// Cell clipping (with σ and hard σ gates, 1–3 layers): some cells held at ±clip, some not; the gradient through
    /// a held cell is exactly zero and the check still passes everywhere else.
    @Test(arguments: [(1, GateActivation.sigmoid), (2, .sigmoid), (3, .hardSigmoid)])
    func cellClipping(layers: Int, gate: GateActivation) throws {
        let clip = 0.35
        let configuration = GradientCheck.Configuration(
            layers: layers, inputSize: 3, hiddenSize: 4, batch: 3, steps: 7,
            activations: LSTMActivations(gate: gate, cell: .tanh, cellClip: clip), parameterScale: 2.5)
        let problem = try GradientCheck.Problem(configuration, seed: 11)
        let stash = LSTMStash<Double>()
        _ = problem.lstm.forward(problem.x, steps: 7, batch: 3, initial: problem.initial,
                                 parameters: problem.parameters, stash: stash)
        let cells = stash.cells.array(0..<(layers * 7 * 3 * 4))
        let held = cells.filter { abs($0) == clip }.count
        #expect(cells.allSatisfy { abs($0) <= clip })
        #expect(held > 5 && held < cells.count - 5, "\(held) of \(cells.count) cells held at the bound")
        let reports = try GradientCheck.run(configuration, seed: 11)
        for report in reports {
            #expect(report.maxRelativeError <= 1e-6, "\(report.name): \(report.maxRelativeError)")
        }
        let total = reports.map(\.count).reduce(0, +), skipped = reports.map(\.skipped).reduce(0, +)
        #expect(skipped * 100 <= total, "\(skipped) of \(total) components skipped")
    }

    /// Dropout between layers and variational recurrent dropout (one (B, H) mask per layer reused at every step),
    /// each alone and combined with each other, cell clipping and hard σ gates, with fixed masks: exact gradients
    /// through the masked connections (every tensor, x, h0, c0).
    @Test(arguments: [(2, 0.4, 0.0, LSTMActivations.standard), (3, 0.4, 0.0, .standard),
                      (3, 0.4, 0.0, LSTMActivations(gate: .hardSigmoid, cell: .tanh, cellClip: 0.4)),
                      (1, 0.0, 0.4, .standard), (2, 0.3, 0.4, .standard),
                      (3, 0.3, 0.4, LSTMActivations(gate: .hardSigmoid, cell: .tanh, cellClip: 0.4))])
    func dropoutWithFixedMasks(layers: Int, dropout: Double, recurrentDropout: Double,
                               activations: LSTMActivations) throws {
        var configuration = GradientCheck.Configuration(
            layers: layers, inputSize: 3, hiddenSize: 4, batch: 3, steps: 6, activations: activations,
            parameterScale: activations.cellClip == nil ? 1 : 2.5, dropout: dropout, dropoutSeed: 17)
        configuration.recurrentDropout = recurrentDropout
        let problem = try GradientCheck.Problem(configuration, seed: 13)
        // The masks really drop something: the output differs from the run without them.
        let with = problem.lstm.forward(problem.x, steps: 6, batch: 3, initial: problem.initial,
                                        parameters: problem.parameters, stash: LSTMStash(), dropoutSeed: 17)
        let without = problem.lstm.forward(problem.x, steps: 6, batch: 3, initial: problem.initial,
                                           parameters: problem.parameters, stash: LSTMStash())
        #expect(with.output != without.output)
        let reports = try GradientCheck.run(configuration, seed: 13)
        #expect(reports.count == 4 * layers + 3)
        for report in reports {
            #expect(report.maxRelativeError <= 1e-6, "\(report.name): \(report.maxRelativeError)")
        }
        let total = reports.map(\.count).reduce(0, +), skipped = reports.map(\.skipped).reduce(0, +)
        #expect(skipped * 100 <= total, "\(skipped) of \(total) components skipped")
    }

    /// Peepholes (every tensor incl. weight_peephole_l{k}, x, h0, c0), alone over 1–3 layers and with every other
    /// option: cell clipping, hard σ, identity cell, both dropouts with fixed masks.
    @Test(arguments: [(1, LSTMActivations(peepholes: true), 0.0), (2, LSTMActivations(peepholes: true), 0.0),
                      (3, LSTMActivations(gate: .hardSigmoid, cell: .tanh, cellClip: 0.4, peepholes: true), 0.3),
                      (2, LSTMActivations(gate: .sigmoid, cell: .identity, peepholes: true), 0.3)])
    func peepholes(layers: Int, activations: LSTMActivations, dropout: Double) throws {
        var configuration = GradientCheck.Configuration(
            layers: layers, inputSize: 3, hiddenSize: 4, batch: 3, steps: 6, activations: activations,
            parameterScale: activations.cellClip == nil ? 1.5 : 2.5, dropout: layers > 1 ? dropout : 0, dropoutSeed: 5)
        configuration.recurrentDropout = dropout
        let reports = try GradientCheck.run(configuration, seed: 29)
        #expect(reports.count == 5 * layers + 3)
        #expect(reports.contains { $0.name.hasPrefix("weight_peephole_l") && $0.maxMagnitude > 1e-3 })
        for report in reports {
            #expect(report.maxRelativeError <= 1e-6, "\(report.name): \(report.maxRelativeError)")
        }
        let total = reports.map(\.count).reduce(0, +), skipped = reports.map(\.skipped).reduce(0, +)
        #expect(skipped * 100 <= total, "\(skipped) of \(total) components skipped")
    }

    /// The structural variants and their combinations: bidirectional layers, projection (LSTMP), variable lengths
    /// (unsorted, with padding that must get exactly zero gradient), batch-first input, and these together with
    /// peepholes, cell clipping and both dropouts with fixed masks. Every tensor (incl. `_reverse` and
    /// `weight_hr_l{k}`), x, h0, c0.
    static let structural: [(String, GradientCheck.Configuration)] = {
        func make(_ layers: Int, bi: Bool = false, proj: Int = 0, lengths: [Int]? = nil, batchFirst: Bool = false,
                  activations: LSTMActivations = .standard, dropout: Double = 0, recurrentDropout: Double = 0,
                  final: Bool = true) -> GradientCheck.Configuration {
            var c = GradientCheck.Configuration(layers: layers, inputSize: 3, hiddenSize: 5, batch: 4, steps: 5,
                                                activations: activations, finalStateGradient: final,
                                                parameterScale: activations.cellClip == nil ? 1.5 : 2.5,
                                                dropout: dropout, dropoutSeed: 23)
            c.bidirectional = bi
            c.projectionSize = proj
            c.lengths = lengths
            c.batchFirst = batchFirst
            c.recurrentDropout = recurrentDropout
            return c
        }
        let lengths = [3, 5, 1, 4]
        return [
            ("bidirectional L=1", make(1, bi: true)),
            ("bidirectional L=2", make(2, bi: true)),
            ("projection L=1", make(1, proj: 3)),
            ("projection L=2, no final δ", make(2, proj: 2, final: false)),
            ("bidirectional + projection L=2", make(2, bi: true, proj: 3)),
            ("lengths L=1", make(1, lengths: lengths)),
            ("lengths L=2 batch-first", make(2, lengths: lengths, batchFirst: true)),
            ("bidirectional + projection + lengths L=2", make(2, bi: true, proj: 3, lengths: lengths)),
            ("bidirectional + lengths, hard σ, clip, peepholes, dropouts",
             make(2, bi: true, lengths: [2, 5, 5, 1],
                  activations: LSTMActivations(gate: .hardSigmoid, cell: .tanh, cellClip: 0.5, peepholes: true),
                  dropout: 0.3, recurrentDropout: 0.3)),
            ("projection + lengths + peepholes + dropouts, batch-first",
             make(3, proj: 2, lengths: lengths, batchFirst: true, activations: LSTMActivations(peepholes: true),
                  dropout: 0.3, recurrentDropout: 0.3)),
            ("layer norm L=1", make(1, activations: LSTMActivations(layerNorm: true))),
            ("layer norm, identity cell L=2", make(2, activations: LSTMActivations(cell: .identity, layerNorm: true))),
            ("layer norm + peepholes + dropout (fixed mask) L=2",
             make(2, activations: LSTMActivations(peepholes: true, layerNorm: true), dropout: 0.3)),
            ("layer norm + clip + hard σ + recurrent dropout L=2",
             make(2, activations: LSTMActivations(gate: .hardSigmoid, cell: .tanh, cellClip: 0.5, layerNorm: true),
                  recurrentDropout: 0.3)),
            ("layer norm + bidirectional + projection + lengths L=2",
             make(2, bi: true, proj: 3, lengths: lengths, activations: LSTMActivations(layerNorm: true))),
        ]
    }()

    @Test(arguments: structural)
    func structuralVariants(name: String, configuration: GradientCheck.Configuration) throws {
        let reports = try GradientCheck.run(configuration, seed: 31)
        let D = configuration.bidirectional ? 2 : 1
        let perDirection = 4 + (configuration.projectionSize > 0 ? 1 : 0) + (configuration.activations.peepholes ? 1 : 0)
            + (configuration.activations.layerNorm ? 2 : 0)
        #expect(reports.count == perDirection * D * configuration.layers + 3, "\(name)")
        for report in reports {
            #expect(report.maxRelativeError <= 1e-6, "\(name) \(report.name): \(report.maxRelativeError)")
            #expect(report.maxMagnitude > 1e-4, "\(name) \(report.name): no gradient at all")
        }
        let total = reports.map(\.count).reduce(0, +), skipped = reports.map(\.skipped).reduce(0, +)
        #expect(skipped * 100 <= total, "\(name): \(skipped) of \(total) components skipped")
    }

    /// Layer normalization of nearly constant rows (a projected h_{t-1} mostly zeroed by recurrent dropout) bends ℓ
    /// within ε = 1e-3: the check refines ε there (see `GradientCheck`) instead of reporting its own truncation
    /// error (1e-5 relative before the refinement, for this configuration and seed) as a wrong gradient.
    @Test func layerNormOfNearlyConstantRows() throws {
        var configuration = GradientCheck.Configuration(layers: 1, inputSize: 3, hiddenSize: 4, batch: 3, steps: 5,
                                                        activations: LSTMActivations(layerNorm: true), dropoutSeed: 3)
        configuration.projectionSize = 2
        configuration.recurrentDropout = 0.5
        for report in try GradientCheck.run(configuration, seed: 2) {
            #expect(report.maxRelativeError <= 1e-6, "\(report.name): \(report.maxRelativeError)")
        }
    }

    @Test func invalidCellClipIsRejected() {
        for clip in [0.0, -1, .infinity, .nan, 1e39, 1e-50] {
            var layout = ParameterLayout()
            #expect(throws: LSTMKitError.self) {
                try LSTM(inputSize: 2, hiddenSize: 3, activations: [LSTMActivations(cellClip: clip)], layout: &layout)
            }
        }
    }

    /// A deliberately wrong gradient must fail the check, or the check proves nothing.
    @Test func checkDetectsAWrongGradient() throws {
        let configuration = GradientCheck.Configuration(layers: 1, inputSize: 2, hiddenSize: 3, batch: 1, steps: 3)
        let problem = try GradientCheck.Problem(configuration, seed: 1)
        let stash = LSTMStash<Double>()
        _ = problem.lstm.forward(problem.x, steps: 3, batch: 1, initial: problem.initial,
                                 parameters: problem.parameters, stash: stash)
        var gradients = ParameterBuffer<Double>(layout: problem.parameters.layout)
        _ = problem.lstm.backward(dOutput: problem.dOutput, dFinal: problem.dFinal,
                                  parameters: problem.parameters, stash: stash, gradients: &gradients)
        // Perturb the analytic gradient of one weight by 1e-5 relative and compare with the numerical one.
        let e = problem.lstm.layers[0].weightHH.offset + 5
        var p = problem.parameters
        let eps = 1e-3
        func loss(_ delta: Double) -> Double {
            p.storage[e] = problem.parameters.storage[e] + delta
            return problem.loss(parameters: p, x: problem.x, initial: problem.initial, stash: stash)
        }
        let numeric = (-loss(2 * eps) + 8 * loss(eps) - 8 * loss(-eps) + loss(-2 * eps)) / (12 * eps)
        let exact = gradients.storage[e]
        #expect(abs(exact - numeric) / abs(numeric) < 1e-8)
        let wrong = exact * (1 + 1e-5)
        #expect(abs(wrong - numeric) / abs(numeric) > 1e-6)
    }
}
