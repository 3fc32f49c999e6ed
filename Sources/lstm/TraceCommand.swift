import ArgumentParser
import Foundation
import LSTMKit

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show every number of a tiny LSTM's forward pass and backpropagation through time.",
        discussion: """
        One layer, loss L = ½ Σ_t Σ_j (h_t,j − y_t,j)² against seeded targets: per step the forward values (x, h_{t−1}, \
        I = [x, h_{t−1}], Z = W·I + b, i, f, g, o, S, h) and, from the last step down, δh, the two paths into δS, \
        the gate deltas, δZ, δI = Wᵀ·δZ split into δx and δh_{t−1}, δW_t = δZ·Iᵀ; then the totals beside central \
        differences. --format json is the machine-readable contract; html is one self-contained page.
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, html }

    @Option(help: "Input size I.") var input = 2
    @Option(help: "Hidden size H.") var hidden = 2
    @Option(help: "Steps T.") var steps = 3
    @OptionGroup var random: SeedOption
    @Flag(help: "The model 'ignoring the non-linearities': identity gate and cell activations, zero bias.") var linear = false
    @Option(help: "text, json or html.") var format = Format.text
    @Option(help: "Write to this file instead of standard output.") var output: String?

    func validate() throws {
        for (name, value) in [("--input", input), ("--hidden", hidden), ("--steps", steps)] where !(1...64).contains(value) {
            throw ValidationError("\(name) must be 1 to 64 (a trace prints every number), got \(value)")
        }
    }

    func run() throws {
        try reportingFailures {
            let trace = try LSTMTrace.run(input: input, hidden: hidden, steps: steps, seed: random.seed, linear: linear)
            let text: String
            switch format {
            case .json:
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                text = String(decoding: try encoder.encode(trace), as: UTF8.self) + "\n"
            case .text: text = TraceText.render(trace, seed: random.seed)
            case .html: text = TraceHTML.render(trace, seed: random.seed)
            }
            if let output {
                do { try AtomicFile.write(Array(text.utf8), to: output) } catch {
                    throw Failure(message: "cannot write \(output): \(error)")
                }
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
    }
}

func vector(_ v: [Double], _ digits: Int = 5) -> String {
    "[" + v.map { String(format: "%.\(digits)g", $0) }.joined(separator: ", ") + "]"
}

enum TraceText {
    static func render(_ trace: LSTMTrace, seed: UInt64) -> String {
        let T = trace.forward.count, H = trace.h0.count, I = trace.inputs[0].count
        let act = trace.activations
        let σ = act.gate == "sigmoid" ? "σ" : "id", tanh = act.cell == "tanh" ? "tanh" : "id"
        var out = "LSTM trace: I = \(I), H = \(H), T = \(T), seed \(seed); gates \(act.gate), cell \(act.cell)\n"
        out += "loss L = ½ Σ_t Σ_j (h_t,j − y_t,j)² = \(String(format: "%.10g", trace.loss))\n\n"
        out += "W = [W_ih | W_hh] (\(4 * H) × \(I + H)), rows i, f, g, o; b = b_ih + b_hh\n"
        for (r, row) in trace.weights.W.enumerated() {
            out += "  \(["i", "f", "g", "o"][r / H])\(r % H)  \(vector(row))   b \(String(format: "%.5g", trace.weights.b[r]))\n"
        }
        out += "h0 = \(vector(trace.h0))   c0 = \(vector(trace.c0))\n\n"
        out += "forward\n"
        for (t, s) in trace.forward.enumerated() {
            out += "t = \(t + 1)  x = \(vector(s.x))   h_{t−1} = \(vector(s.h_prev))   y = \(vector(trace.targets[t]))\n"
            out += "       I = [x, h_{t−1}] = \(vector(s.I))\n"
            out += "       Z = W·I + b = \(vector(s.Z))\n"
            out += "       i = \(σ)(z_i) = \(vector(s.i))   f = \(σ)(z_f) = \(vector(s.f))\n"
            out += "       g = \(tanh)(z_g) = \(vector(s.g))   o = \(σ)(z_o) = \(vector(s.o))\n"
            out += "       S = f⊙S_{t−1} + i⊙g = \(vector(s.S))   h = o⊙\(tanh)(S) = \(vector(s.h))\n"
        }
        out += "\nbackward (from t = \(T) down to 1)\n"
        for t in stride(from: T - 1, through: 0, by: -1) {
            let d = trace.backward[t]
            out += "t = \(t + 1)  δh = (h − y) + from step t+1 = \(vector(d.dh))\n"
            out += "       δS through h_t = δh⊙o⊙\(tanh)'(S) = \(vector(d.dS_from_h))\n"
            out += "       δS through S_{t+1} = δS_{t+1}⊙f_{t+1} = \(vector(d.dS_from_next))\n"
            out += "       δS = \(vector(d.dS))\n"
            out += "       δi = δS⊙g = \(vector(d.di))   δf = δS⊙S_{t−1} = \(vector(d.df))\n"
            out += "       δg = δS⊙i = \(vector(d.dg))   δo = δh⊙\(tanh)(S) = \(vector(d.do))\n"
            out += "       δZ = \(vector(d.dZ))\n"
            out += "       δI = Wᵀ·δZ = \(vector(d.dI))  →  δx = \(vector(d.dx)), δh_{t−1} = \(vector(d.dh_prev))\n"
            out += "       δW_t = δZ·Iᵀ: " + d.dW.map { vector($0, 4) }.joined(separator: " ") + "\n"
        }
        out += "\ntotals: analytic (sum over steps) beside the fourth-order central difference (ε = \(trace.numerical.epsilon))\n"
        out += "  " + "".padding(toLength: 12, withPad: " ", startingAt: 0) + "analytic         central diff.    |difference|\n"
        for (name, a, n) in trace.comparisons {
            out += "  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%+.10f   %+.10f   %.1e\n", a, n, abs(a - n))
        }
        out += String(format: "largest |difference| %.2e\n", trace.numerical.max_abs_difference)
        return out
    }
}
