/// Every number of one small LSTM's forward pass and backpropagation through time, step by step (gate order i, f,
/// g, o; I_t = [x_t, h_{t−1}], W = [W_ih | W_hh], b = b_ih + b_hh), with the loss L = ½ Σ_t Σ_j (h_t,j − y_t,j)²:
/// ```
/// Z_t = W·I_t + b        i, f, g, o = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)      S_t = f ⊙ S_{t−1} + i ⊙ g   h_t = o ⊙ tanh(S_t)
/// δh_t = (h_t − y_t) + δh_t(from step t+1)
/// δS_t = δh_t ⊙ o ⊙ (1 − tanh² S_t)  +  δS_{t+1} ⊙ f_{t+1}                    (the two paths into S_t)
/// δi = δS_t ⊙ g   δf = δS_t ⊙ S_{t−1}   δg = δS_t ⊙ i   δo = δh_t ⊙ tanh(S_t)
/// δZ_t = [δi ⊙ i(1−i), δf ⊙ f(1−f), δg ⊙ (1−g²), δo ⊙ o(1−o)]
/// δI_t = Wᵀ·δZ_t = [δx_t, δh_{t−1}]      δW_t = δZ_t·I_tᵀ      δW = Σ_t δW_t,  δb = Σ_t δZ_t
/// ```
/// The per-step gates, S_t and h_t come from the library's plain reference cell (`LSTMPointwise.forward` in
/// Double, the one the fast kernels are tested against), δZ_t and the carry from `LSTMPointwise.backward`; the
/// totals equal what `LSTM.forward` / `backward` give for the same weights (tested to 1e-12).
public struct LSTMTrace: Sendable, Codable, Equatable {
    /// The weights of the traced cell, with the two biases summed.
    public struct Weights: Sendable, Codable, Equatable {
        /// (4H, I+H) = [W_ih | W_hh]
        public var W: [[Double]]
        /// (4H) = b_ih + b_hh
        public var b: [Double]
    }

    /// The trace's activations, as raw values of `GateActivation` and `CellActivation`.
    public struct Activations: Sendable, Codable, Equatable {
        /// The activation of i, f and o: `sigmoid`, or `identity` for a linear trace.
        public var gate: String
        /// The activation of g and of S_t before the output gate: `tanh`, or `identity` for a linear trace.
        public var cell: String
    }

    /// One step of the forward pass, every vector as computed.
    public struct ForwardStep: Sendable, Codable, Equatable {
        /// x_t (I), h_{t−1} (H), I_t = [x_t, h_{t−1}] (I+H), Z_t = W·I_t + b (4H), the gates i, f, g, o
        /// (H each), S_t (H) and h_t (H).
        public var x, h_prev, I, Z, i, f, g, o, S, h: [Double]
    }

    /// One step of backpropagation through time, every intermediate vector.
    public struct BackwardStep: Sendable, Codable, Equatable {
        /// Each H wide unless noted: δh_t (loss plus step t+1), δS_t through h_t, through S_{t+1} and their sum,
        /// δi, δf, δg, δo, δZ_t (4H), δI_t (I+H) and its split into δx_t (I) and δh_{t−1}.
        public var dh, dS_from_h, dS_from_next, dS, di, df, dg, `do`, dZ, dI, dx, dh_prev: [Double]
        /// δW_t = δZ_t·I_tᵀ, (4H, I+H): this step's share of δW.
        public var dW: [[Double]]
    }

    /// The gradients of the loss, summed over the steps.
    public struct Gradients: Sendable, Codable, Equatable {
        /// δW, (4H, I+H), rows i, f, g, o.
        public var dW: [[Double]]
        /// δb, (4H): the gradient of b_ih and of b_hh alike.
        public var db: [Double]
        /// δh0, (H): the gradient with respect to the initial hidden state.
        public var dh0: [Double]
        /// δc0, (H): the gradient with respect to the initial cell state.
        public var dc0: [Double]
    }

    /// The totals again, by the fourth-order central difference (ε = 1e-3) of the loss, and the largest difference.
    public struct Check: Sendable, Codable, Equatable {
        /// δW by central differences, (4H, I+H).
        public var dW: [[Double]]
        /// δb by central differences, (4H).
        public var db: [Double]
        /// δh0 by central differences, (H).
        public var dh0: [Double]
        /// δc0 by central differences, (H).
        public var dc0: [Double]
        /// The largest |numerical − analytic| over all four tensors.
        public var max_abs_difference: Double
        /// The step ε of the difference quotient.
        public var epsilon: Double
    }

    /// The weights W = [W_ih | W_hh] and bias b the trace ran with.
    public var weights: Weights
    /// x_t for every step: T rows of I values.
    public var inputs: [[Double]]     // (T, I)
    /// y_t for every step: T rows of H values.
    public var targets: [[Double]]    // (T, H)
    /// The initial hidden state h_0 (H).
    public var h0: [Double]
    /// The initial cell state S_0 (H).
    public var c0: [Double]
    /// The gate and cell activations used.
    public var activations: Activations
    /// L = ½ Σ_t Σ_j (h_t,j − y_t,j)².
    public var loss: Double
    /// The forward pass, one entry per step, the first step first.
    public var forward: [ForwardStep]
    /// Backpropagation through time, one entry per step in step order (computed from the last step down).
    public var backward: [BackwardStep]   // indexed by step, 0 first (computed from T−1 down)
    /// The analytic totals from backpropagation.
    public var gradients: Gradients
    /// The same totals by central differences of the loss, and their largest difference from the analytic ones.
    public var numerical: Check

    /// Every total beside its central difference: δW[r][c], δb[r], δh0[j], δc0[j].
    public var comparisons: [(name: String, analytic: Double, numerical: Double)] {
        let g = gradients, n = numerical
        var rows: [(name: String, analytic: Double, numerical: Double)] = []
        for r in g.dW.indices { for c in g.dW[r].indices { rows.append(("δW[\(r)][\(c)]", g.dW[r][c], n.dW[r][c])) } }
        for r in g.db.indices { rows.append(("δb[\(r)]", g.db[r], n.db[r])) }
        for j in g.dh0.indices { rows.append(("δh0[\(j)]", g.dh0[j], n.dh0[j])) }
        for j in g.dc0.indices { rows.append(("δc0[\(j)]", g.dc0[j], n.dc0[j])) }
        return rows
    }

    /// A seeded network of I inputs and H units over T steps: W, b ~ U(±1/√H), x, y ~ U(−1, 1), h0, c0 ~ U(±0.5).
    /// `linear`: the seed derivation's model "ignoring the non-linearities" — identity activations, zero bias.
    public static func run(input I: Int = 2, hidden H: Int = 2, steps T: Int = 3, seed: UInt64 = 1,
                           linear: Bool = false) throws(LSTMKitError) -> LSTMTrace {
        guard I >= 1, H >= 1, T >= 1, I <= 64, H <= 64, T <= 64 else {
            throw .invalidConfiguration("a trace shows every number: input, hidden and steps must be 1 to 64, got \(I), \(H), \(T)")
        }
        var random = RandomSource(seed: seed)
        let k = 1 / Double(H).squareRoot()
        let W = (0..<(4 * H)).map { _ in (0..<(I + H)).map { _ in random.uniform(-k, k) } }
        let b = (0..<(4 * H)).map { _ in linear ? 0 : random.uniform(-k, k) }
        let x = (0..<T).map { _ in (0..<I).map { _ in random.uniform(-1, 1) } }
        let y = (0..<T).map { _ in (0..<H).map { _ in random.uniform(-1, 1) } }
        let h0 = (0..<H).map { _ in random.uniform(-0.5, 0.5) }
        let c0 = (0..<H).map { _ in random.uniform(-0.5, 0.5) }
        let gate: GateActivation = linear ? .identity : .sigmoid, cell: CellActivation = linear ? .identity : .tanh
        var trace = compute(W: W, b: b, x: x, y: y, h0: h0, c0: c0, gate: gate, cell: cell)
        trace.numerical = check(trace, gate: gate, cell: cell)
        return trace
    }

    /// Forward and backward through the reference cell.
    static func compute(W: [[Double]], b: [Double], x: [[Double]], y: [[Double]], h0: [Double], c0: [Double],
                        gate: GateActivation, cell: CellActivation) -> LSTMTrace {
        let T = x.count, H = h0.count, I = x[0].count
        var forward: [ForwardStep] = []
        var hPrev = h0, sPrev = c0, loss = 0.0
        for t in 0..<T {
            let input = x[t] + hPrev
            let Z = (0..<(4 * H)).map { r in zip(W[r], input).reduce(0) { $0 + $1.0 * $1.1 } + b[r] }
            var gates = Z, S = [Double](repeating: 0, count: H), h = S
            gates.withUnsafeMutableBufferPointer { z in
                sPrev.withUnsafeBufferPointer { cp in
                    S.withUnsafeMutableBufferPointer { c in
                        h.withUnsafeMutableBufferPointer { hh in
                            LSTMPointwise.forward(gates: z.baseAddress!, previousCell: cp.baseAddress!, cell: c.baseAddress!,
                                                  hidden: hh.baseAddress!, batch: 1, hidden: H, gate: gate, cellActivation: cell)
                        }
                    }
                }
            }
            for j in 0..<H { loss += 0.5 * (h[j] - y[t][j]) * (h[j] - y[t][j]) }
            forward.append(ForwardStep(x: x[t], h_prev: hPrev, I: input, Z: Z, i: Array(gates[0..<H]), f: Array(gates[H..<(2 * H)]),
                                       g: Array(gates[(2 * H)..<(3 * H)]), o: Array(gates[(3 * H)...]), S: S, h: h))
            hPrev = h
            sPrev = S
        }
        var backward = [BackwardStep?](repeating: nil, count: T)
        var dW = [[Double]](repeating: [Double](repeating: 0, count: I + H), count: 4 * H)
        var db = [Double](repeating: 0, count: 4 * H)
        var dhNext = [Double](repeating: 0, count: H)     // δh_t from step t+1 (W_hhᵀ·δZ_{t+1})
        var dsCarry = [Double](repeating: 0, count: H)    // δS_{t+1} ⊙ f_{t+1}
        for t in stride(from: T - 1, through: 0, by: -1) {
            let s = forward[t]
            let previous = t > 0 ? forward[t - 1].S : c0
            let dLoss = (0..<H).map { s.h[$0] - y[t][$0] }
            let dh = (0..<H).map { dLoss[$0] + dhNext[$0] }
            let tc = s.S.map { LSTMPointwise.activate($0, cell) }
            let dSFromH = (0..<H).map { dh[$0] * s.o[$0] * LSTMPointwise.derivative(output: tc[$0], cell) }
            let dSFromNext = dsCarry
            let dS = (0..<H).map { dSFromH[$0] + dSFromNext[$0] }
            // δZ and the new carry from the reference backward step.
            let activated = s.i + s.f + s.g + s.o
            var carry = dsCarry, dZ = [Double](repeating: 0, count: 4 * H)
            activated.withUnsafeBufferPointer { a in
                previous.withUnsafeBufferPointer { cp in
                    s.S.withUnsafeBufferPointer { c in
                        dLoss.withUnsafeBufferPointer { dout in
                            dhNext.withUnsafeBufferPointer { dnext in
                                carry.withUnsafeMutableBufferPointer { dc in
                                    dZ.withUnsafeMutableBufferPointer { dz in
                                        LSTMPointwise.backward(gates: a.baseAddress!, previousCell: cp.baseAddress!, cell: c.baseAddress!,
                                                               dOutput: dout.baseAddress!, dHiddenCarry: dnext.baseAddress!,
                                                               dCellCarry: dc.baseAddress!, dGates: dz.baseAddress!, batch: 1,
                                                               hidden: H, gate: gate, cellActivation: cell)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let dI = (0..<(I + H)).map { c in (0..<(4 * H)).reduce(0.0) { $0 + W[$1][c] * dZ[$1] } }
            let dWt = (0..<(4 * H)).map { r in s.I.map { dZ[r] * $0 } }
            for r in 0..<(4 * H) {
                for c in 0..<(I + H) { dW[r][c] += dWt[r][c] }
                db[r] += dZ[r]
            }
            backward[t] = BackwardStep(dh: dh, dS_from_h: dSFromH, dS_from_next: dSFromNext, dS: dS,
                                       di: (0..<H).map { dS[$0] * s.g[$0] }, df: (0..<H).map { dS[$0] * previous[$0] },
                                       dg: (0..<H).map { dS[$0] * s.i[$0] }, do: (0..<H).map { dh[$0] * tc[$0] },
                                       dZ: dZ, dI: dI, dx: Array(dI[0..<I]), dh_prev: Array(dI[I...]), dW: dWt)
            dhNext = Array(dI[I...])
            dsCarry = carry
        }
        let none = Check(dW: [], db: [], dh0: [], dc0: [], max_abs_difference: 0, epsilon: 0)
        return LSTMTrace(weights: Weights(W: W, b: b), inputs: x, targets: y, h0: h0, c0: c0,
                         activations: Activations(gate: gate.rawValue, cell: cell.rawValue), loss: loss,
                         forward: forward, backward: backward.map { $0! },
                         gradients: Gradients(dW: dW, db: db, dh0: dhNext, dc0: dsCarry), numerical: none)
    }

    /// The central-difference column: every total again from the loss alone.
    static func check(_ trace: LSTMTrace, gate: GateActivation, cell: CellActivation) -> Check {
        let e = 1e-3
        func loss(W: [[Double]], b: [Double], h0: [Double], c0: [Double]) -> Double {
            compute(W: W, b: b, x: trace.inputs, y: trace.targets, h0: h0, c0: c0, gate: gate, cell: cell).loss
        }
        func derivative(_ f: (Double) -> Double) -> Double {
            (-f(2 * e) + 8 * f(e) - 8 * f(-e) + f(-2 * e)) / (12 * e)
        }
        let (W, b, h0, c0) = (trace.weights.W, trace.weights.b, trace.h0, trace.c0)
        let dW = W.indices.map { r in W[r].indices.map { c in
            derivative { d in var w = W; w[r][c] += d; return loss(W: w, b: b, h0: h0, c0: c0) }
        } }
        let db = b.indices.map { r in derivative { d in var v = b; v[r] += d; return loss(W: W, b: v, h0: h0, c0: c0) } }
        let dh0 = h0.indices.map { j in derivative { d in var v = h0; v[j] += d; return loss(W: W, b: b, h0: v, c0: c0) } }
        let dc0 = c0.indices.map { j in derivative { d in var v = c0; v[j] += d; return loss(W: W, b: b, h0: h0, c0: v) } }
        let g = trace.gradients
        let differences = zip(dW.joined(), g.dW.joined()).map { abs($0 - $1) } + zip(db, g.db).map { abs($0 - $1) }
            + zip(dh0, g.dh0).map { abs($0 - $1) } + zip(dc0, g.dc0).map { abs($0 - $1) }
        return Check(dW: dW, db: db, dh0: dh0, dc0: dc0, max_abs_difference: differences.max() ?? 0, epsilon: e)
    }
}
