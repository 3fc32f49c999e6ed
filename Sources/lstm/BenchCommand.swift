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
    /// Variable lengths, uniform in [T/2, T] (the same formula as Scripts/bench_torch.py, so both see one batch).
    var variableLengths = false
    /// Bidirectional layers (the head reads both directions, 2H → I).
    var bidirectional = false

    /// lengths[b] = T/2 + (b·7919 mod (T/2 + 1)): spread over [T/2, T], unsorted.
    var lengths: [Int] { (0..<batch).map { steps / 2 + ($0 * 7919) % (steps / 2 + 1) } }

    static let all: [BenchConfiguration] = [
        .init(name: "small", input: 64, hidden: 128, layers: 1, batch: 32, steps: 50, streaming: false),
        .init(name: "charrnn", input: 65, hidden: 512, layers: 2, batch: 64, steps: 100, streaming: false),
        .init(name: "large", input: 512, hidden: 1024, layers: 1, batch: 64, steps: 100, streaming: false),
        .init(name: "stream-128", input: 65, hidden: 128, layers: 1, batch: 1, steps: 1, streaming: true),
        .init(name: "stream-512x2", input: 65, hidden: 512, layers: 2, batch: 1, steps: 1, streaming: true),
        .init(name: "stream-1024", input: 65, hidden: 1024, layers: 1, batch: 1, steps: 1, streaming: true),
        .init(name: "packed", input: 64, hidden: 256, layers: 1, batch: 64, steps: 100, streaming: false,
              variableLengths: true),
        .init(name: "bidir", input: 64, hidden: 256, layers: 1, batch: 64, steps: 100, streaming: false,
              bidirectional: true),
        // A few sequences at once (a server's small batch): not in the default list.
        .init(name: "batch4", input: 65, hidden: 512, layers: 1, batch: 4, steps: 100, streaming: false),
        // Memory-lean BPTT against the full stash (BenchCommand.lean); not in the default list (about a minute).
        .init(name: "lean", input: 64, hidden: 256, layers: 1, batch: 1, steps: 100_000, streaming: false),
    ]

    /// Multiply-adds ×2 per token: 8·H·(I_l + H) forward per layer, 3× that for a training step.
    var forwardFLOPsPerToken: Double {
        let D = bidirectional ? 2 : 1
        return (0..<layers).reduce(0.0) { sum, l in
            sum + Double(D) * 8 * Double(hidden) * Double((l == 0 ? input : D * hidden) + hidden)
        }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps and inference on the standard configurations (DESIGN.md §4).",
        discussion: """
        A training step is forward + backward + Adam update of an LSTM with a Linear head (H → I) and MSE loss \
        against random targets (x is data, so its δ is not computed: LSTM.backward's inputGradient: false); \
        inference is the LSTM forward pass; streaming configurations time one step of batch 1 with the state \
        carried. Reports medians, tokens/s, GFLOP/s (24·H·(I+H) per token per layer for training, the full step's \
        count with δx, 8·H·(I+H) for inference) and the percentage of this machine's FMA peak, measured in the same \
        run.
        """
    )

    @Flag(help: "Print one JSON object per configuration.") var json = false
    @OptionGroup var runtime: ThreadOptions
    var threads: Int { runtime.threads }
    @Option(help: "Comma-separated configurations: small, charrnn, large, stream-128, stream-512x2, stream-1024, packed (variable lengths uniform in [T/2, T]), bidir (bidirectional); not by default: batch4 (B = 4, H = 512), lean (memory-lean BPTT, T = 100,000).")
    var configs = "small,charrnn,large,stream-128,stream-512x2,stream-1024,packed,bidir"
    @Option(help: "Timed repetitions after one warm-up (the median is reported).") var repeats = 5
    @Option(help: "Timed steps for streaming configurations.") var streamSteps = 200
    @Flag(help: "Instead of whole steps, time each matrix product of a training step alone, on 1 thread and on --threads (the isolated rates the per-step products reach; compare with the whole-step GFLOP/s).")
    var products = false
    @Option(help: "Memory-lean BPTT: the checkpoint interval for the 'lean' configuration (default √T).")
    var checkpointInterval: Int?
    @Option(help: .hidden) var leanChild: Int?
    @Option(name: .customLong("inference"), help: "The inference pass timed: 'infer' (LSTM.infer, the stash-free pass SequenceModel.predict runs) or 'forward' (LSTM.forward in windows of --inference-window steps, writing the training stash).")
    var inferencePath = "infer"
    @Option(help: "With --inference forward: windows of this many steps (0: the whole sequence at once, keeping every step's activations).")
    var inferenceWindow = 32
    @Flag(help: "Time the per-step gradient reduction of data-parallel training (run under mpirun -np N) or, alone, a step's compute beside the reduction projected onto 8 and 64 machines.")
    var allreduce = false
    @Option(help: "With --allreduce alone: the network latency per message of the projection, in µs.")
    var latencyMicroseconds = 25.0

    func run() throws {
        try reportingFailures {
            guard repeats >= 1, streamSteps >= 1 else { throw Failure(message: "--repeats and --stream-steps must be at least 1") }
            guard ["infer", "forward"].contains(inferencePath) else {
                throw Failure(message: "--inference must be 'infer' or 'forward', got '\(inferencePath)'")
            }
            var chosen: [BenchConfiguration] = []
            for name in configs.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                guard let c = BenchConfiguration.all.first(where: { $0.name == name }) else {
                    throw Failure(message: "unknown configuration '\(name)'; use \(BenchConfiguration.all.map(\.name).joined(separator: ", "))")
                }
                chosen.append(c)
            }
            if allreduce { return try allreduceBench(latency: latencyMicroseconds) }
            if let leanChild {
                // One side of the 'lean' configuration, in its own process so that its peak RSS is its own.
                let data = try JSONSerialization.data(withJSONObject: leanRun(interval: leanChild), options: [.sortedKeys])
                say(String(decoding: data, as: UTF8.self))
                return
            }
            let peak = measurePeak(threads: threads)
            if !json {
                say("LSTMKit bench: \(threads) thread\(threads == 1 ? "" : "s"), Float kernel \(GEMM.floatKernel), FMA peak \(format(peak, 1)) GFLOP/s (measured), medians of \(repeats)")
            }
            if products {
                for c in chosen where !c.streaming { productRates(c) }
                return
            }
            for c in chosen {
                let result = c.name == "lean" ? try lean(c) : c.streaming ? streaming(c, peak: peak) : batched(c, peak: peak)
                if json {
                    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
                    say(String(decoding: data, as: UTF8.self))
                } else {
                    say(describe(result))
                }
            }
        }
    }

    /// The products of one layer's training step (first layer's input size), each timed alone (best of
    /// `repeats` after a warm-up) on 1 thread and on `threads`. δZ·W_ih is δ of the layer's input: a step on data
    /// skips it for the first layer (`inputGradient: false`), the layers above run it.
    private func productRates(_ c: BenchConfiguration) {
        let (T, B, I, H) = (c.steps, c.batch, c.input, c.hidden)
        var random = RandomSource(seed: 1)
        func matrix(_ n: Int) -> [Float] { (0..<n).map { _ in Float(random.uniform(-1, 1)) } }
        let x = matrix(T * B * I), h = matrix(T * B * H), dZ = matrix(T * B * 4 * H)
        let wih = matrix(4 * H * I), whh = matrix(4 * H * H)
        var out = [Float](repeating: 0, count: max(T * B * 4 * H, 4 * H * max(I, H)))
        let forwardBuffer = AlignedBuffer<Float>(), backwardBuffer = AlignedBuffer<Float>()
        typealias Product = (name: String, flops: Double, run: (Int) -> Void)
        var list: [Product] = []
        whh.withUnsafeBufferPointer { w in
            let forwardW = GEMM.prepare(transposeB: true, K: H, N: 4 * H, w.baseAddress!, ldb: H, buffer: forwardBuffer)
            let backwardW = GEMM.prepare(transposeB: false, K: 4 * H, N: H, w.baseAddress!, ldb: H, buffer: backwardBuffer)
            list = [
                ("per step  h·W_hhᵀ    \(B)×\(4 * H)×\(H)", 2.0 * Double(B * 4 * H * H), { threads in
                    GEMM.gemm(transposeA: false, M: B, h, lda: H, forwardW, &out, ldc: 4 * H, accumulate: true, threads: threads)
                }),
                ("per step  δZ·W_hh    \(B)×\(H)×\(4 * H)", 2.0 * Double(B * 4 * H * H), { threads in
                    GEMM.gemm(transposeA: false, M: B, dZ, lda: 4 * H, backwardW, &out, ldc: H, accumulate: false, threads: threads)
                }),
                ("batched   X·W_ihᵀ    \(T * B)×\(4 * H)×\(I)", 2.0 * Double(T * B * 4 * H * I), { threads in
                    GEMM.gemm(transposeA: false, transposeB: true, M: T * B, N: 4 * H, K: I, x, lda: I, wih, ldb: I, &out,
                              ldc: 4 * H, accumulate: false, threads: threads)
                }),
                ("batched   δZᵀ·H      \(4 * H)×\(H)×\(T * B)", 2.0 * Double(T * B * 4 * H * H), { threads in
                    GEMM.gemm(transposeA: true, transposeB: false, M: 4 * H, N: H, K: T * B, dZ, lda: 4 * H, h, ldb: H,
                              &out, ldc: H, accumulate: true, threads: threads)
                }),
                ("batched   δZ·W_ih    \(T * B)×\(I)×\(4 * H)", 2.0 * Double(T * B * 4 * H * I), { threads in
                    GEMM.gemm(transposeA: false, transposeB: false, M: T * B, N: I, K: 4 * H, dZ, lda: 4 * H, wih, ldb: I,
                              &out, ldc: I, accumulate: false, threads: threads)
                }),
            ]
            say("\(c.name): each product alone, GFLOP/s (best of \(repeats)), 1 thread | \(threads) threads")
            for p in list {
                var rates: [Double] = []
                for t in [1, threads] {
                    p.run(t)
                    var best = Double.infinity
                    for _ in 0..<repeats {
                        let start = now()
                        p.run(t)
                        best = min(best, now() - start)
                    }
                    rates.append(p.flops / best / 1e9)
                }
                say("  \(p.name.padding(toLength: 36, withPad: " ", startingAt: 0))  \(format(rates[0], 1)) | \(format(rates[1], 1))")
            }
        }
    }

    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    private func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// GFLOP/s of the FMA loop on `threads` cores at once.
    /// GFLOP/s of the FMA loop on `threads` cores at once: the best of 7 tries of about 0.2 s each, every thread on
    /// the persistent worker pool (started together, unlike a dispatch queue's, whose second thread may start when
    /// the first is done and halve the figure), total FLOPs over the time from the first start to the last end.
    private func measurePeak(threads: Int) -> Double {
        let pool = WorkerPool.shared(threads: threads)
        // Calibrate: iterations for ~0.2 s on one thread.
        var iterations = 1_000_000
        while true {
            let start = now()
            _ = GEMM.fmaPeakRun(iterations: iterations)
            let seconds = now() - start
            if seconds > 0.05 || iterations > 1 << 30 {
                iterations = max(1, Int(Double(iterations) * 0.2 / max(seconds, 1e-6)))
                break
            }
            iterations *= 4
        }
        var best = 0.0
        // One slot per thread in raw memory: concurrent writes to a Swift array's elements are an exclusivity
        // violation (ThreadSanitizer flagged it).
        let flops = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        defer { flops.deallocate() }
        nonisolated(unsafe) let slots = flops
        for _ in 0..<7 {
            flops.initialize(repeating: 0)
            let start = now()
            pool.run(parts: threads) { t in slots[t] = GEMM.fmaPeakRun(iterations: iterations) }
            best = max(best, flops.reduce(0, +) / (now() - start) / 1e9)
        }
        return best
    }

    /// A training step and the forward pass on `c`; with variable lengths the head and the loss see the real
    /// tokens only (gathered from the padded output, as a user of PyTorch's PackedSequence applies the head to
    /// `output.data`), and the same batch with every row at full length is timed too (`dense_*`).
    private func batched(_ c: BenchConfiguration, peak: Double) -> [String: Any] {
        let (T, B, I, H) = (c.steps, c.batch, c.input, c.hidden)
        var layout = ParameterLayout()
        let lstm = try! LSTM(inputSize: I, hiddenSize: H, layers: c.layers, bidirectional: c.bidirectional,
                             layout: &layout, prefix: "lstm.")
        let W = lstm.outputWidth
        let head = try! Linear(inputSize: W, outputSize: I, layout: &layout, prefix: "head.")
        var random = RandomSource(seed: 1)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        head.initialize(&parameters, random: &random)
        var gradients = ParameterBuffer<Float>(layout: layout)
        var optimizer = Optimizer<Float>(.adam(), parameterCount: layout.count)
        let x = (0..<(T * B * I)).map { _ in Float(random.uniform(-1, 1)) }
        let stash = LSTMStash<Float>(threads: threads)

        func measure(lengths: [Int]?) -> (train: Double, infer: Double, tokens: Int, trainBytes: Int, inferBytes: Int) {
            // The real (t, b) rows of the padded (T, B, ·) output, in time-major order.
            let real = (0..<(T * B)).filter { lengths == nil || $0 / B < lengths![$0 % B] }
            let N = real.count
            var targetRandom = RandomSource(seed: 2)
            let target = (0..<(N * I)).map { _ in Float(targetRandom.uniform(-1, 1)) }
            var gathered = [Float](repeating: 0, count: N * W)
            var dPadded = [Float](repeating: 0, count: T * B * W)
            func trainingStep() {
                let h = lstm.forward(x, steps: T, batch: B, lengths: lengths, parameters: parameters, stash: stash).output
                let rows: [Float]
                if lengths == nil { rows = h } else {
                    for (k, r) in real.enumerated() { for j in 0..<W { gathered[k * W + j] = h[r * W + j] } }
                    rows = gathered
                }
                let y = head.forward(rows, rows: N, parameters: parameters, threads: threads)
                let (_, dy) = MeanSquaredError.forwardBackward(prediction: y, target: target)
                gradients.zero()
                let dRows = head.backward(dOutput: dy, input: rows, rows: N, parameters: parameters,
                                          gradients: &gradients, threads: threads)
                let dh: [Float]
                if lengths == nil { dh = dRows } else {
                    for (k, r) in real.enumerated() { for j in 0..<W { dPadded[r * W + j] = dRows[k * W + j] } }
                    dh = dPadded
                }
                // x is data: its δ is not needed (oneDNN computes it whether or not x requires a gradient).
                _ = lstm.backward(dOutput: dh, parameters: parameters, stash: stash, gradients: &gradients,
                                  inputGradient: false)
                optimizer.step(&parameters, gradients: gradients, learningRate: 1e-3, threads: threads)
            }
            let windowed = inferenceWindow > 0 && !c.bidirectional ? try! lstm.withCheckpointInterval(inferenceWindow) : lstm
            let inferenceStash = LSTMStash<Float>(threads: threads)
            func inference() {
                if inferencePath == "infer" {
                    _ = lstm.infer(x, steps: T, batch: B, lengths: lengths, parameters: parameters, stash: inferenceStash)
                } else {
                    _ = windowed.forward(x, steps: T, batch: B, lengths: lengths, parameters: parameters, stash: inferenceStash)
                }
            }
            func time(_ body: () -> Void) -> Double {
                body()
                return median((0..<repeats).map { _ in let s = now(); body(); return now() - s })
            }
            return (time(trainingStep), time(inference), N, stash.allocatedBytes, inferenceStash.allocatedBytes)
        }
        let run = measure(lengths: c.variableLengths ? c.lengths : nil)
        let tokens = Double(run.tokens)
        let trainFLOPs = 3 * c.forwardFLOPsPerToken * tokens, inferFLOPs = c.forwardFLOPsPerToken * tokens
        var result: [String: Any] = [
            "config": c.name, "threads": threads, "kernel": GEMM.floatKernel, "peak_gflops": peak,
            "train_ms": run.train * 1e3, "train_tokens_per_s": tokens / run.train,
            "train_gflops": trainFLOPs / run.train / 1e9, "train_peak_percent": 100 * trainFLOPs / run.train / 1e9 / peak,
            "infer_ms": run.infer * 1e3, "infer_tokens_per_s": tokens / run.infer,
            "infer_gflops": inferFLOPs / run.infer / 1e9, "infer_peak_percent": 100 * inferFLOPs / run.infer / 1e9 / peak,
            "train_stash_bytes": run.trainBytes, "infer_stash_bytes": run.inferBytes]
        if c.variableLengths {
            // The same batch padded to T everywhere: the time the padding would cost.
            let dense = measure(lengths: nil)
            result["real_tokens"] = run.tokens
            result["padded_tokens"] = T * B
            result["dense_train_ms"] = dense.train * 1e3
            result["dense_infer_ms"] = dense.infer * 1e3
        }
        return result
    }

    /// Memory-lean BPTT: one forward + backward of the 'lean' configuration (T = 100,000, H = 256, B = 1) with the
    /// full stash and with a checkpoint every k steps, each in a child process of its own (`--lean-child`), which
    /// reports its median time, its peak resident memory (getrusage) and the stash's bytes; the gradients' hash
    /// shows they are bitwise the same.
    private func lean(_ c: BenchConfiguration) throws -> [String: Any] {
        let k = checkpointInterval ?? Int(Double(c.steps).squareRoot().rounded())
        func child(_ interval: Int) throws -> [String: Any] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            if !FileManager.default.fileExists(atPath: "/proc/self/exe") {
                process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            }
            process.arguments = ["bench", "--lean-child", "\(interval)", "--threads", "\(threads)", "--repeats", "\(repeats)"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0,
                  let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw Failure(message: "the lean benchmark's child process failed (status \(process.terminationStatus))")
            }
            return object
        }
        let full = try child(0), leanRun = try child(k)
        func number(_ r: [String: Any], _ key: String) -> Double { (r[key] as? NSNumber)?.doubleValue ?? 0 }
        return ["config": c.name, "threads": threads, "kernel": GEMM.floatKernel, "steps": c.steps, "hidden": c.hidden,
                "batch": c.batch, "input": c.input, "checkpoint_interval": k,
                "full_ms": number(full, "ms"), "lean_ms": number(leanRun, "ms"),
                "full_forward_ms": number(full, "forward_ms"), "lean_forward_ms": number(leanRun, "forward_ms"),
                "time_ratio": number(leanRun, "ms") / number(full, "ms"),
                "full_peak_rss_mb": number(full, "peak_rss_mb"), "lean_peak_rss_mb": number(leanRun, "peak_rss_mb"),
                "full_stash_mb": number(full, "stash_mb"), "lean_stash_mb": number(leanRun, "stash_mb"),
                "stash_ratio": number(leanRun, "stash_mb") / number(full, "stash_mb"),
                "rss_ratio": number(leanRun, "peak_rss_mb") / number(full, "peak_rss_mb"),
                "inputs_outputs_mb": number(full, "arrays_mb"),
                "gradients_bitwise_equal": (full["gradient_hash"] as? String) == (leanRun["gradient_hash"] as? String)]
    }

    /// The child side of `lean`: forward + backward with the given checkpoint interval (0: full stash).
    private func leanRun(interval: Int) throws -> [String: Any] {
        let c = BenchConfiguration.all.first { $0.name == "lean" }!
        let (T, B, I, H) = (c.steps, c.batch, c.input, c.hidden)
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: I, hiddenSize: H, layers: c.layers, checkpointInterval: interval, layout: &layout)
        var random = RandomSource(seed: 1)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let x = (0..<(T * B * I)).map { _ in Float(random.uniform(-1, 1)) }
        let dOutput = (0..<(T * B * H)).map { _ in Float(random.uniform(-1, 1)) }
        let stash = LSTMStash<Float>(threads: threads)
        var gradients = ParameterBuffer<Float>(layout: layout)
        var times: [Double] = [], forwardTimes: [Double] = []
        for _ in 0..<repeats {
            gradients.zero()
            let start = now()
            _ = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: stash)
            forwardTimes.append(now() - start)
            _ = lstm.backward(dOutput: dOutput, parameters: parameters, stash: stash, gradients: &gradients,
                              inputGradient: false)
            times.append(now() - start)
        }
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMB = Double(usage.ru_maxrss) / 1024              // kilobytes on Linux
        #else
        getrusage(RUSAGE_SELF, &usage)
        let peakMB = Double(usage.ru_maxrss) / 1024 / 1024       // bytes on macOS
        #endif
        // FNV-1a over the gradients' bits.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in gradients.storage { hash = (hash ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        return ["interval": interval, "ms": median(times) * 1e3, "forward_ms": median(forwardTimes) * 1e3, "peak_rss_mb": peakMB,
                "stash_mb": Double(stash.allocatedBytes) / 1e6, "gradient_hash": String(hash, radix: 16),
                // x, the output, δoutput and δx the caller holds in both runs.
                "arrays_mb": Double((2 * I + 2 * H) * T * B * 4) / 1e6]
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
        if r["lean_ms"] != nil {
            return "\(name) T=\(r["steps"]!) H=\(r["hidden"]!) B=\(r["batch"]!) I=\(r["input"]!), forward + backward: full stash \(f("full_ms", 0)) ms, checkpoint every \(r["checkpoint_interval"]!) steps \(f("lean_ms", 0)) ms (\(f("time_ratio", 2))×)\n\(pad("", 13)) stash \(f("full_stash_mb", 1)) MB → \(f("lean_stash_mb", 1)) MB (\(format(100 * ((r["stash_ratio"] as? Double) ?? 0), 1)) %), peak RSS \(f("full_peak_rss_mb", 0)) MB → \(f("lean_peak_rss_mb", 0)) MB (both hold \(f("inputs_outputs_mb", 0)) MB of x, output, δoutput, δx), gradients bitwise equal: \(r["gradients_bitwise_equal"]!)"
        }
        if r["step_ms"] != nil {
            return "\(name) stream step \(f("step_ms", 4)) ms  \(f("tokens_per_s", 0)) tok/s  \(f("gflops", 2)) GFLOP/s  \(f("peak_percent", 1)) % of peak"
        }
        let dense = r["dense_train_ms"] == nil ? "" : "\n\(pad("", 13)) \(r["real_tokens"]!) real of \(r["padded_tokens"]!) padded tokens; all rows at full length: train \(f("dense_train_ms", 2)) ms, infer \(f("dense_infer_ms", 2)) ms"
        return "\(name) train \(f("train_ms", 2)) ms  \(f("train_tokens_per_s", 0)) tok/s  \(f("train_gflops", 1)) GFLOP/s  \(f("train_peak_percent", 1)) %   |  infer \(f("infer_ms", 2)) ms  \(f("infer_tokens_per_s", 0)) tok/s  \(f("infer_gflops", 1)) GFLOP/s  \(f("infer_peak_percent", 1)) %" + dense
    }
}
