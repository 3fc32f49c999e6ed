import Foundation
import Testing
@testable import LSTMKit

/// Gradient shards on one process: S shards give the plain step's loss, gradient norm and carried state up to
/// rounding (each shard's gradient is divided by the whole batch's target count), for every kind of source and head.
struct DataParallelTests {
    static func compare<Source: TrainingSource>(_ make: () throws -> Trainer<Source>, shards: Int) throws {
        let plain = try make(), sharded = try make()
        try sharded.distribute(over: .single, shards: shards)
        for step in 0..<3 {
            let a = try plain.trainStep(), b = try sharded.trainStep()
            #expect(abs(a.loss - b.loss) <= 1e-6 * abs(a.loss), "step \(step): loss \(a.loss) against \(b.loss)")
            #expect(abs(a.gradientNorm - b.gradientNorm) <= 1e-4 * a.gradientNorm,
                    "step \(step): gradient norm \(a.gradientNorm) against \(b.gradientNorm)")
            if let x = plain.carry, let y = sharded.carry {
                let worst = zip(x.hidden + x.cell, y.hidden + y.cell).map { abs($0 - $1) }.max() ?? 0
                #expect(worst < 1e-5, "step \(step): carried state differs by \(worst)")
            }
        }
        let worst = zip(plain.model.parameters.storage, sharded.model.parameters.storage).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-5, "parameters differ by \(worst) after 3 steps")
    }

    @Test(arguments: [2, 3, 4])
    func tokenStreamsWithACarriedState(shards: Int) throws {
        var random = RandomSource(seed: 4)
        let tokens = (0..<2000).map { _ in Int32(random.index(below: 11)) }
        try Self.compare({ () throws -> Trainer in
            let source = try TokenStreams(tokens: tokens[..<1800], validation: tokens[1800...], batch: 4, steps: 6)
            let model = try SequenceModel<Float>(input: .tokens(vocabularySize: 11, embedding: 5),
                                                 lstm: LSTMConfiguration(hiddenSize: 8, layers: 2),
                                                 head: .everyStep(outputs: 11), loss: .crossEntropy)
            return try Trainer(model: model, source: source, options: TrainerOptions(learningRate: 0.01))
        }, shards: shards)
    }

    @Test(arguments: [2, 5])
    func variableLengthSequencesWithEveryKindOfHead(shards: Int) throws {
        var random = RandomSource(seed: 9)
        let series = (0..<40).map { _ in (0..<(2 + random.index(below: 9))).map { _ in Float(random.uniform(-1, 1)) } }
        let classes = series.map { Int32($0.reduce(0, +) > 0 ? 1 : 0) }
        try Self.compare({ () throws -> Trainer in
            let data = try SequenceDataset(series: series, classes: classes, validationFraction: 0.2, batch: 8)
            let model = try SequenceModel<Float>(input: .features(1),
                                                 lstm: LSTMConfiguration(hiddenSize: 6, layers: 2, bidirectional: true),
                                                 head: .lastStep(outputs: 2), loss: .crossEntropy)
            return try Trainer(model: model, source: data, options: TrainerOptions(learningRate: 0.01))
        }, shards: shards)
        let examples = series.map { s in
            SequenceDataset.Example(input: .features(s.map { [$0] }), target: .values(s.map { [$0 * 2, -$0] }.flatMap { $0 }))
        }
        try Self.compare({ () throws -> Trainer in
            let data = try SequenceDataset(examples, batch: 8, targetsPerStep: true)
            let model = try SequenceModel<Float>(input: .features(1), lstm: LSTMConfiguration(hiddenSize: 6),
                                                 head: .everyStep(outputs: 2), loss: .quantile([0.2, 0.5, 0.9]))
            return try Trainer(model: model, source: data, options: TrainerOptions(learningRate: 0.01))
        }, shards: shards)
    }

    @Test func aShardCountTheProcessesCannotShareIsRefused() throws {
        let data = try SequenceDataset(series: [[1, 2], [3, 4]], classes: [0, 1], batch: 2)
        let model = try SequenceModel<Float>(input: .features(1), lstm: LSTMConfiguration(hiddenSize: 3),
                                             head: .lastStep(outputs: 2), loss: .crossEntropy)
        let trainer = try Trainer(model: model, source: data)
        #expect(throws: LSTMKitError.self) { try trainer.distribute(over: .single, shards: 0) }
        // One process takes any count; the rule S % P == 0 is checked by the MPI tests.
        try trainer.distribute(over: .single, shards: 7)
        #expect(trainer.shards == 7)
    }

    /// The fixed-order sum on one process is the plain left-to-right sum, element by element.
    @Test func shardOrderSumIsLeftToRight() throws {
        var random = RandomSource(seed: 2)
        let shards = (0..<4).map { _ in (0..<37).map { _ in Float(random.uniform(-1, 1)) * 1e3 } }
        let sum = try ProcessGroup.single.reduceInShardOrder(shards, shards: 4)
        for i in 0..<37 { #expect(sum[i] == ((shards[0][i] + shards[1][i]) + shards[2][i]) + shards[3][i]) }
    }
}
