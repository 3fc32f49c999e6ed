/// Layer normalization of rows (Ba, Kiros & Hinton 2016), the pieces the layer-normalized LSTM needs.
///
/// For one row z of width F:
/// ```
/// μ = Σ z / F     v = Σ (z − μ)² / F     r = 1/√(v + ε)     ẑ = (z − μ)·r     y = γ ⊙ ẑ + β
/// backward (δy given):  δγ += δy ⊙ ẑ   δβ += δy   δẑ = δy ⊙ γ
///                       δz = r·(δẑ − mean(δẑ) − ẑ ⊙ mean(δẑ ⊙ ẑ))
/// ```
/// The forward pass keeps ẑ and r per row: the backward formula needs nothing else.
public enum LayerNorm {
    /// ε in r = 1/√(v + ε), as PyTorch's `nn.LayerNorm` default.
    public static let epsilon = 1e-5

    /// Normalizes each of `rows` rows of `z` (row stride `width`): writes ẑ and r, and adds γ ⊙ ẑ + β into `output`
    /// (which may be `z` itself, holding the product on entry and the sum on exit when `replace`).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forward<S: LSTMScalar>(
        _ z: UnsafePointer<S>, rows: Int, width F: Int, gamma: UnsafePointer<S>, beta: UnsafePointer<S>,
        normalized: UnsafeMutablePointer<S>, inverseDeviation: UnsafeMutablePointer<S>,
        output: UnsafeMutablePointer<S>, replace: Bool
    ) {
        let count = S(F), eps = S(epsilon)
        for r in 0..<rows {
            let row = z + r * F, zh = normalized + r * F, out = output + r * F
            var mean: S = 0
            for j in 0..<F { mean += row[j] }
            mean = mean / count
            var variance: S = 0
            for j in 0..<F { let d = row[j] - mean; variance += d * d }
            variance = variance / count
            let inverse = 1 / (variance + eps).squareRoot()
            inverseDeviation[r] = inverse
            for j in 0..<F {
                let n = (row[j] - mean) * inverse
                zh[j] = n
                out[j] = replace ? gamma[j] * n + beta[j] : out[j] + (gamma[j] * n + beta[j])
            }
        }
    }

    /// δz of `rows` rows from δy (`dOutput`), adding δγ and δβ (rows taken last to first when `descending`: the
    /// order of the sums); `dInput` may be `dOutput`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backward<S: LSTMScalar>(
        dOutput: UnsafePointer<S>, rows: Int, width F: Int, gamma: UnsafePointer<S>,
        normalized: UnsafePointer<S>, inverseDeviation: UnsafePointer<S>,
        dGamma: UnsafeMutablePointer<S>, dBeta: UnsafeMutablePointer<S>, dInput: UnsafeMutablePointer<S>,
        descending: Bool = false
    ) {
        let count = S(F)
        for k in 0..<rows {
            let r = descending ? rows - 1 - k : k
            let dy = dOutput + r * F, zh = normalized + r * F, dz = dInput + r * F
            var meanD: S = 0, meanDZ: S = 0
            for j in 0..<F {
                dGamma[j] += dy[j] * zh[j]
                dBeta[j] += dy[j]
                let d = dy[j] * gamma[j]
                meanD += d
                meanDZ += d * zh[j]
            }
            meanD = meanD / count
            meanDZ = meanDZ / count
            let inverse = inverseDeviation[r]
            for j in 0..<F {
                let d = dy[j] * gamma[j]
                dz[j] = inverse * (d - meanD - zh[j] * meanDZ)
            }
        }
    }
}

extension LSTMPointwise {
    /// The layer-normalized LSTM's output for B rows whose gates and S_t the plain forward pass has computed:
    /// ```
    /// Ŝ = LN(S_t)   ĉ = γ_c ⊙ Ŝ + β_c   m_t = o ⊙ cellAct(ĉ)
    /// ```
    /// keeping Ŝ and r for backward; `scratch` (B, H) holds ĉ.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func normalizedCellForward<S: LSTMScalar>(
        gates: UnsafePointer<S>, cell: UnsafePointer<S>, hidden: UnsafeMutablePointer<S>, batch B: Int, hidden H: Int,
        cellActivation: CellActivation, gamma: UnsafePointer<S>, beta: UnsafePointer<S>,
        normalized: UnsafeMutablePointer<S>, inverseDeviation: UnsafeMutablePointer<S>, scratch: UnsafeMutablePointer<S>
    ) {
        LayerNorm.forward(cell, rows: B, width: H, gamma: gamma, beta: beta, normalized: normalized,
                          inverseDeviation: inverseDeviation, output: scratch, replace: true)
        for b in 0..<B {
            let o = gates + b * 4 * H + 3 * H
            for j in 0..<H { hidden[b * H + j] = o[j] * activate(scratch[b * H + j], cellActivation) }
        }
    }

    /// One backward step of the layer-normalized LSTM for B rows (the standard step of `backwardLoop`, with the
    /// cell's normalization between S_t and the output):
    /// ```
    /// ĉ = γ_c ⊙ Ŝ + β_c   tc = cellAct(ĉ)          (Ŝ, r kept by the forward pass)
    /// δo = δm ⊙ tc        δĉ = δm ⊙ o ⊙ cellAct'(tc)   δγ_c += δĉ ⊙ Ŝ   δβ_c += δĉ
    /// δS_t = r·(δŜ − mean(δŜ) − Ŝ ⊙ mean(δŜ ⊙ Ŝ)) + δS_{t+1} ⊙ f_{t+1},   δŜ = δĉ ⊙ γ_c
    /// ```
    /// then δi, δf, δg, δZ and the carry exactly as without normalization (peepholes and clipping included).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backwardNormalizedCell<S: LSTMScalar>(
        gates: UnsafePointer<S>, previousCell: UnsafePointer<S>, cell: UnsafePointer<S>,
        normalized: UnsafePointer<S>, inverseDeviation: UnsafePointer<S>, gamma: UnsafePointer<S>, beta: UnsafePointer<S>,
        dHidden: UnsafePointer<S>, dCellCarry: UnsafeMutablePointer<S>, dGates: UnsafeMutablePointer<S>,
        dGamma: UnsafeMutablePointer<S>, dBeta: UnsafeMutablePointer<S>, scratch: UnsafeMutablePointer<S>,
        batch B: Int, hidden H: Int, gate: GateActivation, cellActivation: CellActivation, cellClip: Double?,
        peepholes: UnsafePointer<S>?
    ) {
        let bound = cellClip.map { S($0) }
        // δĉ of every row into scratch, δγ_c, δβ_c; then scratch ← δS from the output path through LN.
        for b in 0..<B {
            let a = gates + b * 4 * H, n = normalized + b * H, dm = dHidden + b * H, dc = scratch + b * H
            for j in 0..<H {
                let tc = activate(gamma[j] * n[j] + beta[j], cellActivation)
                dc[j] = dm[j] * a[3 * H + j] * derivative(output: tc, cellActivation)
            }
        }
        LayerNorm.backward(dOutput: scratch, rows: B, width: H, gamma: gamma, normalized: normalized,
                           inverseDeviation: inverseDeviation, dGamma: dGamma, dBeta: dBeta, dInput: scratch,
                           descending: false)
        for b in 0..<B {
            let a = gates + b * 4 * H, n = normalized + b * H, dm = dHidden + b * H
            let cPrev = previousCell + b * H, c = cell + b * H, dS0 = scratch + b * H
            let dc = dCellCarry + b * H, dz = dGates + b * 4 * H
            for j in 0..<H {
                let tc = activate(gamma[j] * n[j] + beta[j], cellActivation)
                let dzo = dm[j] * tc * derivative(output: a[3 * H + j], gate)
                dc[j] = gateDeltas(dS0[j] + dc[j], dzo: dzo, i: a[j], f: a[H + j], g: a[2 * H + j],
                                   previousCell: cPrev[j], cell: c[j], bound: bound, peepholes: peepholes, j, H,
                                   gate: gate, cellActivation: cellActivation, dGates: dz)
            }
        }
    }
}
