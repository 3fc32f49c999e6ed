import _LSTMKernels

/// The activation applied to the input, forget and output gates (i, f, o).
public enum GateActivation: String, Sendable, Hashable, CaseIterable, Codable {
    /// σ(z) = 1 / (1 + e^(−z)); σ' = σ(1 − σ).
    case sigmoid
    /// PyTorch's hardsigmoid: clamp(z/6 + 1/2, 0, 1); derivative 1/6 strictly inside (−3, 3), else 0.
    case hardSigmoid = "hardsigmoid"
    /// a = z; the seed derivation's simplification.
    case identity
}

/// The activation applied to the candidate g and to the cell state before the output gate.
public enum CellActivation: String, Sendable, Hashable, CaseIterable, Codable {
    /// tanh; tanh' = 1 − tanh².
    case tanh
    /// a = z; with identity gates too this is the seed's LSTM "ignoring the non-linearities".
    case identity
}

extension GateActivation {
    /// The code `_LSTMKernels` uses.
    var kernelCode: Int32 {
        switch self {
        case .sigmoid: return 0
        case .hardSigmoid: return 1
        case .identity: return 2
        }
    }
}

extension CellActivation {
    var kernelCode: Int32 { self == .tanh ? 0 : 1 }
}

/// The per-step element-wise work of one LSTM layer, forward and backward, over B rows of width H.
///
/// ```
/// forward (Z_t holds W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh on entry, the activated gates on exit):
///   i = act(z_i)  f = act(z_f)  g = cellAct(z_g)  o = act(z_o)
///   S_t = f ⊙ S_{t-1} + i ⊙ g          h_t = o ⊙ cellAct(S_t)
///
/// backward (dh = δh_t from above and from step t+1; dcCarry = δS_{t+1} ⊙ f_{t+1} on entry):
///   δo = dh ⊙ cellAct(S_t)
///   δS_t = dh ⊙ o ⊙ cellAct'(S_t) + dcCarry
///   δi = δS_t ⊙ g   δg = δS_t ⊙ i   δf = δS_t ⊙ S_{t-1}
///   δz_i = δi ⊙ act'(i)   δz_f = δf ⊙ act'(f)   δz_g = δg ⊙ cellAct'(g)   δz_o = δo ⊙ act'(o)
///   dcCarry ← δS_t ⊙ f_t                 (what S_{t-1} receives through the keep gate)
/// ```
///
/// Every derivative is written in terms of the activation's output, which is what the forward pass keeps. Cell
/// clipping and peepholes change these equations as `LSTMActivations` writes out.
public enum LSTMPointwise {
    @inline(__always)
    static func activate<S: LSTMScalar>(_ z: S, _ kind: GateActivation) -> S {
        switch kind {
        case .sigmoid: return 1 / (1 + S.exponential(-z))
        case .hardSigmoid: return min(max(z / 6 + S(0.5), 0), 1)
        case .identity: return z
        }
    }

    /// The derivative at the point whose activation is `a`.
    @inline(__always)
    static func derivative<S: LSTMScalar>(output a: S, _ kind: GateActivation) -> S {
        switch kind {
        case .sigmoid: return a * (1 - a)
        case .hardSigmoid: return (a > 0 && a < 1) ? 1 / S(6) : 0
        case .identity: return 1
        }
    }

    @inline(__always)
    static func activate<S: LSTMScalar>(_ z: S, _ kind: CellActivation) -> S {
        switch kind {
        case .tanh:
            // Float uses the kernels' tanh, the one the forward pass used (see _LSTMKernels/pointwise.c).
            if S.self == Float.self { return S(lstmk_tanh(Float(z))) }
            return S.hyperbolicTangent(z)
        case .identity: return z
        }
    }

    @inline(__always)
    static func derivative<S: LSTMScalar>(output a: S, _ kind: CellActivation) -> S {
        switch kind {
        case .tanh: return 1 - a * a
        case .identity: return 1
        }
    }

    /// One forward step for B rows.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forward<S: LSTMScalar>(
        gates: UnsafeMutablePointer<S>,      // (B, 4H) pre-activations in, activated i, f, g, o out
        previousCell: UnsafePointer<S>,      // (B, H) S_{t-1}
        cell: UnsafeMutablePointer<S>,       // (B, H) S_t
        hidden: UnsafeMutablePointer<S>,     // (B, H) h_t
        batch B: Int, hidden H: Int, gate: GateActivation, cellActivation: CellActivation, cellClip: Double? = nil,
        peepholes: UnsafePointer<S>? = nil,  // (3H) p_i, p_f, p_o, or nil
        threads: Int = 1
    ) {
        if S.self == Float.self {
            // Float: the vectorized C pass (AVX2 or its bitwise-identical portable twin); rows are independent, so
            // blocks of rows may run on the pool.
            nonisolated(unsafe) let z = UnsafeMutableRawPointer(gates).assumingMemoryBound(to: Float.self)
            nonisolated(unsafe) let cp = UnsafeRawPointer(previousCell).assumingMemoryBound(to: Float.self)
            nonisolated(unsafe) let c = UnsafeMutableRawPointer(cell).assumingMemoryBound(to: Float.self)
            nonisolated(unsafe) let h = UnsafeMutableRawPointer(hidden).assumingMemoryBound(to: Float.self)
            nonisolated(unsafe) let peep = peepholes.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) }
            let (g, ca, clip) = (gate.kernelCode, cellActivation.kernelCode, Float(cellClip ?? 0))
            let parts = rowParts(B, H, threads)
            if parts == 1 {
                lstmk_pointwise_forward(z, cp, c, h, B, H, g, ca, clip, peep, 0)
                return
            }
            WorkerPool.shared(threads: parts).run(parts: parts) { part in
                let r0 = part * B / parts, r1 = (part + 1) * B / parts
                lstmk_pointwise_forward(z + r0 * 4 * H, cp + r0 * H, c + r0 * H, h + r0 * H, r1 - r0, H, g, ca, clip,
                                        peep, 0)
            }
            return
        }
        for b in 0..<B {
            let z = gates + b * 4 * H
            let cPrev = previousCell + b * H
            let c = cell + b * H
            let h = hidden + b * H
            for j in 0..<H {
                var zi = z[j], zf = z[H + j], zo = z[3 * H + j]
                if let peepholes {
                    zi = zi + peepholes[j] * cPrev[j]
                    zf = zf + peepholes[H + j] * cPrev[j]
                }
                let i = activate(zi, gate)
                let f = activate(zf, gate)
                let g = activate(z[2 * H + j], cellActivation)
                var s = f * cPrev[j] + i * g
                if let bound = cellClip.map({ S($0) }) { s = s < -bound ? -bound : (s > bound ? bound : s) }
                if let peepholes { zo = zo + peepholes[2 * H + j] * s }
                let o = activate(zo, gate)
                z[j] = i; z[H + j] = f; z[2 * H + j] = g; z[3 * H + j] = o
                c[j] = s
                h[j] = o * activate(s, cellActivation)
            }
        }
    }

    /// One backward step for B rows.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func backward<S: LSTMScalar>(
        gates: UnsafePointer<S>,             // (B, 4H) activated i, f, g, o of step t
        previousCell: UnsafePointer<S>,      // (B, H) S_{t-1}
        cell: UnsafePointer<S>,              // (B, H) S_t
        dOutput: UnsafePointer<S>?,          // (B, H) δh_t from the layer above or the loss; nil means zero
        dHiddenCarry: UnsafePointer<S>,      // (B, H) δh_t from step t+1
        dCellCarry: UnsafeMutablePointer<S>, // (B, H) δS_{t+1}⊙f_{t+1} in, δS_t⊙f_t out
        dGates: UnsafeMutablePointer<S>,     // (B, 4H) δZ_t out
        batch B: Int, hidden H: Int, gate: GateActivation, cellActivation: CellActivation, cellClip: Double? = nil,
        peepholes: UnsafePointer<S>? = nil,  // (3H) p_i, p_f, p_o, or nil
        threads: Int = 1
    ) {
        if S.self == Float.self {
            // Float: the vectorized C pass, the same operations in the same order as `backwardLoop` (tested bitwise);
            // rows are independent, so blocks of rows may run on the pool.
            func f(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
            func f(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
                UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
            }
            nonisolated(unsafe) let a = f(gates), cp = f(previousCell), c = f(cell), dout = dOutput.map(f)
            nonisolated(unsafe) let dcarry = f(dHiddenCarry), dc = f(dCellCarry), dz = f(dGates)
            nonisolated(unsafe) let peep = peepholes.map(f)
            let (g, ca, clip) = (gate.kernelCode, cellActivation.kernelCode, Float(cellClip ?? 0))
            let parts = rowParts(B, H, threads)
            if parts == 1 {
                lstmk_pointwise_backward(a, cp, c, dout, dcarry, dc, dz, B, H, g, ca, clip, peep, 0)
                return
            }
            WorkerPool.shared(threads: parts).run(parts: parts) { part in
                let r0 = part * B / parts, r1 = (part + 1) * B / parts
                lstmk_pointwise_backward(a + r0 * 4 * H, cp + r0 * H, c + r0 * H, dout.map { $0 + r0 * H },
                                         dcarry + r0 * H, dc + r0 * H, dz + r0 * 4 * H, r1 - r0, H, g, ca, clip,
                                         peep, 0)
            }
            return
        }
        backwardLoop(gates: gates, previousCell: previousCell, cell: cell, dOutput: dOutput,
                     dHiddenCarry: dHiddenCarry, dCellCarry: dCellCarry, dGates: dGates, batch: B, hidden: H,
                     gate: gate, cellActivation: cellActivation, cellClip: cellClip, peepholes: peepholes)
    }

    /// Row blocks for the element-wise pass: below ~2k elements a fork/join costs more than it saves.
    static func rowParts(_ B: Int, _ H: Int, _ threads: Int) -> Int {
        B * H >= 2048 ? max(1, min(threads, B)) : 1
    }

    /// The backward step written out in Swift (Double, and the reference the Float kernels are tested against).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backwardLoop<S: LSTMScalar>(
        gates: UnsafePointer<S>, previousCell: UnsafePointer<S>, cell: UnsafePointer<S>, dOutput: UnsafePointer<S>?,
        dHiddenCarry: UnsafePointer<S>, dCellCarry: UnsafeMutablePointer<S>, dGates: UnsafeMutablePointer<S>,
        batch B: Int, hidden H: Int, gate: GateActivation, cellActivation: CellActivation, cellClip: Double? = nil,
        peepholes: UnsafePointer<S>? = nil
    ) {
        let bound = cellClip.map { S($0) }
        for b in 0..<B {
            let a = gates + b * 4 * H
            let cPrev = previousCell + b * H
            let c = cell + b * H
            let dCarry = dHiddenCarry + b * H
            let dc = dCellCarry + b * H
            let dz = dGates + b * 4 * H
            for j in 0..<H {
                let i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j]
                var dh = dCarry[j]
                if let dOutput { dh = dOutput[b * H + j] + dh }
                let tc = activate(c[j], cellActivation)
                let dO = dh * tc
                let dzo = dO * derivative(output: o, gate)
                let dS = dh * o * derivative(output: tc, cellActivation) + dc[j]
                dc[j] = gateDeltas(dS, dzo: dzo, i: i, f: f, g: g, previousCell: cPrev[j], cell: c[j], bound: bound,
                                   peepholes: peepholes, j, H, gate: gate, cellActivation: cellActivation, dGates: dz)
            }
        }
    }

    /// The rest of a backward step once δS_t (output path + carry) and δz_o are known, shared by the plain and the
    /// layer-normalized step: peephole and clipping terms, δz_i, δz_f, δz_g (written with δz_o into `dGates`), and
    /// the carry δS_t ⊙ f (+ peephole terms) that S_{t-1} receives.
    @inline(__always)
    static func gateDeltas<S: LSTMScalar>(
        _ dSIn: S, dzo: S, i: S, f: S, g: S, previousCell: S, cell: S, bound: S?, peepholes: UnsafePointer<S>?,
        _ j: Int, _ H: Int, gate: GateActivation, cellActivation: CellActivation, dGates dz: UnsafeMutablePointer<S>
    ) -> S {
        var dS = dSIn
        // With peepholes o also sees S_t.
        if let peepholes { dS = dS + dzo * peepholes[2 * H + j] }
        // Where clipping held S_t at a bound, S_t does not depend on the step's inputs (δ 0).
        if let bound, cell <= -bound || cell >= bound { dS = 0 }
        let dzi = dS * g * derivative(output: i, gate), dzf = dS * previousCell * derivative(output: f, gate)
        dz[j] = dzi
        dz[H + j] = dzf
        dz[2 * H + j] = dS * i * derivative(output: g, cellActivation)
        dz[3 * H + j] = dzo
        // S_{t-1} feeds the next cell through f, and i and f through their peepholes.
        var carry = dS * f
        if let peepholes { carry = carry + dzi * peepholes[j] + dzf * peepholes[H + j] }
        return carry
    }

    /// σ (`function` 0) or tanh (1) of every element with the Float kernels' approximations; `portable` forces the
    /// portable path (tests compare the two).
    public static func floatActivation(_ function: Int, _ x: [Float], portable: Bool = false) -> [Float] {
        floatActivation(function, x, kernel: portable ? 1 : 0)
    }

    /// As `floatActivation(_:_:portable:)` with the kernel chosen: 0 this CPU's widest vectors, 1 portable, 2 at
    /// most AVX2 (tests compare every width).
    static func floatActivation(_ function: Int, _ x: [Float], kernel: Int32) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                lstmk_activation(Int32(function), xs.baseAddress!, ys.baseAddress!, x.count, kernel)
            }
        }
        return y
    }

    /// The Float backward pass with the C kernel (`kernel`: 0 this CPU's widest vectors, 1 portable, 2 at most
    /// AVX2); tests.
    static func floatBackward(gates: [Float], previousCell: [Float], cell: [Float], dOutput: [Float]?,
                              dHiddenCarry: [Float], dCellCarry: inout [Float], dGates: inout [Float], batch B: Int,
                              hidden H: Int, gate: GateActivation, cellActivation: CellActivation,
                              cellClip: Double? = nil, peepholes: [Float]? = nil, kernel: Int32) {
        let clip = Float(cellClip ?? 0)
        let peep = peepholes ?? [0]
        peep.withUnsafeBufferPointer { p in
            let pp = peepholes == nil ? nil : p.baseAddress
            if let dOutput {
                lstmk_pointwise_backward(gates, previousCell, cell, dOutput, dHiddenCarry, &dCellCarry, &dGates, B, H,
                                         gate.kernelCode, cellActivation.kernelCode, clip, pp, kernel)
            } else {
                lstmk_pointwise_backward(gates, previousCell, cell, nil, dHiddenCarry, &dCellCarry, &dGates, B, H,
                                         gate.kernelCode, cellActivation.kernelCode, clip, pp, kernel)
            }
        }
    }

    /// The Float forward pass with the portable kernel, whatever the CPU (tests).
    public static func portableFloatForward(gates: inout [Float], previousCell: [Float], cell: inout [Float],
                                            hidden: inout [Float], batch B: Int, hidden H: Int,
                                            gate: GateActivation, cellActivation: CellActivation,
                                            cellClip: Double? = nil, peepholes: [Float]? = nil) {
        floatForward(gates: &gates, previousCell: previousCell, cell: &cell, hidden: &hidden, batch: B, hidden: H,
                     gate: gate, cellActivation: cellActivation, cellClip: cellClip, peepholes: peepholes, kernel: 1)
    }

    /// The Float forward pass with the kernel chosen: 0 this CPU's widest vectors, 1 portable, 2 at most AVX2
    /// (tests).
    static func floatForward(gates: inout [Float], previousCell: [Float], cell: inout [Float], hidden: inout [Float],
                             batch B: Int, hidden H: Int, gate: GateActivation, cellActivation: CellActivation,
                             cellClip: Double? = nil, peepholes: [Float]? = nil, kernel: Int32) {
        let peep = peepholes ?? [0]
        peep.withUnsafeBufferPointer { p in
            lstmk_pointwise_forward(&gates, previousCell, &cell, &hidden, B, H, gate.kernelCode,
                                    cellActivation.kernelCode, Float(cellClip ?? 0), peepholes == nil ? nil : p.baseAddress,
                                    kernel)
        }
    }
}
