import ArgumentParser
import Foundation
import LSTMKit

struct GradCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check the LSTM's backward pass against numerical derivatives, in Double.",
        discussion: "Prints, for every parameter tensor and for x, h0, c0, the largest absolute and relative error "
            + "between the analytic gradient and a central difference. Exits 1 if any relative error exceeds the threshold."
    )

    @Option(help: "Number of stacked layers.") var layers = 2
    @Option(help: "Input size I.") var input = 3
    @Option(help: "Hidden size H.") var hidden = 4
    @Option(help: "Batch size B.") var batch = 2
    @Option(help: "Sequence length T.") var steps = 5
    @Option(help: "Gate activation: sigmoid, hardsigmoid or identity.") var gate = GateActivation.sigmoid
    @Option(help: "Cell activation: tanh or identity.") var cell = CellActivation.tanh
    @Flag(help: "Put no gradient on the final (h_T, c_T).") var noFinalGradient = false
    @Option(help: "Scale of the random weights, in units of 1/sqrt(H).") var scale = 1.0
    @Option(help: "Largest relative error accepted.") var threshold = 1e-6
    @Option(help: "Random seed.") var seed: UInt64 = 0

    func validate() throws {
        for (name, value) in [("--layers", layers), ("--input", input), ("--hidden", hidden), ("--batch", batch), ("--steps", steps)] {
            guard value >= 1 else { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        let work = layers * steps * batch * hidden * (input + hidden)
        guard work <= 2_000_000 else {
            throw ValidationError("configuration too large for a numerical gradient check (L·T·B·H·(I+H) = \(work) > 2,000,000); use smaller sizes")
        }
        guard scale.isFinite, scale > 0 else { throw ValidationError("--scale must be a positive number, got \(scale)") }
    }

    func run() throws {
        let configuration = GradientCheck.Configuration(
            layers: layers, inputSize: input, hiddenSize: hidden, batch: batch, steps: steps,
            activations: LSTMActivations(gate: gate, cell: cell), finalStateGradient: !noFinalGradient,
            parameterScale: scale)
        let reports: [GradientCheck.TensorReport]
        do {
            reports = try GradientCheck.run(configuration, seed: seed)
        } catch {
            throw ValidationError(error.description)
        }
        print("gradient check: L=\(layers) I=\(input) H=\(hidden) B=\(batch) T=\(steps) gate=\(gate.rawValue) cell=\(cell.rawValue) final-state-gradient=\(!noFinalGradient) seed=\(seed)")
        print(GradientCheck.relativeErrorFormula)
        let nameWidth = max(8, reports.map(\.name.count).max() ?? 0)
        print(pad("tensor", nameWidth) + "  count   max|grad|    max abs err  max rel err  skipped")
        var failed = false
        for r in reports {
            let bad = r.maxRelativeError > threshold
            failed = failed || bad
            print(pad(r.name, nameWidth) + "  " + pad(String(r.count), 6) + "  " + sci(r.maxMagnitude) + "  "
                  + sci(r.maxAbsoluteError) + "  " + sci(r.maxRelativeError) + "  " + pad(String(r.skipped), 7)
                  + (bad ? "  FAIL" : ""))
        }
        let worst = reports.map(\.maxRelativeError).max() ?? 0
        let skipped = reports.map(\.skipped).reduce(0, +)
        if skipped > 0 {
            print("skipped: \(skipped) components whose difference stencil crossed a hard-sigmoid kink even at eps = 1e-6")
        }
        print(failed ? "FAIL: max relative error \(sci(worst)) > \(threshold)" : "OK: max relative error \(sci(worst)) <= \(threshold)")
        if failed { throw ExitCode(1) }
    }
}

extension GateActivation: ExpressibleByArgument {}
extension CellActivation: ExpressibleByArgument {}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

func sci(_ x: Double) -> String {
    String(format: "%11.3e", x)
}
