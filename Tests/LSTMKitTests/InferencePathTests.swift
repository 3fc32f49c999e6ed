import Foundation
import Testing
@testable import LSTMKit

/// `predict` and `evaluate` run the LSTM window by window: the same bits as the plain pass, a fraction of its
/// memory, and nothing more allocated by a model in training.
struct InferencePathTests {
    @Test(arguments: [false, true])
    func predictionsAreTheBitsOfThePlainPass(everyStep: Bool) throws {
        var random = RandomSource(seed: 12)
        let series = (0..<5).map { _ in (0..<(40 + random.index(below: 60))).map { _ in [Float(random.uniform(-1, 1)), Float(random.uniform(-1, 1))] } }
        let model = try SequenceModel<Float>(input: .features(2), lstm: LSTMConfiguration(hiddenSize: 7, layers: 2, projectionSize: 5),
                                             head: everyStep ? .everyStep(outputs: 3) : .lastStep(outputs: 3), loss: .meanSquaredError,
                                             seed: 3)
        let batch = try SequenceBatch(sequences: series)
        #expect(batch.steps > 2 * SequenceModel<Float>.inferenceWindow)
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
        #expect(model.inferenceLSTM.checkpointInterval == SequenceModel<Float>.inferenceWindow)
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
        // Only the (h, c) where windows meet is new: T/32 × B × (P + H) values, here 26 KB.
        #expect(training.stashBytes - trainingBytes < trainingBytes / 100,
                "validating in training allocated \(training.stashBytes - trainingBytes) bytes more")
        #expect(predicting.stashBytes * 4 < trainingBytes, "inference \(predicting.stashBytes) bytes, training \(trainingBytes)")
        print("T = 400, B = 8, H = 32: the training stash holds \(trainingBytes) bytes, a predicting model's \(predicting.stashBytes)")
    }
}
