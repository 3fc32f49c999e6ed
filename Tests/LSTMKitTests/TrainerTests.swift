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
        var data = try Self.dataset()
        #expect(data.batchesPerEpoch == 7, "40 examples in batches of 6: the last one holds 4")
        // Each epoch reads every example once, in the order of its own permutation of the seed.
        for epoch in 0..<2 {
            let order = SequenceDataset.permutation(40, seed: 3, epoch: epoch)
            #expect(Set(order) == Set(0..<40))
            var read: [[Float]] = []
            for k in 0..<data.batchesPerEpoch {
                let batch = data.nextBatch()
                #expect(data.cursor.epoch == epoch)
                #expect(batch.input.batch == (k < 6 ? 6 : 4))
                guard case .features(let values) = batch.input.values else { return }
                // Row b's first step, first feature (batch-first layout).
                for b in 0..<batch.input.batch { read.append([values[b * batch.input.steps * 2]]) }
                data.advance()
            }
            let expected = order.map { k -> [Float] in
                guard case .features(let steps) = data.examples[k].input else { return [] }
                return [steps[0][0]]
            }
            #expect(read == expected)
        }
        #expect(SequenceDataset.permutation(40, seed: 3, epoch: 0) != SequenceDataset.permutation(40, seed: 3, epoch: 1))
    }

    @Test func badExamplesAreErrorsNotCrashes() throws {
        let nan = SequenceDataset.Example(input: .features([[1], [.nan]]), target: .classes([0]))
        #expect(throws: LSTMKitError.self) { _ = try SequenceDataset([nan], batch: 1) }
        let empty = SequenceDataset.Example(input: .features([[]]), target: .classes([0]))
        #expect(throws: LSTMKitError.self) { _ = try SequenceDataset([empty], batch: 1) }
        let two = SequenceDataset.Example(input: .features([[1]]), target: .classes([0, 1]))
        #expect(throws: LSTMKitError.self) { _ = try SequenceDataset([two], batch: 1) }
    }

    /// A checkpoint resumes only on the data it was written with.
    @Test func resumingOnOtherDataIsRefused() throws {
        let trainer = try Trainer(model: Self.model(), source: Self.dataset(), options: TrainerOptions(learningRate: 0.02))
        try trainer.trainStep()
        let file = try trainer.checkpoint()
        #expect(throws: LSTMKitError.self) { _ = try Trainer(resuming: file, source: Self.dataset(batch: 5), path: "c") }
        #expect(throws: LSTMKitError.self) { _ = try Trainer(resuming: file, source: Self.dataset(validation: 6), path: "c") }
        var damaged = file
        damaged.metadata["state"] = damaged.metadata["state"]!.replacingOccurrences(of: "\"step\":1", with: "\"step\":9223372036854775807")
        #expect(throws: LSTMKitError.self) { _ = try Trainer(resuming: damaged, source: Self.dataset(), path: "c") }
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
        #expect(try resumed.validationLoss() == whole.validationLoss())
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
        // Row by row, each padded to 3 steps with zeros (which the loss skips).
        #expect(v == (batch.input.lengths == [3, 1] ? [1, 2, 3, 4, 0, 0] : [4, 0, 0, 1, 2, 3]))
        #expect(throws: LSTMKitError.self) {
            _ = try SequenceDataset([examples[0], SequenceDataset.Example(input: .features([[1, 2]]), target: .values([1]))],
                                    batch: 2)
        }
    }
}
