import Foundation
import Testing

@testable import LSTMKit

/// A NaN or infinity in the loss, a gradient or the parameters is caught in the step it appears, names the step and
/// the tensor, leaves the model untouched (or, if the update itself diverged, refuses to be saved).
struct NonFiniteTests {
    static func trainer(options: TrainingOptions = TrainingOptions()) throws -> CharacterTrainer {
        var random = RandomSource(seed: 9)
        let text = (0..<3000).map { _ in Unicode.Scalar(UInt8(97 + random.index(below: 12))) }
        let vocabulary = try Vocabulary(building: text)
        let tokens = try vocabulary.encode(text, source: "test")
        var options = options
        options.seqLength = 8
        options.batch = 4
        return try CharacterTrainer(tokens: tokens, vocabulary: vocabulary,
                                    model: .init(vocabularySize: vocabulary.count, embedding: 8, hidden: 12, layers: 2),
                                    options: options)
    }

    @Test func nanInAWeightStopsTheStepAndLeavesTheModelUntouched() throws {
        let trainer = try Self.trainer()
        try trainer.trainStep()
        // Every embedding row gets a NaN: whatever the window, the loss is NaN.
        let spec = trainer.model.layout.spec(named: "embedding.weight")!
        let embedding = spec.shape[1]
        for row in 0..<spec.shape[0] { trainer.parameters.storage[spec.range.lowerBound + row * embedding] = .nan }
        let before = trainer.parameters.storage, optimizerBefore = trainer.optimizer.states
        let (step, position) = (trainer.step, trainer.position)
        do {
            try trainer.trainStep()
            Issue.record("a NaN weight did not stop the step")
        } catch {
            guard case .nonFinite(let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.contains("step 2"), "\(message)")
        }
        #expect(trainer.parameters.storage.elementsEqual(before) { $0 == $1 || ($0.isNaN && $1.isNaN) })
        #expect(trainer.optimizer.states == optimizerBefore)
        #expect(trainer.step == step && trainer.position == position)
        // Such a model is never saved.
        #expect(throws: LSTMKitError.self) { try trainer.checkpoint() }
        // Skipping moves on without touching the model.
        trainer.skipWindow()
        #expect(trainer.step == step + 1 && trainer.position == position + 8)
        #expect(trainer.parameters.storage.elementsEqual(before) { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }

    @Test func aNonFiniteGradientNamesItsTensor() throws {
        let trainer = try Self.trainer()
        // An infinite output bias leaves the LSTM finite but makes the logits, and so the loss, non-finite.
        let spec = trainer.model.layout.spec(named: "head.bias")!
        trainer.parameters.storage[spec.range.lowerBound] = .infinity
        #expect { try trainer.trainStep() } throws: { error in
            guard case LSTMKitError.nonFinite(let message) = error else { return false }
            return message.contains("step 1")
        }
        #expect(trainer.step == 0)
    }

    @Test func anUpdateThatDivergesIsReportedAndNotSaved() throws {
        var options = TrainingOptions()
        options.optimizer = .sgd(momentum: 0)
        options.learningRate = 1e300  // +∞ as a Float
        options.clip = 0
        let trainer = try Self.trainer(options: options)
        #expect { try trainer.trainStep() } throws: { error in
            guard case LSTMKitError.diverged(let message) = error else { return false }
            return message.contains("step 1") && message.contains("learning rate")
        }
        #expect(throws: LSTMKitError.self) { try trainer.checkpoint() }
    }

    @Test func finiteCheckIsExact() {
        var layout = ParameterLayout()
        _ = layout.add("a", shape: [5])
        _ = layout.add("b", shape: [12])   // 17 values: two vectors of eight and a tail of one
        var buffer = ParameterBuffer<Float>(layout: layout)
        #expect(CharacterTrainer.firstNonFinite(buffer) == nil)
        buffer.storage = buffer.storage.map { _ in Float.greatestFiniteMagnitude }  // a sum would overflow; v·0 does not
        #expect(CharacterTrainer.firstNonFinite(buffer) == nil)
        for (k, value) in [(0, Float.nan), (4, -.infinity), (15, .infinity), (9, .nan), (16, .nan)] {
            var b = buffer
            b.storage[k] = value
            #expect(CharacterTrainer.firstNonFinite(b) == (k < 5 ? "a" : "b"))
        }
    }
}
