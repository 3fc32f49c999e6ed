import ArgumentParser
import Dispatch
import Foundation
import LSTMKit

/// The standard benchmark configurations of DESIGN.md §4.
struct BenchConfiguration {
    var name: String
    var input: Int
    var hidden: Int
    var layers: Int
    var batch: Int
    var steps: Int
    var streaming: Bool

    static let all: [BenchConfiguration] = [
        .init(name: "small", input: 64, hidden: 128, layers: 1, batch: 32, steps: 50, streaming: false),
        .init(name: "charrnn", input: 65, hidden: 512, layers: 2, batch: 64, steps: 100, streaming: false),
        .init(name: "large", input: 512, hidden: 1024, layers: 1, batch: 64, steps: 100, streaming: false),
        .init(name: "stream-128", input: 65, hidden: 128, layers: 1, batch: 1, steps: 1, streaming: true),
        .init(name: "stream-512x2", input: 65, hidden: 512, layers: 2, batch: 1, steps: 1, streaming: true),
        .init(name: "stream-1024", input: 65, hidden: 1024, layers: 1, batch: 1, steps: 1, streaming: true),
    ]

    /// Multiply-adds ×2 per token: 8·H·(I_l + H) forward per layer, 3× that for a training step.
    var forwardFLOPsPerToken: Double {
        (0..<layers).reduce(0.0) { sum, l in sum + 8 * Double(hidden) * Double((l == 0 ? input : hidden) + hidden) }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps and inference on the standard configurations (DESIGN.md §4).",
        discussion: """
        A training step is forward + backward + Adam update of an LSTM with a Linear head (H → I) and MSE loss \
        against random targets; inference is the LSTM forward pass; streaming configurations time one step of \
        batch 1 with the state carried. Reports medians, tokens/s, GFLOP/s (24·H·(I+H) per token per layer for \
        training, 8·H·(I+H) for inference) and the percentage of this machine's FMA peak, measured in the same run.
        """
    )

    @Flag(help: "Print one JSON object per configuration.") var json = false
    @Option(help: "Threads (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Comma-separated configurations: small, charrnn, large, stream-128, stream-512x2, stream-1024.")
    var configs = "small,charrnn,large,stream-128,stream-512x2,stream-1024"
    @Option(help: "Timed repetitions after one warm-up (the median is reported).") var repeats = 5
    @Option(help: "Timed steps for streaming configurations.") var streamSteps = 200

    func run() throws {
        try reportingFailures {
            guard threads >= 1 else { throw Failure(message: "--threads must be at least 1, got \(threads)") }
            guard repeats >= 1, streamSteps >= 1 else { throw Failure(message: "--repeats and --stream-steps must be at least 1") }
            var chosen: [BenchConfiguration] = []
            for name in configs.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                guard let c = BenchConfiguration.all.first(where: { $0.name == name }) else {
                    throw Failure(message: "unknown configuration '\(name)'; use \(BenchConfiguration.all.map(\.name).joined(separator: ", "))")
                }
                chosen.append(c)
            }
            let peak = measurePeak(threads: threads)
            if !json {
                say("LSTMKit bench: \(threads) thread\(threads == 1 ? "" : "s"), Float kernel \(GEMM.floatKernel), FMA peak \(format(peak, 1)) GFLOP/s (measured), medians of \(repeats)")
            }
            for c in chosen {
                let result = c.streaming ? streaming(c, peak: peak) : batched(c, peak: peak)
                if json {
                    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
                    say(String(decoding: data, as: UTF8.self))
                } else {
                    say(describe(result))
                }
            }
        }
    }

    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    private func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// GFLOP/s of the FMA loop on `threads` cores at once.
    private func measurePeak(threads: Int) -> Double {
        let iterations = 20_000_000
        _ = GEMM.fmaPeakRun(iterations: iterations / 10)
        var best = 0.0
        for _ in 0..<3 {
            let start = now()
            nonisolated(unsafe) var flops = [Double](repeating: 0, count: threads)
            DispatchQueue.concurrentPerform(iterations: threads) { t in flops[t] = GEMM.fmaPeakRun(iterations: iterations) }
            best = max(best, flops.reduce(0, +) / (now() - start) / 1e9)
        }
        return best
    }

    private func batched(_ c: BenchConfiguration, peak: Double) -> [String: Any] {
        let (T, B, I, H) = (c.steps, c.batch, c.input, c.hidden)
        var layout = ParameterLayout()
        let lstm = try! LSTM(inputSize: I, hiddenSize: H, layers: c.layers, layout: &layout, prefix: "lstm.")
        let head = try! Linear(inputSize: H, outputSize: I, layout: &layout, prefix: "head.")
        var random = RandomSource(seed: 1)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        head.initialize(&parameters, random: &random)
        var gradients = ParameterBuffer<Float>(layout: layout)
        var optimizer = Optimizer<Float>(.adam(), parameterCount: layout.count)
        let x = (0..<(T * B * I)).map { _ in Float(random.uniform(-1, 1)) }
        let target = (0..<(T * B * I)).map { _ in Float(random.uniform(-1, 1)) }
        let stash = LSTMStash<Float>(threads: threads)

        func trainingStep() {
            let h = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: stash).output
            let y = head.forward(h, rows: T * B, parameters: parameters, threads: threads)
            let (_, dy) = MeanSquaredError.forwardBackward(prediction: y, target: target)
            gradients.zero()
            let dh = head.backward(dOutput: dy, input: h, rows: T * B, parameters: parameters, gradients: &gradients,
                                   threads: threads)
            _ = lstm.backward(dOutput: dh, parameters: parameters, stash: stash, gradients: &gradients)
            optimizer.step(&parameters, gradients: gradients, learningRate: 1e-3)
        }
        func inference() {
            _ = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: stash)
        }
        func time(_ body: () -> Void) -> Double {
            body()
            return median((0..<repeats).map { _ in let s = now(); body(); return now() - s })
        }
        let train = time(trainingStep)
        let infer = time(inference)
        let tokens = Double(T * B)
        let trainFLOPs = 3 * c.forwardFLOPsPerToken * tokens, inferFLOPs = c.forwardFLOPsPerToken * tokens
        return ["config": c.name, "threads": threads, "kernel": GEMM.floatKernel, "peak_gflops": peak,
                "train_ms": train * 1e3, "train_tokens_per_s": tokens / train, "train_gflops": trainFLOPs / train / 1e9,
                "train_peak_percent": 100 * trainFLOPs / train / 1e9 / peak,
                "infer_ms": infer * 1e3, "infer_tokens_per_s": tokens / infer, "infer_gflops": inferFLOPs / infer / 1e9,
                "infer_peak_percent": 100 * inferFLOPs / infer / 1e9 / peak]
    }

    private func streaming(_ c: BenchConfiguration, peak: Double) -> [String: Any] {
        var layout = ParameterLayout()
        let lstm = try! LSTM(inputSize: c.input, hiddenSize: c.hidden, layers: c.layers, layout: &layout)
        var random = RandomSource(seed: 1)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let x = (0..<c.input).map { _ in Float(random.uniform(-1, 1)) }
        let stream = LSTMStream(lstm: lstm, parameters: parameters, threads: threads)
        for _ in 0..<10 { _ = stream.step(x) }
        let times = (0..<streamSteps).map { _ in let s = now(); _ = stream.step(x); return now() - s }
        let step = median(times)
        let flops = c.forwardFLOPsPerToken
        return ["config": c.name, "threads": threads, "kernel": GEMM.floatKernel, "peak_gflops": peak,
                "step_ms": step * 1e3, "tokens_per_s": 1 / step, "gflops": flops / step / 1e9,
                "peak_percent": 100 * flops / step / 1e9 / peak]
    }

    private func describe(_ r: [String: Any]) -> String {
        func f(_ key: String, _ digits: Int) -> String { format((r[key] as? Double) ?? 0, digits) }
        let name = pad(r["config"] as! String, 13)
        if r["step_ms"] != nil {
            return "\(name) stream step \(f("step_ms", 4)) ms  \(f("tokens_per_s", 0)) tok/s  \(f("gflops", 2)) GFLOP/s  \(f("peak_percent", 1)) % of peak"
        }
        return "\(name) train \(f("train_ms", 2)) ms  \(f("train_tokens_per_s", 0)) tok/s  \(f("train_gflops", 1)) GFLOP/s  \(f("train_peak_percent", 1)) %   |  infer \(f("infer_ms", 2)) ms  \(f("infer_tokens_per_s", 0)) tok/s  \(f("infer_gflops", 1)) GFLOP/s  \(f("infer_peak_percent", 1)) %"
    }
}
