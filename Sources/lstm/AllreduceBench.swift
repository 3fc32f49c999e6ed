import Foundation
import LSTMKit

/// `lstm bench --allreduce`: what the per-step gradient reduction of data-parallel training costs, beside what a
/// step computes. Under `mpirun -np P` it times `ProcessGroup.reduceInShardOrder` (S = P shards of the model's
/// gradient) across the processes; alone it times one training step of each model and projects the reduction
/// onto N machines (a ring: 2(N−1)/N × gradient bytes / bandwidth + latency × 2(N−1) messages).
extension BenchCommand {
    struct ReductionModel {
        var name: String
        var describe: String
        var make: (Int) throws -> (model: SequenceModel<Float>, step: () throws -> Void)
    }

    static var reductionModels: [ReductionModel] { [
        ReductionModel(name: "character", describe: "lstm train's default model: embedding 64, 2×LSTM(256), vocabulary 144, batch 32 × seq 64") { threads in
            var random = RandomSource(seed: 1)
            let tokens = (0..<100_000).map { _ in Int32(random.index(below: 144)) }
            let source = try TokenStreams(tokens: tokens[...], validation: [], batch: 32, steps: 64)
            let model = try SequenceModel<Float>(input: .tokens(vocabularySize: 144, embedding: 64),
                                                 lstm: LSTMConfiguration(hiddenSize: 256, layers: 2),
                                                 head: .everyStep(outputs: 144), loss: .crossEntropy)
            model.threads = threads
            let trainer = try Trainer(model: model, source: source, options: TrainerOptions(learningRate: 2e-3))
            return (model, { try trainer.trainStep() })
        },
        feature("small", I: 64, H: 128, layers: 1, B: 32, T: 50),
        feature("charrnn", I: 65, H: 512, layers: 2, B: 64, T: 100),
        feature("large", I: 512, H: 1024, layers: 1, B: 64, T: 100),
        feature("bidir", I: 64, H: 256, layers: 1, B: 64, T: 100, bidirectional: true),
    ] }

    /// A bench configuration (DESIGN.md §4) as a model: I features, the LSTM, a Linear head back to I, MSE.
    static func feature(_ name: String, I: Int, H: Int, layers: Int, B: Int, T: Int, bidirectional: Bool = false) -> ReductionModel {
        ReductionModel(name: name, describe: "the \(name) configuration: I = \(I), \(layers)×LSTM(\(H))\(bidirectional ? " bidirectional" : ""), Linear head, B = \(B), T = \(T)") { threads in
            var random = RandomSource(seed: 1)
            let examples = (0..<B).map { _ in
                SequenceDataset.Example(input: .features((0..<T).map { _ in (0..<I).map { _ in Float(random.uniform(-1, 1)) } }),
                                        target: .values((0..<(T * I)).map { _ in Float(random.uniform(-1, 1)) }))
            }
            let data = try SequenceDataset(examples, batch: B, targetsPerStep: true)
            let model = try SequenceModel<Float>(input: .features(I),
                                                 lstm: LSTMConfiguration(hiddenSize: H, layers: layers, bidirectional: bidirectional),
                                                 head: .everyStep(outputs: I), loss: .meanSquaredError)
            model.threads = threads
            let trainer = try Trainer(model: model, source: data, options: TrainerOptions(learningRate: 1e-3))
            return (model, { try trainer.trainStep() })
        }
    }

    func allreduceBench(latency: Double) throws {
        let group = try processGroup()
        func median(_ times: [Double]) -> Double { let s = times.sorted(); return s[s.count / 2] }
        if group.size == 1 {
            say("per-step gradient reduction against a step's compute (one process, \(threads) thread\(threads == 1 ? "" : "s"), medians of \(repeats));")
            say("projection: ring all-reduce, 2(N−1)/N × gradient bytes / bandwidth + \(format(latency, 0)) µs × 2(N−1) messages")
        } else {
            say("per-step gradient reduction over \(group.size) processes (\(group.library ?? "MPI")), \(group.size) shards, fixed order; medians of \(repeats)")
        }
        for m in Self.reductionModels {
            let (model, step) = try m.make(threads)
            let N = model.layout.count, bytes = Double(N * 4)
            var random = RandomSource(seed: UInt64(group.rank + 1))
            let gradient = (0..<N).map { _ in Float(random.uniform(-1, 1)) }
            if group.size > 1 {
                var times: [Double] = []
                for r in 0...repeats {
                    let started = DispatchTime.now().uptimeNanoseconds
                    _ = try group.reduceInShardOrder([gradient], shards: group.size)
                    let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                    if r > 0 { times.append(ms) }
                }
                // Every process's own median; the slowest is the step's.
                let all = try group.allGather(withUnsafeBytes(of: median(times)) { Array($0) })
                let slowest = all.map { $0.withUnsafeBytes { $0.load(as: Double.self) } }.max() ?? 0
                let moved = 2 * Double(group.size - 1) / Double(group.size) * bytes
                say("\(m.name): \(N) parameters (\(format(bytes / 1e6, 2)) MB of gradient): \(format(slowest, 3)) ms per step, \(format(moved / slowest / 1e6, 2)) GB/s per process")
                if json {
                    let object: [String: Any] = ["model": m.name, "parameters": N, "processes": group.size, "reduce_ms": slowest]
                    say(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                }
                continue
            }
            try step()   // warm-up
            var times: [Double] = []
            for _ in 0..<repeats {
                let started = DispatchTime.now().uptimeNanoseconds
                try step()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
            }
            let compute = median(times)
            say("\(m.name) (\(m.describe)): \(N) parameters, \(format(bytes / 1e6, 2)) MB of gradient; compute \(format(compute, 1)) ms per step")
            var projections: [String: Double] = [:]
            for machines in [8, 64] {
                for gbps in [10.0, 100.0] {
                    let seconds = 2 * Double(machines - 1) / Double(machines) * bytes / (gbps * 1e9 / 8)
                        + latency * 1e-6 * 2 * Double(machines - 1)
                    let ms = seconds * 1e3
                    projections["\(machines)x\(Int(gbps))"] = ms
                    say("  \(machines) machines at \(Int(gbps)) Gb/s: reduction \(format(ms, 2)) ms per step = \(format(100 * ms / compute, 1)) % of the compute")
                }
            }
            if json {
                let object: [String: Any] = ["model": m.name, "parameters": N, "compute_ms": compute, "projected_ms": projections]
                say(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            }
        }
    }
}
