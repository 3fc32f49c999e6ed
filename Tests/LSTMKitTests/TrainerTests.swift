import Foundation
import Testing
@testable import LSTMKit

/// The generic trainer on independent sequences: reshuffling, bitwise resume, the files `fit` writes, stopping.
struct TrainerTests {
    /// 40 sequences of 3–9 steps, two features each, with a class: is the first feature's sum positive?
    static func dataset(batch: Int = 6, validation: Int = 8) throws -> SequenceDataset {
        var random = RandomSource(seed: 12)
        let examples = (0..<(40 + validation)).map { _ -> SequenceDataset.Example in
            let steps = (0..<(3 + random.index(below: 7))).map { _ in [Float(random.uniform(-1, 1)), Float(random.uniform(-1, 1))] }
            return SequenceDataset.Example(input: .features(steps), target: .classes([steps.map { $0[0] }.reduce(0, +) > 0 ? 1 : 0]))
        }
        return try SequenceDataset(Array(examples.prefix(40)), validation: Array(examples.suffix(validation)), batch: batch, seed: 3)
    }

    static func model() throws -> SequenceModel<Float> {
        try SequenceModel(input: .features(2), lstm: .init(hiddenSize: 6, layers: 2, dropout: 0.1),
                          head: .lastStep(outputs: 2), loss: .crossEntropy, seed: 4)
    }

    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func epochsAreReshuffledFromTheSeed() throws {
        var a = try Self.dataset(), b = try Self.dataset()
        for _ in 0..<(3 * a.batchesPerEpoch) {
            let x = a.nextBatch(), y = b.nextBatch()
            guard case .features(let u) = x.input.values, case .features(let v) = y.input.values else { return }
            #expect(u == v)
            a.advance()
            b.advance()
        }
        #expect(a.cursor.epoch == 2)
        // Each epoch visits every example once, in an order of its own.
        let orders = (0..<3).map { SequenceDataset.permutation(40, seed: 3, epoch: $0) }
        #expect(orders.allSatisfy { Set($0) == Set(0..<40) })
        #expect(orders[0] != orders[1] && orders[1] != orders[2])
        #expect(a.batchesPerEpoch == 7, "40 examples in batches of 6: the last one holds 4")
    }

    /// 2N steps in one go and N steps, a checkpoint, a new trainer from it and N more give the same bytes.
    @Test func resumeIsBitwiseExact() throws {
        let whole = try Trainer(model: Self.model(), source: Self.dataset(), options: TrainerOptions(learningRate: 0.02))
        for _ in 0..<16 { try whole.trainStep() }
        let first = try Trainer(model: Self.model(), source: Self.dataset(), options: TrainerOptions(learningRate: 0.02))
        for _ in 0..<8 { try first.trainStep() }
        let saved = SafeTensors.encode(try first.checkpoint())
        let resumed = try Trainer(resuming: SafeTensors.decode(saved), source: Self.dataset(), path: "checkpoint")
        #expect(resumed.step == 8 && resumed.source.cursor == first.source.cursor)
        for _ in 0..<8 { try resumed.trainStep() }
        #expect(resumed.source.cursor.epoch == 2, "16 steps of 7 per epoch cross two epoch boundaries")
        #expect(SafeTensors.encode(try resumed.checkpoint()) == SafeTensors.encode(try whole.checkpoint()))
        #expect(resumed.validationLoss() == whole.validationLoss())
    }

    @Test func fitWritesItsFilesAndStopsWhenAsked() throws {
        let dir = try Self.folder()
        let files = TrainingFiles(checkpoint: dir.appendingPathComponent("m.safetensors").path)
        let trainer = try Trainer(model: Self.model(), source: Self.dataset(), options: TrainerOptions(learningRate: 0.02))
        var events: [TrainingEvent] = []
        let outcome = try trainer.fit(FitOptions(steps: 12, validateEvery: 5, files: files), progress: { events.append($0) })
        #expect(outcome == .finished && trainer.step == 12)
        let validations = events.compactMap { if case let .validated(step, _, _) = $0 { step } else { nil } }
        #expect(validations == [5, 10, 12])
        #expect(events.filter { if case .trained = $0 { true } else { false } }.count == 12)
        for path in [files.checkpoint, files.best, files.metrics, files.plot] {
            #expect(FileManager.default.fileExists(atPath: path), "\(path)")
        }
        let metrics = try String(contentsOfFile: files.metrics, encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 15)
        // The best checkpoint holds the model at its lowest validation loss and loads as a model file.
        let best = try SequenceModel<Float>(contentsOf: files.best)
        #expect(best.configuration == trainer.model.configuration)

        // A stop request saves and returns; fitting on from the saved file reaches the same bytes.
        let stopped = try Trainer(model: Self.model(), source: Self.dataset(), options: TrainerOptions(learningRate: 0.02))
        let stopFiles = TrainingFiles(checkpoint: dir.appendingPathComponent("s.safetensors").path)
        var asked = 0
        let early = try stopped.fit(FitOptions(steps: 12, validateEvery: 5, files: stopFiles), stopRequested: {
            asked += 1
            return asked > 7
        })
        #expect(early == .stopped && stopped.step == 7)
        let rest = try Trainer(resuming: SafeTensors.read(path: stopFiles.checkpoint), source: Self.dataset(), path: "s")
        #expect(try rest.fit(FitOptions(steps: 12, validateEvery: 5, files: stopFiles)) == .finished)
        #expect(try SafeTensors.read(path: stopFiles.checkpoint) == SafeTensors.read(path: files.checkpoint))
    }

    @Test func everyStepTargetsArePaddedPerRow() throws {
        let examples = [SequenceDataset.Example(input: .features([[1], [2], [3]]), target: .values([1, 2, 3])),
                        SequenceDataset.Example(input: .features([[4]]), target: .values([4]))]
        var data = try SequenceDataset(examples, batch: 2, targetsPerStep: true)
        let batch = data.nextBatch()
        #expect(batch.input.lengths == [3, 1] || batch.input.lengths == [1, 3])
        guard case .values(let v) = batch.targets else { Issue.record("values expected"); return }
        #expect(v.count == 6)
        #expect(throws: LSTMKitError.self) {
            _ = try SequenceDataset([examples[0], SequenceDataset.Example(input: .features([[1, 2]]), target: .values([1]))],
                                    batch: 2)
        }
    }
}
