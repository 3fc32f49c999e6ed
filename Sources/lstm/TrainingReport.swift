import Foundation
import LSTMKit

/// What the user sees while training: a live progress line on a terminal, periodic log lines otherwise. (The
/// metrics file and the plot are the library's `TrainingLog`.)
final class TrainingReport {
    let totalSteps: Int
    let interactive: Bool
    let logEvery: Int
    private let started = Date()
    private let startStep: Int
    private var lastValidation: Double?
    private var smoothed: Double?

    init(totalSteps: Int, startStep: Int, logEvery: Int, lastValidation: Double?) {
        self.totalSteps = totalSteps
        self.startStep = startStep
        self.logEvery = logEvery
        self.lastValidation = lastValidation
        interactive = isatty(STDOUT_FILENO) == 1
    }

    func show(_ event: TrainingEvent) {
        switch event {
        case let .trained(step, loss, _, learningRate, tokensPerSecond):
            trained(step: step, loss: loss, learningRate: learningRate, tokensPerSecond: tokensPerSecond)
        case let .validated(step, loss, best):
            lastValidation = loss
            let message = "step \(step): validation loss \(format(loss, 4)) nats, \(format(loss / log(2.0), 4)) bits/char" + (best ? " (best so far)" : "")
            if interactive {
                FileHandle.standardOutput.write(Data("\r\u{1B}[K\(message)\n".utf8))
            } else {
                say(message)
            }
        case let .skipped(_, reason, skippedSoFar):
            note("non-finite value: \(reason); step skipped, the model is unchanged (\(skippedSoFar) skipped so far)")
        }
    }

    private func trained(step: Int, loss: Double, learningRate: Double, tokensPerSecond: Double) {
        smoothed = smoothed.map { 0.9 * $0 + 0.1 * loss } ?? loss
        if interactive {
            let fraction = Double(step) / Double(max(totalSteps, 1))
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let val = lastValidation.map { format($0, 3) } ?? "–"
            let line = "step \(step)/\(totalSteps) \(bar) \(Int(fraction * 100))%  loss \(format(smoothed ?? loss, 3))  val \(val)  \(format(tokensPerSecond / 1000, 1))k tok/s  ETA \(eta(step))"
            FileHandle.standardOutput.write(Data("\r\u{1B}[K\(line)".utf8))
        } else if step % logEvery == 0 || step == totalSteps {
            say("step \(step)/\(totalSteps)  train loss \(format(loss, 4))  \(Int(tokensPerSecond)) tok/s  lr \(learningRate)  ETA \(eta(step))")
        }
    }

    func note(_ message: String) {
        if interactive { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        say(message)
    }

    private func eta(_ step: Int) -> String {
        let done = step - startStep
        guard done > 0 else { return "–" }
        let seconds = Date().timeIntervalSince(started) / Double(done) * Double(totalSteps - step)
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : (s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s")
    }
}

/// Writes a line to standard output unbuffered, so progress, logs and samples appear in order.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func format(_ x: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", x)
}
