import Foundation
import Testing
@testable import LSTMKit

/// `SequenceModel`: gradients of every head, loss and input against central differences in Double, shape errors,
/// and whole-model files.
struct SequenceModelTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var lstm: LSTMConfiguration
        var head: SequenceModelConfiguration.Head
        var loss: SequenceModelConfiguration.Loss
        var lengths: [Int]?
        var layout = SequenceLayout.timeMajor
        var initialState = true
        var description: String { name }
    }

    static let T = 5, B = 3, F = 2

    static let cases: [Case] = [
        Case(name: "last step, 1 layer, cross-entropy", lstm: .init(hiddenSize: 4), head: .lastStep(outputs: 3),
             loss: .crossEntropy, lengths: nil),
        Case(name: "last step, 2 layers, lengths, cross-entropy", lstm: .init(hiddenSize: 4, layers: 2),
             head: .lastStep(outputs: 3), loss: .crossEntropy, lengths: [2, 5, 3]),
        Case(name: "last step, 3 layers, lengths, batch-first, MSE", lstm: .init(hiddenSize: 3, layers: 3),
             head: .lastStep(outputs: 2), loss: .meanSquaredError, lengths: [4, 1, 5], layout: .batchFirst),
        Case(name: "last step, bidirectional, lengths, MSE", lstm: .init(hiddenSize: 4, bidirectional: true),
             head: .lastStep(outputs: 2), loss: .meanSquaredError, lengths: [5, 2, 4]),
        Case(name: "last step, 2 bidirectional projected layers, lengths, cross-entropy",
             lstm: .init(hiddenSize: 4, layers: 2, bidirectional: true, projectionSize: 2),
             head: .lastStep(outputs: 3), loss: .crossEntropy, lengths: [3, 5, 1]),
        Case(name: "last step, projection, quantiles", lstm: .init(hiddenSize: 5, layers: 2, projectionSize: 3),
             head: .lastStep(outputs: 2), loss: .quantile([0.1, 0.5, 0.9]), lengths: [5, 3, 4]),
        Case(name: "last step, bidirectional, quantiles, no initial state",
             lstm: .init(hiddenSize: 3, bidirectional: true),
             head: .lastStep(outputs: 1), loss: .quantile([0.25, 0.75]), lengths: nil, initialState: false),
        Case(name: "every step, 2 layers, lengths, quantiles", lstm: .init(hiddenSize: 4, layers: 2),
             head: .everyStep(outputs: 2), loss: .quantile([0.2, 0.5, 0.8]), lengths: [5, 2, 3]),
        Case(name: "every step, bidirectional, lengths, batch-first, MSE", lstm: .init(hiddenSize: 3, bidirectional: true),
             head: .everyStep(outputs: 2), loss: .meanSquaredError, lengths: [1, 4, 5], layout: .batchFirst),
        Case(name: "every step, projection, cross-entropy", lstm: .init(hiddenSize: 4, projectionSize: 2),
             head: .everyStep(outputs: 3), loss: .crossEntropy, lengths: [5, 4, 2]),
    ]

    /// A model, a batch, targets and (h0, c0) for one case, in Double.
    static func problem(_ c: Case, seed: UInt64 = 5) throws
        -> (SequenceModel<Double>, SequenceBatch<Double>, SequenceTargets<Double>, LSTMState<Double>?) {
        let model = try SequenceModel<Double>(input: .features(F), lstm: c.lstm, head: c.head, loss: c.loss, seed: seed)
        var random = RandomSource(seed: seed + 1)
        let x = (0..<(T * B * F)).map { _ in random.uniform(-1, 1) }
        let batch = try SequenceBatch(features: x, steps: T, batch: B, features: F, layout: c.layout, lengths: c.lengths)
        let rows: Int = if case .lastStep = c.head { B } else { T * B }
        let targets: SequenceTargets<Double>
        if case .crossEntropy = c.loss {
            targets = .classes((0..<rows).map { _ in Int32(random.index(below: c.head.outputs)) })
        } else {
            targets = .values((0..<(rows * c.head.outputs)).map { _ in random.uniform(-1, 1) })
        }
        var initial: LSTMState<Double>?
        if c.initialState {
            var state = model.zeroState(batch: B)
            for k in state.hidden.indices { state.hidden[k] = random.uniform(-0.5, 0.5) }
            for k in state.cell.indices { state.cell[k] = random.uniform(-0.5, 0.5) }
            initial = state
        }
        return (model, batch, targets, initial)
    }

    /// Fourth-order central difference of `f` at `v` (see `GradientCheck` for the error terms): ε = 1e-3, refined
    /// to 1e-4 where the 2- and 4-point estimates disagree.
    static func numerical(_ f: (Double) -> Double, at v: Double) -> Double {
        func estimate(_ e: Double) -> (Double, Double) {
            let p1 = f(v + e), m1 = f(v - e), p2 = f(v + 2 * e), m2 = f(v - 2 * e)
            return ((-p2 + 8 * p1 - 8 * m1 + m2) / (12 * e), (p1 - m1) / (2 * e))
        }
        let (four, two) = estimate(1e-3)
        if abs(four - two) > 1e-5 * max(abs(four), 1e-4) { return estimate(1e-4).0 }
        return four
    }

    /// |a − n| / max(|a|, |n|, 1e-4), or for components below 1e-4 the absolute error scaled to the same bar.
    static func error(_ a: Double, _ n: Double) -> Double {
        let scale = max(abs(a), abs(n))
        return scale < 1e-4 ? abs(a - n) / 1e-4 : abs(a - n) / scale
    }

    @Test("gradient check of the model: every tensor, x, h0, c0", arguments: cases)
    func gradientsMatchCentralDifferences(c: Case) throws {
        let (model, batch, targets, initial) = try Self.problem(c)
        model.zeroGradients()
        let analytic = try model.lossAndGradients(batch, targets: targets, initial: initial)
        let analyticParameters = model.gradients
        func loss(_ batch: SequenceBatch<Double>, _ initial: LSTMState<Double>?) -> Double {
            let r = try! model.evaluate(batch, targets: targets, initial: initial)
            return r.sum / Double(r.count)
        }
        #expect(abs(loss(batch, initial) - analytic.loss) <= 1e-12 * max(1, analytic.loss))
        for spec in model.layout.specs {
            var worst = 0.0
            for k in spec.range {
                let saved = model.parameters.storage[k]
                let n = Self.numerical({ v in model.parameters.storage[k] = v; return loss(batch, initial) }, at: saved)
                model.parameters.storage[k] = saved
                worst = max(worst, Self.error(analyticParameters.storage[k], n))
            }
            #expect(worst <= 1e-6, "\(c.name): \(spec.name) max error \(worst)")
        }
        guard case .features(let x) = batch.values else { Issue.record("features expected"); return }
        var worst = 0.0
        for k in x.indices {
            // Padding is never read: its gradient must be exactly zero.
            let n = Self.numerical({ v in
                var perturbed = x
                perturbed[k] = v
                return loss(try! SequenceBatch(features: perturbed, steps: batch.steps, batch: batch.batch,
                                               features: batch.features, layout: batch.layout, lengths: batch.lengths), initial)
            }, at: x[k])
            worst = max(worst, Self.error(analytic.input[k], n))
        }
        #expect(worst <= 1e-6, "\(c.name): x max error \(worst)")
        if let initial {
            for (name, path) in [("h0", \LSTMState<Double>.hidden), ("c0", \LSTMState<Double>.cell)] {
                var worst = 0.0
                for k in initial[keyPath: path].indices {
                    let n = Self.numerical({ v in
                        var s = initial
                        s[keyPath: path][k] = v
                        return loss(batch, s)
                    }, at: initial[keyPath: path][k])
                    worst = max(worst, Self.error(analytic.initial[keyPath: path][k], n))
                }
                #expect(worst <= 1e-6, "\(c.name): \(name) max error \(worst)")
            }
        }
    }

    /// `inputGradient: false` skips δ of the features and nothing else: the same parameter gradients and δ(h0, c0),
    /// bit for bit, an empty `input`; a token model still feeds its embedding (its table's gradient unchanged).
    @Test func withoutTheInputGradient() throws {
        let features = try SequenceModel<Float>(input: .features(3), lstm: .init(hiddenSize: 5, layers: 2),
                                                head: .everyStep(outputs: 2), loss: .meanSquaredError, seed: 4)
        let tokens = try SequenceModel<Float>(input: .tokens(vocabularySize: 5, embedding: 3),
                                              lstm: .init(hiddenSize: 5), head: .everyStep(outputs: 5),
                                              loss: .crossEntropy, seed: 4)
        var random = RandomSource(seed: 9)
        let x = (0..<(4 * 3 * 3)).map { _ in Float(random.uniform(-1, 1)) }
        let featureBatch = try SequenceBatch<Float>(features: x, steps: 4, batch: 3, features: 3, lengths: [4, 2, 3])
        let values = SequenceTargets<Float>.values((0..<(12 * 2)).map { _ in Float(random.uniform(-1, 1)) })
        let tokenBatch = try SequenceBatch<Float>(tokens: (0..<12).map { Int32($0 % 5) }, steps: 4, batch: 3)
        let classes = SequenceTargets<Float>.classes((0..<12).map { Int32(($0 * 3) % 5) })
        for (model, batch, targets) in [(features, featureBatch, values), (tokens, tokenBatch, classes)] {
            var runs: [(SequenceModel<Float>.Gradients, [Float])] = []
            for inputGradient in [true, false] {
                model.zeroGradients()
                let r = try model.lossAndGradients(batch, targets: targets, inputGradient: inputGradient)
                runs.append((r, model.gradients.storage))
            }
            #expect(runs[1].1 == runs[0].1 && runs[1].0.initial.hidden == runs[0].0.initial.hidden
                    && runs[1].0.initial.cell == runs[0].0.initial.cell && runs[1].0.loss == runs[0].0.loss)
            #expect(runs[1].0.input.isEmpty)
            if model === features { #expect(runs[0].0.input.count == x.count && runs[0].0.input.contains { $0 != 0 }) }
        }
    }

    /// Token input: the embedding's gradient (rows of repeated tokens add up) and every other tensor, batch-first
    /// with lengths, for both heads; padding holds out-of-vocabulary ids, which must never be read.
    @Test("gradient check of a token model", arguments: [SequenceModelConfiguration.Head.everyStep(outputs: 5), .lastStep(outputs: 3)])
    func tokenModelGradients(head: SequenceModelConfiguration.Head) throws {
        let model = try SequenceModel<Double>(input: .tokens(vocabularySize: 5, embedding: 3),
                                              lstm: .init(hiddenSize: 4, layers: 2, bidirectional: true), head: head,
                                              loss: .crossEntropy, seed: 8)
        let lengths = [4, 2, 3]
        var tokens: [Int32] = []
        for b in 0..<3 { for t in 0..<4 { tokens.append(t < lengths[b] ? Int32((b * 3 + t * 2) % 5) : 99) } }
        let batch = try SequenceBatch<Double>(tokens: tokens, steps: 4, batch: 3, layout: .batchFirst, lengths: lengths)
        let targets: SequenceTargets<Double>
        if case .everyStep = head {
            targets = .classes((0..<12).map { Int32(($0 * 7) % 5) })
        } else {
            targets = .classes([0, 2, 1])
        }
        model.zeroGradients()
        try model.lossAndGradients(batch, targets: targets)
        let analytic = model.gradients
        func loss() -> Double { let r = try! model.evaluate(batch, targets: targets); return r.sum / Double(r.count) }
        for spec in model.layout.specs {
            var worst = 0.0
            for k in spec.range {
                let saved = model.parameters.storage[k]
                let n = Self.numerical({ v in model.parameters.storage[k] = v; return loss() }, at: saved)
                model.parameters.storage[k] = saved
                worst = max(worst, Self.error(analytic.storage[k], n))
            }
            #expect(worst <= 1e-6, "\(spec.name) max error \(worst)")
        }
    }

    @Test func doubleModelsSaveAndLoad() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("double-\(UUID().uuidString).safetensors").path
        let model = try SequenceModel<Double>(input: .features(2), lstm: .init(hiddenSize: 3), head: .lastStep(outputs: 2),
                                              loss: .quantile([0.2, 0.8]), seed: 2)
        try model.save(to: path)
        #expect(try SafeTensors.read(path: path).tensors.allSatisfy { $0.tensor.dtype == .f64 })
        let loaded = try SequenceModel<Double>(contentsOf: path)
        #expect(loaded.parameters.storage == model.parameters.storage && loaded.configuration == model.configuration)
        let json = try #require(try SafeTensors.read(path: path).metadata["model"])
        #expect(json.contains("\"kind\":\"last_step\"") && json.contains("\"quantiles\":[0.2,0.8]"), "\(json)")
    }

    /// The last-step head reads each row's own last real step: a padded row predicts what it predicts alone.
    @Test func lastStepHeadIgnoresPadding() throws {
        let model = try SequenceModel<Float>(input: .features(1), lstm: .init(hiddenSize: 6, layers: 2, bidirectional: true),
                                             head: .lastStep(outputs: 2), loss: .crossEntropy, seed: 3)
        let rows: [[Float]] = [[0.5, -0.2, 0.9], [0.1], [0.3, 0.3]]
        let together = try model.predict(SequenceBatch(series: rows)).outputs
        for (b, row) in rows.enumerated() {
            let alone = try model.predict(SequenceBatch(series: [row])).outputs
            #expect(Array(together[(b * 2)..<(b * 2 + 2)]) == alone)
        }
    }

    @Test func wrongShapesAreReadableErrors() throws {
        let model = try SequenceModel<Float>(input: .features(2), lstm: .init(hiddenSize: 4, layers: 2),
                                             head: .lastStep(outputs: 3), loss: .crossEntropy)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return String(describing: error) }
        }
        #expect(message { _ = try SequenceBatch<Float>(features: [1, 2, 3], steps: 2, batch: 1, features: 2) }
                == "shape mismatch: SequenceBatch: got 3 values, expected steps × batch × features = 2 × 1 × 2 = 4")
        let oneFeature = try SequenceBatch<Float>(series: [[1, 2], [3]])
        #expect(message { _ = try model.predict(oneFeature) }
                == "shape mismatch: the batch has 1 features per step, expected 2 (the model's input)")
        let batch = try SequenceBatch<Float>(sequences: [[[1, 2], [3, 4]], [[5, 6]]])
        #expect(message { try model.lossAndGradients(batch, targets: .classes([0, 1, 2])) }
                == "shape mismatch: got 3 class targets, expected 2: one per row (batch 2)")
        #expect(message { try model.lossAndGradients(batch, targets: .classes([0, 3])) }
                == "shape mismatch: class target 3 at position 1 is outside 0..<3 (the head's outputs)")
        #expect(message { try model.lossAndGradients(batch, targets: .values([0, 1])) }
                == "shape mismatch: cross-entropy needs class targets (.classes), got values")
        #expect(message { _ = try SequenceBatch<Float>(series: [[1, .nan]]) }.contains("inputs must be finite"))
        #expect(message { _ = try model.predict(batch, initial: LSTMState(layers: 1, batch: 2, hiddenSize: 4)) }
                .contains("expected (layers·directions, batch, hidden) = (2, 2, 4)"))
    }

    @Test func saveAndLoadEveryTensor() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("seqmodel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("m.safetensors").path
        let model = try SequenceModel<Float>(input: .tokens(vocabularySize: 7, embedding: 3),
                                             lstm: .init(hiddenSize: 5, layers: 2, activations: [LSTMActivations(peepholes: true)],
                                                         projectionSize: 2),
                                             head: .everyStep(outputs: 7), loss: .crossEntropy, seed: 9)
        try model.save(to: path, metadata: ["note": "kept"])
        let loaded = try SequenceModel<Float>(contentsOf: path)
        #expect(loaded.configuration == model.configuration)
        #expect(loaded.parameters.storage == model.parameters.storage)
        let file = try SafeTensors.read(path: path)
        #expect(file.metadata["note"] == "kept")
        #expect(file.tensors.map(\.name).first == "embedding.weight" && file.tensors.map(\.name).last == "head.bias")
        let batch = try SequenceBatch<Float>(tokenSequences: [[1, 2, 3], [4, 5]])
        #expect(try loaded.predict(batch).outputs == model.predict(batch).outputs)

        func failure(_ edit: (inout SafeTensors.File) -> Void) -> String {
            var f = file
            edit(&f)
            do { _ = try SequenceModel<Float>(file: f, source: "m.safetensors"); return "loaded" } catch { return error.description }
        }
        #expect(failure { $0.tensors.removeAll { $0.name == "lstm.weight_hr_l1" } }
                == "m.safetensors has no tensor lstm.weight_hr_l1, which the model it describes needs")
        #expect(failure { f in
            let k = f.tensors.firstIndex { $0.name == "head.weight" }!
            f.tensors[k].tensor = SafeTensors.Tensor([Float](repeating: 0, count: 21), shape: [7, 3])
        } == "shape mismatch: m.safetensors: tensor head.weight has shape [7, 3], expected [7, 2]")
        #expect(failure { $0.tensors.append(("lstm.weight_ih_l2", SafeTensors.Tensor([Float(0)], shape: [1]))) }
                == "m.safetensors: tensor lstm.weight_ih_l2 does not belong to the model its metadata describes")
        #expect(failure { $0.metadata["format_version"] = "9" }.contains("newer than this LSTMKit understands"))
        #expect(failure { $0.metadata["model"] = "{" } == "m.safetensors has no readable model description (metadata key model)")
        // A small file claiming a huge model is refused before the claimed size is allocated.
        #expect(failure { f in
            var huge = model.configuration
            huge.lstm.hiddenSize = 1 << 40
            f.metadata["model"] = String(decoding: try! JSONEncoder().encode(huge), as: UTF8.self)
        } == "m.safetensors describes a model larger than the tensors it holds; the file is damaged")
    }
}
