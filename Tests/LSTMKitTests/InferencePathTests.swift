import Foundation
import Testing
@testable import LSTMKit

/// `predict` and `evaluate` run the stash-free pass (`LSTM.infer`): the same bits as the plain pass, a fraction of
/// its memory, and next to nothing more allocated by a model in training.
struct InferencePathTests {
    @Test(arguments: [false, true])
    func predictionsAreTheBitsOfThePlainPass(everyStep: Bool) throws {
        var random = RandomSource(seed: 12)
        let series = (0..<5).map { _ in (0..<(40 + random.index(below: 60))).map { _ in [Float(random.uniform(-1, 1)), Float(random.uniform(-1, 1))] } }
        let model = try SequenceModel<Float>(input: .features(2), lstm: LSTMConfiguration(hiddenSize: 7, layers: 2, projectionSize: 5),
                                             head: everyStep ? .everyStep(outputs: 3) : .lastStep(outputs: 3), loss: .meanSquaredError,
                                             seed: 3)
        let batch = try SequenceBatch(sequences: series)
        let fast = try model.predict(batch)
        // The plain pass, by hand: the whole sequence on a stash of its own.
        guard case .features(let x) = batch.values else { Issue.record("features expected"); return }
        let out = model.lstm.forward(x, steps: batch.steps, batch: batch.batch, lengths: batch.lengths, layout: batch.layout,
                                     parameters: model.parameters, stash: LSTMStash())
        #expect(fast.final.hidden == out.final.hidden && fast.final.cell == out.final.cell)
        if everyStep {
            let plain = model.head.forward(out.output, rows: batch.steps * batch.batch, parameters: model.parameters)
            #expect(fast.outputs == plain)
        }
    }

    @Test func inferenceKeepsAFractionOfTheTrainingStash() throws {
        var random = RandomSource(seed: 5)
        let series = (0..<8).map { _ in (0..<400).map { _ in Float(random.uniform(-1, 1)) } }
        func model() throws -> SequenceModel<Float> {
            try SequenceModel<Float>(input: .features(1), lstm: LSTMConfiguration(hiddenSize: 32),
                                     head: .lastStep(outputs: 1), loss: .meanSquaredError)
        }
        let batch = try SequenceBatch(series: series)
        let predicting = try model(), training = try model()
        let prediction = try predicting.predict(batch)
        let trained = try training.lossAndGradients(batch, targets: .values([Float](repeating: 0, count: 8)))
        #expect(prediction.final.hidden == trained.final.hidden)
        let trainingBytes = training.stashBytes
        _ = try training.predict(batch)
        // Only each row's final h is new: L·D × B × P values.
        #expect(training.stashBytes - trainingBytes < trainingBytes / 100,
                "validating in training allocated \(training.stashBytes - trainingBytes) bytes more")
        #expect(predicting.stashBytes * 4 < trainingBytes, "inference \(predicting.stashBytes) bytes, training \(trainingBytes)")
        print("T = 400, B = 8, H = 32: the training stash holds \(trainingBytes) bytes, a predicting model's \(predicting.stashBytes)")
    }

    /// `LSTM.infer` (no stash, the recurrent product and the element-wise pass fused) gives bitwise the outputs and
    /// final states of `forward`, for every structural variant it runs, on 1–3 threads and every kernel level —
    /// shapes with H not a multiple of 16, more rows than one 144-row block, B = 1, chunks cut mid-sequence.
    @Test(arguments: 0..<9)
    func inferIsTheBitsOfForward(variant: Int) throws {
        var random = RandomSource(seed: UInt64(100 + variant))
        let (I, T, B) = [(3, 7, 5), (5, 40, 3), (4, 9, 150), (2, 33, 1), (6, 12, 7), (3, 20, 16), (5, 11, 14), (4, 30, 6),
                         (3, 8, 13)][variant]
        let standard = LSTMActivations.standard
        let configurations = [
            LSTMConfiguration(inputSize: I, hiddenSize: 20),
            LSTMConfiguration(inputSize: I, hiddenSize: 16, layers: 3),
            LSTMConfiguration(inputSize: I, hiddenSize: 7, layers: 2),
            LSTMConfiguration(inputSize: I, hiddenSize: 37),
            LSTMConfiguration(inputSize: I, hiddenSize: 18, layers: 2, bidirectional: true),
            LSTMConfiguration(inputSize: I, hiddenSize: 24, layers: 2, projectionSize: 9),
            LSTMConfiguration(inputSize: I, hiddenSize: 12, activations: [LSTMActivations(gate: .hardSigmoid, cellClip: 0.5, peepholes: true)]),
            LSTMConfiguration(inputSize: I, hiddenSize: 33, layers: 2, activations: [standard, LSTMActivations(cell: .identity, peepholes: true)],
                              bidirectional: true, projectionSize: 10),
            LSTMConfiguration(inputSize: I, hiddenSize: 17, bidirectional: true),
        ]
        var layout = ParameterLayout()
        let lstm = try LSTM(configurations[variant], layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let x = (0..<(T * B * I)).map { _ in Float(random.uniform(-2, 2)) }
        // Variable lengths in the odd variants (a row of full length among them), an initial state in some.
        let lengths: [Int]? = variant % 2 == 1 ? (0..<B).map { $0 == B / 2 ? T : 1 + random.index(below: T) } : nil
        let U = lstm.stateCount, P = lstm.outputSize, H = lstm.hiddenSize
        let initial: LSTMState<Float>? = variant % 3 == 2 ? LSTMState(
            hidden: (0..<(U * B * P)).map { _ in Float(random.uniform(-1, 1)) },
            cell: (0..<(U * B * H)).map { _ in Float(random.uniform(-1, 1)) }, layers: U, batch: B, hiddenSize: P,
            cellSize: H) : nil
        let layout2: SequenceLayout = variant % 4 == 3 ? .batchFirst : .timeMajor
        let plain = lstm.forward(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: layout2,
                                 parameters: parameters, stash: LSTMStash())
        #expect(lstm.hasStashFreeInference(Float.self))
        // forward and backward themselves on more threads (a small W_hh splits a step by rows: product and
        // element-wise pass in one dispatch).
        let dy = (0..<plain.output.count).map { _ in Float(random.uniform(-1, 1)) }
        func gradients(_ stash: LSTMStash<Float>) -> ([Float], [Float]) {
            var g = ParameterBuffer<Float>(layout: layout)
            let dx = lstm.backward(dOutput: dy, parameters: parameters, stash: stash, gradients: &g)
            return (g.storage, dx.input)
        }
        let single = LSTMStash<Float>()
        _ = lstm.forward(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: layout2,
                         parameters: parameters, stash: single)
        let reference = gradients(single)
        for threads in [2, 3] {
            let stash = LSTMStash<Float>(threads: threads)
            let again = lstm.forward(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: layout2,
                                     parameters: parameters, stash: stash)
            #expect(again.output == plain.output && again.final == plain.final, "forward on \(threads) threads")
            let g = gradients(stash)
            #expect(g.0 == reference.0 && g.1 == reference.1, "backward on \(threads) threads")
        }
        for threads in [1, 2, 3] {
            let out = lstm.infer(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: layout2,
                                 parameters: parameters, stash: LSTMStash(threads: threads))
            #expect(out.output == plain.output, "threads \(threads): outputs")
            #expect(out.final == plain.final, "threads \(threads): final state")
        }
        // A unidirectional pass split by units (one dispatch per step) and by rows (each thread its rows through
        // every step of a chunk), whichever `splitsSequenceByRows` would pick.
        for threads in [2, 3] {
            for rowSplit in [false, true] {
                let out = lstm.inferFloat(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: layout2,
                                          parameters: parameters, stash: LSTMStash(threads: threads), level: -1,
                                          chunk: nil, rowSplit: rowSplit)
                #expect(out.output == plain.output && out.final == plain.final, "threads \(threads), rows split \(rowSplit)")
            }
        }
        for level in GEMM.floatKernelLevels {
            // Chunks of 1 and 3 steps: the state carried from chunk to chunk (and layer to layer, unidirectional).
            for chunk in [1, 3] {
                let out = lstm.inferFloat(x, steps: T, batch: B, lengths: lengths, initial: initial, layout: layout2,
                                          parameters: parameters, stash: LSTMStash(threads: 2), level: Int32(level),
                                          chunk: chunk, rowSplit: chunk == 3)
                #expect(out.output == plain.output && out.final == plain.final, "kernel level \(level), chunks of \(chunk)")
            }
        }
    }

    /// `inferFloat` (split by units, never by rows) gives `plain`'s outputs and final state on every kernel level,
    /// each thread count and each chunk length.
    static func expectInferOnEveryLevel(_ lstm: LSTM, _ x: [Float], steps T: Int, batch B: Int, lengths: [Int]?,
                                        initial: LSTMState<Float>?, parameters: ParameterBuffer<Float>,
                                        equals plain: LSTMOutput<Float>, threads: [Int], chunks: [Int],
                                        _ label: String) {
        for threads in threads {
            for level in GEMM.floatKernelLevels {
                for chunk in chunks {
                    let out = lstm.inferFloat(x, steps: T, batch: B, lengths: lengths, initial: initial,
                                              layout: .timeMajor, parameters: parameters,
                                              stash: LSTMStash(threads: threads), level: Int32(level), chunk: chunk,
                                              rowSplit: false)
                    #expect(out.output == plain.output && out.final == plain.final,
                            "\(label), \(threads) threads, level \(level), chunks of \(chunk)")
                }
            }
        }
    }

    /// The forward direction's chunks as one job whose threads wait for each other's blocks of h_{t−1}
    /// (`lstmk_lstm_step_pipelined`) give the bits of `forward`: unit groups split so that one KC block of K is
    /// shared by both threads (48 units: 1 + 2 groups) and so that K has two KC blocks (300 units, 19 groups: 9 +
    /// 10 on 2 threads, 6 + 6 + 7 on 3), two layers, variable lengths (steps whose rows shrink, rows ending
    /// mid-chunk), an initial state, chunks of 1, 5 and 32 steps, every kernel level. A thread that read h before
    /// its owner published it would read the previous chunk's values or zeros here (fails with the waits removed).
    @Test(arguments: [(48, 2, 8, 9), (300, 1, 4, 7)])
    func pipelinedChunksAreTheBitsOfForward(hidden H: Int, layers L: Int, batch B: Int, steps T: Int) throws {
        var random = RandomSource(seed: UInt64(H))
        let I = 5
        var layout = ParameterLayout()
        let lstm = try LSTM(LSTMConfiguration(inputSize: I, hiddenSize: H, layers: L), layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let x = (0..<(T * B * I)).map { _ in Float(random.uniform(-2, 2)) }
        for varied in [false, true] {
            let lengths: [Int]? = varied ? (0..<B).map { $0 == 1 ? T : 1 + random.index(below: T) } : nil
            let initial: LSTMState<Float>? = varied ? LSTMState(
                hidden: (0..<(L * B * H)).map { _ in Float(random.uniform(-1, 1)) },
                cell: (0..<(L * B * H)).map { _ in Float(random.uniform(-1, 1)) }, layers: L, batch: B, hiddenSize: H)
                : nil
            let plain = lstm.forward(x, steps: T, batch: B, lengths: lengths, initial: initial, parameters: parameters,
                                     stash: LSTMStash())
            for threads in [2, 3] {
                #expect(LSTM.inferenceParts(rows: B, groups: (H + 15) / 16, K: H, threads: threads) == min(threads, (H + 15) / 16))
            }
            Self.expectInferOnEveryLevel(lstm, x, steps: T, batch: B, lengths: lengths, initial: initial,
                                         parameters: parameters, equals: plain, threads: [2, 3], chunks: [1, 5, 32],
                                         "lengths \(varied)")
        }
    }

    /// One to four rows (B ≤ 4, or the rows still running at a step) go through their columns in runs of two unit
    /// groups, every other step last run first (`lstmk_lstm_step` with `reverse`; AVX-512 takes two to four rows
    /// per pass over the weights): the bits of `forward` on every kernel level and 1–3 threads, pipelined (chunks of
    /// 1 and 32 steps) and step by step, both directions, rows ending early — 19 groups (split 9 + 10 and 6 + 6 + 7:
    /// runs with a group left over), K = 300 in two KC blocks, two layers, an initial state; and a stream of the
    /// same model step by step (`lstmk_lstm_stream_step`, its own input product inside each run).
    @Test(arguments: [1, 2, 3, 4])
    func fewRowsRunBothWaysToTheBitsOfForward(batch B: Int) throws {
        var random = RandomSource(seed: UInt64(31 + B))
        let (I, H, L, T) = (5, 300, 2, 7)
        let lengths: [Int]? = B == 3 ? [T, 2, 5] : B == 4 ? [6, T, 3, 1] : nil
        for bidirectional in [false, true] {
            var layout = ParameterLayout()
            let lstm = try LSTM(LSTMConfiguration(inputSize: I, hiddenSize: H, layers: L, bidirectional: bidirectional),
                                layout: &layout)
            var parameters = ParameterBuffer<Float>(layout: layout)
            lstm.initialize(&parameters, random: &random)
            let x = (0..<(T * B * I)).map { _ in Float(random.uniform(-2, 2)) }
            let S = L * (bidirectional ? 2 : 1)
            let initial = LSTMState<Float>(hidden: (0..<(S * B * H)).map { _ in Float(random.uniform(-1, 1)) },
                                           cell: (0..<(S * B * H)).map { _ in Float(random.uniform(-1, 1)) },
                                           layers: S, batch: B, hiddenSize: H)
            let plain = lstm.forward(x, steps: T, batch: B, lengths: lengths, initial: initial, parameters: parameters,
                                     stash: LSTMStash())
            Self.expectInferOnEveryLevel(lstm, x, steps: T, batch: B, lengths: lengths, initial: initial,
                                         parameters: parameters, equals: plain, threads: [1, 2, 3], chunks: [1, 32],
                                         "bidirectional \(bidirectional)")
            guard !bidirectional && B == 1 else { continue }
            for threads in [1, 2, 3] {
                let stream = LSTMStream(lstm: lstm, parameters: parameters, threads: threads)
                stream.state = initial
                #expect(stream.feed(x, steps: T) == plain.output, "stream on \(threads) threads")
                #expect(stream.state == plain.final)
            }
        }
    }

    /// A stash that trained keeps its buffers for `infer`, and `infer` then `forward`/`backward` on the same stash
    /// still gives the gradients of a fresh one.
    @Test func inferSharesATrainingStash() throws {
        var random = RandomSource(seed: 7)
        var layout = ParameterLayout()
        let lstm = try LSTM(LSTMConfiguration(inputSize: 3, hiddenSize: 16, layers: 2), layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        let (T, B) = (60, 4)
        let x = (0..<(T * B * 3)).map { _ in Float(random.uniform(-1, 1)) }
        let dy = (0..<(T * B * 16)).map { _ in Float(random.uniform(-1, 1)) }
        func gradients(_ stash: LSTMStash<Float>) -> [Float] {
            var g = ParameterBuffer<Float>(layout: layout)
            _ = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: stash)
            _ = lstm.backward(dOutput: dy, parameters: parameters, stash: stash, gradients: &g)
            return g.storage
        }
        let stash = LSTMStash<Float>(threads: 2)
        let before = gradients(stash)
        let bytes = stash.allocatedBytes
        let inferred = lstm.infer(x, steps: T, batch: B, parameters: parameters, stash: stash)
        #expect(stash.allocatedBytes - bytes <= 2 * B * 16 * 4 * 4, "infer grew a training stash by \(stash.allocatedBytes - bytes) bytes")
        #expect(inferred.output == lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: LSTMStash()).output)
        #expect(gradients(stash) == before)
    }
}
