import Foundation
import Testing
@testable import LSTMKit

/// `LSTMTrace` against an independent recomputation of the equations and against `LSTM.forward` / `backward`.
struct TraceTests {
    static func close(_ a: [Double], _ b: [Double], _ tolerance: Double) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
    }

    /// The equations of DESIGN.md §1 written out plainly here (libm exp and tanh, no library code).
    static func recompute(_ trace: LSTMTrace, linear: Bool) -> (h: [[Double]], dZ: [[Double]], dW: [[Double]], dh0: [Double], dc0: [Double]) {
        let W = trace.weights.W, b = trace.weights.b, x = trace.inputs, y = trace.targets
        let T = x.count, H = trace.h0.count, I = x[0].count
        func sigma(_ z: Double) -> Double { linear ? z : 1 / (1 + exp(-z)) }
        func th(_ z: Double) -> Double { linear ? z : tanh(z) }
        var hs = [trace.h0], ss = [trace.c0], gates: [[Double]] = [], inputs: [[Double]] = []
        for t in 0..<T {
            let input = x[t] + hs[t]
            inputs.append(input)
            var z = [Double](repeating: 0, count: 4 * H)
            for r in 0..<(4 * H) { for c in 0..<(I + H) { z[r] += W[r][c] * input[c] }; z[r] += b[r] }
            let i = (0..<H).map { sigma(z[$0]) }, f = (0..<H).map { sigma(z[H + $0]) }
            let g = (0..<H).map { th(z[2 * H + $0]) }, o = (0..<H).map { sigma(z[3 * H + $0]) }
            let s = (0..<H).map { f[$0] * ss[t][$0] + i[$0] * g[$0] }
            hs.append((0..<H).map { o[$0] * th(s[$0]) })
            ss.append(s)
            gates.append(i + f + g + o)
        }
        var dZs = [[Double]](repeating: [], count: T)
        var dW = [[Double]](repeating: [Double](repeating: 0, count: I + H), count: 4 * H)
        var dhNext = [Double](repeating: 0, count: H), dsNext = [Double](repeating: 0, count: H)
        var fNext = [Double](repeating: 0, count: H)
        for t in stride(from: T - 1, through: 0, by: -1) {
            let a = gates[t]
            let i = Array(a[0..<H]), f = Array(a[H..<(2 * H)]), g = Array(a[(2 * H)..<(3 * H)]), o = Array(a[(3 * H)...])
            let dh = (0..<H).map { hs[t + 1][$0] - y[t][$0] + dhNext[$0] }
            let tc = ss[t + 1].map(th)
            var dS = [Double](repeating: 0, count: H), dZ = [Double](repeating: 0, count: 4 * H)
            for j in 0..<H {
                let cellSlope: Double = linear ? 1 : 1 - tc[j] * tc[j]
                dS[j] = dh[j] * o[j] * cellSlope + dsNext[j] * fNext[j]
                let gi: Double = linear ? 1 : i[j] * (1 - i[j]), gf: Double = linear ? 1 : f[j] * (1 - f[j])
                let gg: Double = linear ? 1 : 1 - g[j] * g[j], go: Double = linear ? 1 : o[j] * (1 - o[j])
                dZ[j] = dS[j] * g[j] * gi
                dZ[H + j] = dS[j] * ss[t][j] * gf
                dZ[2 * H + j] = dS[j] * i[j] * gg
                dZ[3 * H + j] = dh[j] * tc[j] * go
            }
            dZs[t] = dZ
            for r in 0..<(4 * H) { for c in 0..<(I + H) { dW[r][c] += dZ[r] * inputs[t][c] } }
            dhNext = (0..<H).map { j in (0..<(4 * H)).reduce(0.0) { $0 + W[$1][I + j] * dZ[$1] } }
            dsNext = dS
            fNext = f
        }
        return (Array(hs.dropFirst()), dZs, dW, dhNext, (0..<H).map { dsNext[$0] * fNext[$0] })
    }

    @Test(arguments: [false, true])
    func agreesWithTheEquationsAndTheirDifferences(linear: Bool) throws {
        // Through JSON, as a notebook reads it.
        let made = try LSTMTrace.run(input: 3, hidden: 2, steps: 4, seed: 5, linear: linear)
        let trace = try JSONDecoder().decode(LSTMTrace.self, from: JSONEncoder().encode(made))
        #expect(trace == made, "JSON round-trips every number")
        let r = Self.recompute(trace, linear: linear)
        for t in 0..<4 {
            #expect(Self.close(trace.forward[t].h, r.h[t], 1e-12), "h at step \(t)")
            #expect(Self.close(trace.backward[t].dZ, r.dZ[t], 1e-12), "δZ at step \(t)")
            #expect(Self.close(trace.backward[t].dS, zip(trace.backward[t].dS_from_h, trace.backward[t].dS_from_next).map(+), 1e-15))
        }
        #expect(Self.close(Array(trace.gradients.dW.joined()), Array(r.dW.joined()), 1e-12))
        #expect(Self.close(trace.gradients.dh0, r.dh0, 1e-12) && Self.close(trace.gradients.dc0, r.dc0, 1e-12))
        #expect(Self.close(trace.gradients.db, (0..<8).map { row in r.dZ.reduce(0) { $0 + $1[row] } }, 1e-12))
        // The central-difference column.
        #expect(trace.numerical.max_abs_difference <= 1e-7)
        #expect(Self.close(Array(trace.numerical.dW.joined()), Array(trace.gradients.dW.joined()), 1e-7))
        if linear { #expect(trace.weights.b.allSatisfy { $0 == 0 } && trace.activations.gate == "identity") }
    }

    /// The totals are what the library's LSTM computes for the same weights, in Double.
    @Test func totalsEqualTheLibrarysLSTM() throws {
        let trace = try LSTMTrace.run(input: 2, hidden: 3, steps: 5, seed: 9)
        let (I, H, T) = (2, 3, 5)
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: I, hiddenSize: H, layout: &layout)
        var p = ParameterBuffer<Double>(layout: layout)
        let layer = lstm.layers[0]
        for r in 0..<(4 * H) {
            for c in 0..<I { p.storage[layer.weightIH.offset + r * I + c] = trace.weights.W[r][c] }
            for c in 0..<H { p.storage[layer.weightHH.offset + r * H + c] = trace.weights.W[r][I + c] }
            p.storage[layer.biasIH.offset + r] = trace.weights.b[r]
        }
        let stash = LSTMStash<Double>()
        let initial = LSTMState<Double>(hidden: trace.h0, cell: trace.c0, layers: 1, batch: 1, hiddenSize: H)
        let out = lstm.forward(Array(trace.inputs.joined()), steps: T, batch: 1, initial: initial, parameters: p, stash: stash)
        #expect(Self.close(out.output, Array(trace.forward.map(\.h).joined()), 1e-12))
        var g = ParameterBuffer<Double>(layout: layout)
        let dOut = zip(out.output, Array(trace.targets.joined())).map { $0 - $1 }
        let back = lstm.backward(dOutput: dOut, parameters: p, stash: stash, gradients: &g)
        for r in 0..<(4 * H) {
            #expect(Self.close((0..<I).map { g.storage[layer.weightIH.offset + r * I + $0] }, Array(trace.gradients.dW[r][0..<I]), 1e-12))
            #expect(Self.close((0..<H).map { g.storage[layer.weightHH.offset + r * H + $0] }, Array(trace.gradients.dW[r][I...]), 1e-12))
            #expect(abs(g.storage[layer.biasIH.offset + r] - trace.gradients.db[r]) <= 1e-12)
        }
        #expect(Self.close(back.input, Array(trace.backward.map(\.dx).joined()), 1e-12))
        #expect(Self.close(back.initial.hidden, trace.gradients.dh0, 1e-12) && Self.close(back.initial.cell, trace.gradients.dc0, 1e-12))
    }
}
