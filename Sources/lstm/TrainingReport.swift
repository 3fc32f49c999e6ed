import Foundation
import LSTMKit

/// What the user sees while training: a live progress line on a terminal, periodic log lines otherwise, a JSON-lines
/// metrics file and an SVG loss plot beside the checkpoint.
final class TrainingReport {
    struct Point { var step: Int; var value: Double }
    let paths: CheckpointPaths
    let totalSteps: Int
    let interactive: Bool
    let logEvery: Int
    var train: [Point] = []
    var validation: [Point] = []
    private var metrics: FileHandle?
    private let started = Date()
    private let startStep: Int
    private var lastValidation: Double?
    private var smoothed: Double?

    init(paths: CheckpointPaths, totalSteps: Int, startStep: Int, logEvery: Int, resuming: Bool) throws {
        self.paths = paths
        self.totalSteps = totalSteps
        self.startStep = startStep
        self.logEvery = logEvery
        interactive = isatty(STDOUT_FILENO) == 1
        // Keep the history up to the resumed step; lines written after it by an interrupted run are dropped.
        var kept = ""
        if resuming, let bytes = AtomicFile.read(path: paths.metrics) {
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = object["step"] as? Int, step <= startStep else { continue }
                kept += line + "\n"
                if let loss = object["train_loss"] as? Double { train.append(Point(step: step, value: loss)) }
                if let loss = object["val_loss"] as? Double {
                    validation.append(Point(step: step, value: loss))
                    lastValidation = loss
                }
            }
        }
        guard FileManager.default.createFile(atPath: paths.metrics, contents: Data(kept.utf8)),
              let handle = FileHandle(forWritingAtPath: paths.metrics) else {
            throw Failure(message: "cannot write the metrics file \(paths.metrics)")
        }
        handle.seekToEndOfFile()
        metrics = handle
    }

    deinit { try? metrics?.close() }

    func trained(step: Int, loss: Double, gradientNorm: Double, learningRate: Double, tokensPerSecond: Double) {
        smoothed = smoothed.map { 0.9 * $0 + 0.1 * loss } ?? loss
        write(["step": step, "train_loss": loss, "grad_norm": gradientNorm, "lr": learningRate,
               "tokens_per_second": tokensPerSecond.rounded()])
        train.append(Point(step: step, value: loss))
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

    func validated(step: Int, loss: Double, best: Bool) {
        lastValidation = loss
        validation.append(Point(step: step, value: loss))
        write(["step": step, "val_loss": loss, "val_bpc": loss / log(2.0)])
        let message = "step \(step): validation loss \(format(loss, 4)) nats, \(format(loss / log(2.0), 4)) bits/char" + (best ? " (best so far)" : "")
        if interactive {
            FileHandle.standardOutput.write(Data("\r\u{1B}[K\(message)\n".utf8))
        } else {
            say(message)
        }
        writePlot()
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

    private func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        metrics?.write(data + Data("\n".utf8))
    }

    /// Train and validation loss against step, as a standalone SVG a browser shows.
    func writePlot() {
        let width = 720.0, height = 420.0, left = 64.0, right = 16.0, top = 36.0, bottom = 48.0
        let all = train + validation
        guard let maxStep = all.map(\.step).max(), var high = all.map(\.value).max(), var low = all.map(\.value).min() else { return }
        if high - low < 1e-9 { high += 0.5; low -= 0.5 }
        low = max(0, low - 0.05 * (high - low))
        let x = { (s: Int) in left + (width - left - right) * Double(s) / Double(max(maxStep, 1)) }
        let y = { (v: Double) in top + (height - top - bottom) * (1 - (v - low) / (high - low)) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(width / 2))" y="20" text-anchor="middle" font-size="14">loss (nats per character) — \(xmlEscape(URL(fileURLWithPath: paths.checkpoint).lastPathComponent))</text>

        """
        for k in 0...4 {
            let v = low + (high - low) * Double(k) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(y(v))\" y2=\"\(y(v))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(format(v, 2))</text>\n"
            let s = Int(Double(maxStep) * Double(k) / 4)
            svg += "<text x=\"\(x(s))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(s)</text>\n"
        }
        svg += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height - 8))\" text-anchor=\"middle\">step</text>\n"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"none\" stroke=\"#888\"/>\n"
        func polyline(_ points: [Point], _ colour: String) -> String {
            let coordinates = points.map { "\(format(x($0.step), 1)),\(format(y($0.value), 1))" }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(coordinates)\"/>\n"
        }
        svg += polyline(train, "#1f77b4")
        svg += polyline(validation, "#d62728")
        for p in validation { svg += "<circle cx=\"\(format(x(p.step), 1))\" cy=\"\(format(y(p.value), 1))\" r=\"3\" fill=\"#d62728\"/>\n" }
        svg += "<rect x=\"\(width - right - 150)\" y=\"\(top + 8)\" width=\"140\" height=\"44\" fill=\"white\" stroke=\"#ccc\"/>\n"
        svg += "<line x1=\"\(width - right - 140)\" x2=\"\(width - right - 116)\" y1=\"\(top + 22)\" y2=\"\(top + 22)\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"\(width - right - 110)\" y=\"\(top + 26)\">train</text>\n"
        svg += "<line x1=\"\(width - right - 140)\" x2=\"\(width - right - 116)\" y1=\"\(top + 40)\" y2=\"\(top + 40)\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"\(width - right - 110)\" y=\"\(top + 44)\">validation</text>\n"
        svg += "</svg>\n"
        try? AtomicFile.write(Array(svg.utf8), to: paths.plot)
    }
}

/// Writes a line to standard output unbuffered, so progress, logs and samples appear in order.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func format(_ x: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", x)
}

func xmlEscape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
