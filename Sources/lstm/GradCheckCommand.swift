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
    @OptionGroup var random: SeedOption
    var seed: UInt64 { random.seed }
    @Flag(help: "Bidirectional layers.") var bidirectional = false
    @Option(help: "Projection size P (LSTMP), 0 for none.") var proj = 0
    @Flag(help: "Layer-normalized LSTM.") var layerNorm = false
    @Flag(help: "Peephole connections.") var peepholes = false
    @Option(help: "Cell clip C (0: off).") var cellClip = 0.0
    @Option(help: "Comma-separated length of every batch row (variable-length batch), e.g. 5,2,4.") var lengths: String?
    @Option(help: "Dropout between layers, with one fixed mask.") var dropout = 0.0
    @Option(help: "Variational recurrent dropout, with one fixed mask.") var recurrentDropout = 0.0

    func validate() throws {
        for (name, value) in [("--layers", layers), ("--input", input), ("--hidden", hidden), ("--batch", batch), ("--steps", steps)] {
            guard value >= 1 else { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        let work = layers * steps * batch * hidden * (input + hidden)
        guard work <= 2_000_000 else {
            throw ValidationError("configuration too large for a numerical gradient check (L·T·B·H·(I+H) = \(work) > 2,000,000); use smaller sizes")
        }
        guard scale.isFinite, scale > 0 else { throw ValidationError("--scale must be a positive number, got \(scale)") }
        guard cellClip.isFinite, cellClip >= 0 else { throw ValidationError("--cell-clip must be 0 (off) or a positive number, got \(cellClip)") }
        guard proj >= 0 else { throw ValidationError("--proj must be 0 (none) or a size below --hidden, got \(proj)") }
        _ = try parsedLengths()
    }

    private func parsedLengths() throws -> [Int]? {
        guard let lengths else { return nil }
        let values = lengths.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == batch, values.allSatisfy({ $0 != nil && $0! >= 1 && $0! <= steps }) else {
            throw ValidationError("--lengths needs \(batch) comma-separated numbers in 1...\(steps) (one per batch row), got '\(lengths)'")
        }
        return values.map { $0! }
    }

    func run() throws {
        var configuration = GradientCheck.Configuration(
            layers: layers, inputSize: input, hiddenSize: hidden, batch: batch, steps: steps,
            activations: LSTMActivations(gate: gate, cell: cell, cellClip: cellClip > 0 ? cellClip : nil,
                                         peepholes: peepholes, layerNorm: layerNorm),
            finalStateGradient: !noFinalGradient, parameterScale: scale, dropout: dropout, dropoutSeed: seed &+ 1)
        configuration.bidirectional = bidirectional
        configuration.projectionSize = proj
        configuration.lengths = try parsedLengths()
        configuration.recurrentDropout = recurrentDropout
        let reports: [GradientCheck.TensorReport]
        do {
            reports = try GradientCheck.run(configuration, seed: seed)
        } catch {
            throw ValidationError(error.description)
        }
        let variants = [bidirectional ? "bidirectional" : nil, proj > 0 ? "proj=\(proj)" : nil, layerNorm ? "layer-norm" : nil,
                        peepholes ? "peepholes" : nil, cellClip > 0 ? "cell-clip=\(cellClip)" : nil,
                        lengths.map { "lengths=\($0)" }, dropout > 0 ? "dropout=\(dropout)" : nil,
                        recurrentDropout > 0 ? "recurrent-dropout=\(recurrentDropout)" : nil].compactMap { $0 }
        print("gradient check: L=\(layers) I=\(input) H=\(hidden) B=\(batch) T=\(steps) gate=\(gate.rawValue) cell=\(cell.rawValue) final-state-gradient=\(!noFinalGradient) seed=\(seed)" + variants.map { " " + $0 }.joined())
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
