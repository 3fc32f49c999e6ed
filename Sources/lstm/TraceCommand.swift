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
            case .text: text = trace.text(seed: random.seed)
            case .html: text = trace.html(seed: random.seed)
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
