import Foundation
import Testing
import LSTMKit

/// Checkpoints pinned by hash: a change to the trainer, the model or the file format that moves a single bit of a
/// character model's checkpoint fails here. A change that means to move them updates the hashes in a commit of its
/// own that says why.
@Suite(.serialized) struct GoldenCheckpointTests {
    /// 64-bit FNV-1a of a file's bytes.
    static func fingerprint(_ url: URL) throws -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in try Data(contentsOf: url) { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return String(h, radix: 16)
    }

    /// `lstm train` with its defaults (bundled corpus, 2×LSTM(256), Adam) and seed 1, for 2 steps.
    @Test func defaultTrainingCheckpoint() throws {
        let dir = try CLI.temporaryFolder()
        let run = try CLI.run(["train", "--steps", "2", "--seed", "1", "--checkpoint", "d.safetensors"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let hash = try Self.fingerprint(dir.appendingPathComponent("d.safetensors"))
        #expect(hash == "5d351e26dcf20d3", "fingerprint \(hash)")
    }

    /// Every variant the character model has, with RMSProp and a cosine schedule.
    @Test func variantTrainingCheckpoint() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let run = try CLI.run(["train", "text.txt", "--steps", "6", "--seed", "5", "--hidden", "12", "--layers", "3",
                               "--embedding", "5", "--seq-length", "9", "--batch", "4", "--eval-every", "3",
                               "--dropout", "0.2", "--recurrent-dropout", "0.1", "--proj", "7", "--layer-norm",
                               "--peepholes", "--cell-clip", "4", "--optimizer", "rmsprop", "--schedule", "cosine",
                               "--warmup", "2", "--checkpoint", "v.safetensors"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let hash = try Self.fingerprint(dir.appendingPathComponent("v.safetensors"))
        #expect(hash == "f200ed5f7bed8d13", "fingerprint \(hash)")
    }
}
