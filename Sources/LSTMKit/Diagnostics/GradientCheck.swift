/// Checks `LSTM.backward` against numerical derivatives of `LSTM.forward`, in Double.
///
/// The scalar checked is a fixed random projection of everything the forward pass returns:
/// ```
/// ℓ = Σ R_y ⊙ y  +  Σ R_h ⊙ h_T  +  Σ R_c ⊙ c_T          (the last two only with `finalStateGradient`)
/// ```
/// so δy = R_y, δh_T = R_h, δc_T = R_c are what backward is given, and every parameter, x, h0 and c0 gets an
/// analytic gradient to compare.
///
/// Numerical derivative: the fourth-order central difference
/// ```
/// n = (−ℓ(θ+2ε) + 8ℓ(θ+ε) − 8ℓ(θ−ε) + ℓ(θ−2ε)) / (12ε),     ε = 1e-3
/// ```
/// whose truncation error is ε⁴/30·|ℓ⁽⁵⁾| ≈ 3e-14·|ℓ⁽⁵⁾| and whose rounding error is about 1.5·u·|ℓ|/ε ≈ 2e-13·|ℓ|
/// (u = 2⁻⁵³); the plain two-point difference would leave ~1e-7 at its best ε, too close to the 1e-6 bar.
///
/// Error per component: absolute |a − n|; relative |a − n| / max(|a|, |n|, 1e-4). The numerical derivative has an
/// absolute rounding error of about 1.5·u·|ℓ|/ε, ~1e-12 at these sizes, so a component below 1e-4 (one that nearly
/// cancels, or is exactly zero in a hard-σ flat region) cannot be resolved to 1e-6 relative; for those the check
/// bounds the absolute error by 1e-10 instead, still ~100× above the noise and far below what a wrong term gives.
///
/// Hard σ has kinks at z = ±3 and cell clipping at S = ±cellClip. A difference quotient whose stencil crosses one
/// measures neither side's slope, so every evaluation also records which gates are saturated and which cells held; if any point of the stencil differs from
/// the unperturbed pattern, ε is divided by 10 (down to 1e-6), and a component whose stencil crosses a kink even then
/// is reported as skipped rather than compared.
///
/// High curvature. The truncation error ε⁴/30·|ℓ⁽⁵⁾| is tiny unless ℓ bends sharply within ε, which layer
/// normalization does where a normalized row is nearly constant (its variance near the ε = 1e-5 inside the square
/// root, e.g. a recurrent product whose h_{t-1} recurrent dropout has mostly zeroed): measured, 1e-6 relative at
/// ε = 1e-3 and 1e-10 at 1e-4 for the same component. The same four evaluations give the two-point difference
/// (ℓ(θ+ε) − ℓ(θ−ε))/2ε, whose error is ε²/6·|ℓ'''|; where the two estimates differ by more than 1e-5 of the
/// component, ε is divided by 10 once more (to at most 1e-4 for this reason) and the finer estimate is used.
public enum GradientCheck {
    /// One LSTM configuration to check.
    public struct Configuration: Sendable, Hashable {
        /// L: the number of stacked layers.
        public var layers: Int
        /// I: the width of each input step.
        public var inputSize: Int
        /// H: the size of the cell state and of each gate.
        public var hiddenSize: Int
        /// B: the number of sequences.
        public var batch: Int
        /// T: the number of time steps.
        public var steps: Int
        /// The element-wise settings of every layer (activations, cell clipping, peepholes, layer normalization).
        public var activations: LSTMActivations
        /// Whether ℓ includes Σ R_h ⊙ h_T + Σ R_c ⊙ c_T, so that backward is also given δh_T and δc_T.
        public var finalStateGradient: Bool
        /// Weights and biases are U(−s/√H, s/√H); s > 1 drives gates into saturation (hard σ's flat region).
        public var parameterScale: Double
        /// Dropout between layers, with one fixed mask (seed `dropoutSeed`) for every evaluation.
        public var dropout: Double
        /// The seed of the fixed dropout masks; used only when `dropout` or `recurrentDropout` is above 0.
        public var dropoutSeed: UInt64
        /// Variational recurrent dropout, with the same fixed seed.
        public var recurrentDropout: Double = 0
        /// Two directions per layer (PyTorch's `bidirectional=True`).
        public var bidirectional = false
        /// P of LSTMP, 0 for none.
        public var projectionSize = 0
        /// Real steps per row (padding ignored), nil for all T.
        public var lengths: [Int]? = nil
        /// Where the input lives: time-major or batch-first (the gradient check covers the transposition too).
        public var batchFirst = false

        /// A configuration with the given sizes and settings, each stored in the property of the same name.
        /// `recurrentDropout`, `bidirectional`, `projectionSize`, `lengths` and `batchFirst` start at their defaults
        /// (0, false, 0, nil, false); set them afterwards.
        public init(layers: Int = 1, inputSize: Int = 3, hiddenSize: Int = 4, batch: Int = 2, steps: Int = 5,
                    activations: LSTMActivations = .standard, finalStateGradient: Bool = true,
                    parameterScale: Double = 1, dropout: Double = 0, dropoutSeed: UInt64 = 1) {
            self.dropout = dropout
            self.dropoutSeed = dropoutSeed
            self.layers = layers
            self.inputSize = inputSize
            self.hiddenSize = hiddenSize
            self.batch = batch
            self.steps = steps
            self.activations = activations
            self.finalStateGradient = finalStateGradient
            self.parameterScale = parameterScale
        }
    }

    /// Worst errors over one tensor.
    public struct TensorReport: Sendable, Hashable {
        /// The tensor's name: a parameter's layout name, or `x`, `h0` or `c0`.
        public var name: String
        /// The number of components, skipped ones included.
        public var count: Int
        /// The largest |analytic − numeric| over the compared components.
        public var maxAbsoluteError: Double
        /// The largest |analytic − numeric| / max(|analytic|, |numeric|, `relativeFloor`) over the compared components.
        public var maxRelativeError: Double
        /// Largest |analytic| component, to judge the absolute error against.
        public var maxMagnitude: Double
        /// Components not compared because every stencil crossed a hard-σ kink.
        public var skipped: Int
    }

    /// The error measure and the difference quotient as one human-readable line, for reports.
    public static let relativeErrorFormula = "rel = |analytic − numeric| / max(|analytic|, |numeric|, 1e-4); numeric = (−l(θ+2ε) + 8l(θ+ε) − 8l(θ−ε) + l(θ−2ε)) / 12ε, ε = 1e-3 (smaller at kinks, and 1e-4 where the 2-point difference disagrees: high curvature)"
    /// The step sizes ε tried, largest first, until a stencil stays clear of every kink (and, where ℓ bends
    /// sharply, until ε ≤ 1e-4).
    public static let epsilons = [1e-3, 1e-4, 1e-5, 1e-6]
    /// The smallest denominator of the relative error, so that components near zero are judged by absolute error.
    public static let relativeFloor = 1e-4

    /// A random problem: an LSTM, its parameters, inputs and the projections R.
    public struct Problem {
        /// The LSTM under test, built from the configuration.
        public var lstm: LSTM
        /// Its parameters, every element drawn from U(−k, k) with k = `parameterScale` / √H.
        public var parameters: ParameterBuffer<Double>
        /// The input: T·B·I values from U(−1, 1), laid out (T, B, I), or (B, T, I) when `batchFirst` is set.
        public var x: [Double]            // (T, B, I)
        /// h0 and c0, drawn from U(−0.5, 0.5): `hidden` is (L·D, B, P) and `cell` (L·D, B, H).
        public var initial: LSTMState<Double>
        /// R_y, the output gradient given to backward: U(−1, 1) values shaped as the output, T·B·D·P in the
        /// input's layout, nonzero at padded positions too.
        public var dOutput: [Double]      // (T, B, H)
        /// R_h and R_c, the final-state gradients, from U(−1, 1) and shaped as `initial`; nil without `finalStateGradient`.
        public var dFinal: LSTMState<Double>?
        /// The configuration the problem was drawn for.
        public let configuration: Configuration

        /// Draws a random problem for `c`: the same seed gives the same problem.
        /// - Parameters:
        ///   - c: The LSTM's sizes and settings.
        ///   - seed: The seed of every random number drawn.
        /// - Throws: `LSTMKitError.invalidConfiguration` if the LSTM settings are invalid, `batch` or `steps` is below 1,
        ///   or `lengths` does not hold one length in 1...steps per row.
        public init(_ c: Configuration, seed: UInt64) throws(LSTMKitError) {
            configuration = c
            var layout = ParameterLayout()
            lstm = try LSTM(inputSize: c.inputSize, hiddenSize: c.hiddenSize, layers: c.layers,
                            activations: [c.activations], dropout: c.dropout,
                            recurrentDropout: c.recurrentDropout, bidirectional: c.bidirectional,
                            projectionSize: c.projectionSize, layout: &layout)
            guard c.batch > 0 else { throw .invalidConfiguration("batch must be at least 1, got \(c.batch)") }
            guard c.steps > 0 else { throw .invalidConfiguration("steps must be at least 1, got \(c.steps)") }
            if let lengths = c.lengths, lengths.count != c.batch || !lengths.allSatisfy({ $0 >= 1 && $0 <= c.steps }) {
                throw .invalidConfiguration("give one length in 1...\(c.steps) per row (\(c.batch)), got \(lengths)")
            }
            var random = RandomSource(seed: seed)
            parameters = ParameterBuffer(layout: layout)
            let k = c.parameterScale / Double(c.hiddenSize).squareRoot()
            for e in 0..<layout.count { parameters.storage[e] = random.uniform(-k, k) }
            let T = c.steps, B = c.batch, H = c.hiddenSize, P = lstm.outputSize, U = lstm.stateCount
            x = (0..<(T * B * c.inputSize)).map { _ in random.uniform(-1, 1) }
            initial = LSTMState(hidden: (0..<(U * B * P)).map { _ in random.uniform(-0.5, 0.5) },
                                cell: (0..<(U * B * H)).map { _ in random.uniform(-0.5, 0.5) },
                                layers: U, batch: B, hiddenSize: P, cellSize: H)
            // Nonzero at padded positions too: backward must ignore them.
            dOutput = (0..<(T * B * lstm.outputWidth)).map { _ in random.uniform(-1, 1) }
            if c.finalStateGradient {
                dFinal = LSTMState(hidden: (0..<(U * B * P)).map { _ in random.uniform(-1, 1) },
                                   cell: (0..<(U * B * H)).map { _ in random.uniform(-1, 1) },
                                   layers: U, batch: B, hiddenSize: P, cellSize: H)
            }
        }

        /// The fixed dropout mask's seed (nil without dropout).
        public var dropoutSeed: UInt64? {
            configuration.dropout > 0 || configuration.recurrentDropout > 0 ? configuration.dropoutSeed : nil
        }

        /// ℓ for given parameters and inputs.
        public func loss(parameters p: ParameterBuffer<Double>, x: [Double], initial: LSTMState<Double>,
                         stash: LSTMStash<Double>) -> Double {
            lossAndRegions(parameters: p, x: x, initial: initial, stash: stash).loss
        }

        /// ℓ, and which side of its kink every i, f, o gate of a hard-σ layer and every clipped S_t is on.
        public func lossAndRegions(parameters p: ParameterBuffer<Double>, x: [Double], initial: LSTMState<Double>,
                                   stash: LSTMStash<Double>) -> (loss: Double, regions: [UInt8]) {
            let out = lstm.forward(x, steps: configuration.steps, batch: configuration.batch,
                                   lengths: configuration.lengths, initial: initial,
                                   layout: configuration.batchFirst ? .batchFirst : .timeMajor,
                                   parameters: p, stash: stash, dropoutSeed: dropoutSeed)
            var total = 0.0
            for k in out.output.indices { total += dOutput[k] * out.output[k] }
            if let dFinal {
                // h is (L·D, B, P) and c (L·D, B, H): with a projection they differ in size.
                for k in out.final.hidden.indices { total += dFinal.hidden[k] * out.final.hidden[k] }
                for k in out.final.cell.indices { total += dFinal.cell[k] * out.final.cell[k] }
            }
            var regions: [UInt8] = []
            let N = stash.schedule.rows, H = configuration.hiddenSize
            for (l, layer) in lstm.layers.enumerated() where layer.activations.gate == .hardSigmoid {
                let gates = stash.gates.array((l * N * 4 * H)..<((l + 1) * N * 4 * H))
                for (k, a) in gates.enumerated() where (k / H) % 4 != 2 {
                    regions.append(a <= 0 ? 0 : (a >= 1 ? 2 : 1))
                }
            }
            // Cell clipping has kinks at ±cellClip: which side every S_t is on.
            for (l, layer) in lstm.layers.enumerated() {
                guard let clip = layer.activations.cellClip else { continue }
                for s in stash.cells.array((l * N * H)..<((l + 1) * N * H)) {
                    regions.append(s <= -clip ? 0 : (s >= clip ? 2 : 1))
                }
            }
            return (total, regions)
        }
    }

    /// Runs the check and returns one report per parameter tensor, then x, h0, c0.
    public static func run(_ configuration: Configuration, seed: UInt64 = 0) throws(LSTMKitError) -> [TensorReport] {
        let problem = try Problem(configuration, seed: seed)
        let stash = LSTMStash<Double>()
        _ = problem.lstm.forward(problem.x, steps: configuration.steps, batch: configuration.batch,
                                 lengths: configuration.lengths, initial: problem.initial,
                                 layout: configuration.batchFirst ? .batchFirst : .timeMajor,
                                 parameters: problem.parameters, stash: stash, dropoutSeed: problem.dropoutSeed)
        var gradients = ParameterBuffer<Double>(layout: problem.parameters.layout)
        let analytic = problem.lstm.backward(dOutput: problem.dOutput, dFinal: problem.dFinal,
                                             parameters: problem.parameters, stash: stash, gradients: &gradients)

        let baseRegions = problem.lossAndRegions(parameters: problem.parameters, x: problem.x,
                                                 initial: problem.initial, stash: stash).regions
        /// The difference quotient with the largest ε whose stencil stays on one side of every kink (and, where ℓ
        /// bends sharply, with ε ≤ 1e-4), or nil (skipped: no such stencil).
        func numeric(_ perturbed: (Double) -> (loss: Double, regions: [UInt8])) -> Double? {
            for e in epsilons {
                let values = [2 * e, e, -e, -2 * e].map(perturbed)
                guard values.allSatisfy({ $0.regions == baseRegions }) else { continue }
                let fourPoint = (-values[0].loss + 8 * values[1].loss - 8 * values[2].loss + values[3].loss) / (12 * e)
                let twoPoint = (values[1].loss - values[2].loss) / (2 * e)
                if abs(fourPoint - twoPoint) <= 1e-5 * max(abs(fourPoint), relativeFloor) || e <= 1e-4 { return fourPoint }
            }
            return nil
        }

        var reports: [TensorReport] = []
        func report(_ name: String, analytic a: ArraySlice<Double>, numeric n: [Double?]) {
            var r = TensorReport(name: name, count: n.count, maxAbsoluteError: 0, maxRelativeError: 0,
                                 maxMagnitude: 0, skipped: 0)
            for (ak, nk) in zip(a, n) {
                guard let nk else { r.skipped += 1; continue }
                let abs = Swift.abs(ak - nk)
                r.maxAbsoluteError = max(r.maxAbsoluteError, abs)
                r.maxRelativeError = max(r.maxRelativeError, abs / max(Swift.abs(ak), Swift.abs(nk), relativeFloor))
                r.maxMagnitude = max(r.maxMagnitude, Swift.abs(ak))
            }
            reports.append(r)
        }

        for spec in problem.parameters.layout.specs {
            var p = problem.parameters
            let n = spec.range.map { e -> Double? in
                let original = p.storage[e]
                let d = numeric { delta in
                    p.storage[e] = original + delta
                    return problem.lossAndRegions(parameters: p, x: problem.x, initial: problem.initial, stash: stash)
                }
                p.storage[e] = original
                return d
            }
            report(spec.name, analytic: gradients[spec], numeric: n)
        }
        var x = problem.x
        let nx = x.indices.map { e -> Double? in
            let original = x[e]
            let d = numeric { delta in
                x[e] = original + delta
                return problem.lossAndRegions(parameters: problem.parameters, x: x, initial: problem.initial, stash: stash)
            }
            x[e] = original
            return d
        }
        report("x", analytic: analytic.input[...], numeric: nx)
        var state = problem.initial
        let nh = state.hidden.indices.map { e -> Double? in
            let original = state.hidden[e]
            let d = numeric { delta in
                state.hidden[e] = original + delta
                return problem.lossAndRegions(parameters: problem.parameters, x: problem.x, initial: state, stash: stash)
            }
            state.hidden[e] = original
            return d
        }
        report("h0", analytic: analytic.initial.hidden[...], numeric: nh)
        let nc = state.cell.indices.map { e -> Double? in
            let original = state.cell[e]
            let d = numeric { delta in
                state.cell[e] = original + delta
                return problem.lossAndRegions(parameters: problem.parameters, x: problem.x, initial: state, stash: stash)
            }
            state.cell[e] = original
            return d
        }
        report("c0", analytic: analytic.initial.cell[...], numeric: nc)
        return reports
    }
}
