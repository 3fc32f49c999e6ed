import Foundation
import Testing
import LSTMKit

/// Bad input gets one line on stderr that says what was wrong, a non-zero exit, and leaves saved files untouched.
@Suite(.serialized) struct CLIErrorTests {
    /// A folder with a good text, a trained checkpoint `m.safetensors` and its bytes, for each case to damage.
    struct Fixture {
        var dir: URL
        var checkpoint: Data

        init() throws {
            dir = try CLI.temporaryFolder()
            try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
            let r = try CLI.run(["train", "text.txt", "--steps", "5", "--checkpoint", "m.safetensors"] + CLI.tiny, in: dir)
            precondition(r.status == 0, r.stderr)
            checkpoint = try Data(contentsOf: dir.appendingPathComponent("m.safetensors"))
        }

        func write(_ name: String, _ bytes: Data) throws { try bytes.write(to: dir.appendingPathComponent(name)) }

        /// Runs `arguments` and checks the failure contract.
        func expectFailure(_ arguments: [String], mentioning fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try CLI.run(arguments, in: dir)
            #expect(r.status != 0, "exit status 0 for \(arguments)", sourceLocation: sourceLocation)
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "expected one line on stderr, got: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.hasPrefix("lstm: error: "), "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.contains(fragment), "'\(fragment)' not in: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
            let now = try Data(contentsOf: dir.appendingPathComponent("m.safetensors"))
            #expect(now == checkpoint, "the saved checkpoint changed", sourceLocation: sourceLocation)
        }
    }

    @Test func corpusProblems() throws {
        let f = try Fixture()
        try f.write("empty.txt", Data())
        try f.write("binary.txt", Data([0x61, 0x62, 0xFF, 0xFE, 0x00, 0x63]))
        try f.write("short.txt", Data("only a few characters".utf8))
        try f.expectFailure(["train", "missing.txt", "--checkpoint", "x.safetensors"], mentioning: "no such file")
        try f.expectFailure(["train", "empty.txt", "--checkpoint", "x.safetensors"], mentioning: "empty")
        try f.expectFailure(["train", "binary.txt", "--checkpoint", "x.safetensors"], mentioning: "not valid UTF-8 (bad byte sequence at byte offset 2)")
        try f.expectFailure(["train", "short.txt", "--checkpoint", "x.safetensors"] + CLI.tiny, mentioning: "too short for one window")
        try f.expectFailure(["eval", "m.safetensors", "missing.txt"], mentioning: "no such file")
        try f.expectFailure(["eval", "m.safetensors", "binary.txt"], mentioning: "not valid UTF-8")
        // A checkpoint from before the unknown entry (an earlier release's file) still refuses unseen characters.
        let old = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Corpus/safetensors/lstmkit-checkpoint.safetensors")
        try f.write("old.safetensors", Data(contentsOf: old))
        try f.write("alien.txt", Data("the cell ✓ keeps".utf8))
        try f.expectFailure(["eval", "old.safetensors", "alien.txt"], mentioning: "U+2713")
        try f.expectFailure(["sample", "old.safetensors", "--prime", "Ω"], mentioning: "U+03A9")
    }

    @Test func badSizesAndOptions() throws {
        let f = try Fixture()
        for (flag, value) in [("--hidden", "0"), ("--layers", "-1"), ("--batch", "0"), ("--seq-length", "-5"),
                              ("--embedding", "0"), ("--steps", "0"), ("--eval-every", "0")] {
            // flag=value, or ArgumentParser reads "-1" as an option name.
            try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "\(flag)=\(value)"], mentioning: flag)
        }
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--lr=-1"], mentioning: "--lr")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--val-fraction", "1.5"], mentioning: "--val-fraction")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--cell-clip", "0"], mentioning: "--cell-clip")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--dropout", "0.5", "--layers", "1"],
                            mentioning: "--dropout")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--dropout", "1"], mentioning: "--dropout")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "m.safetensors", "--resume", "--steps", "9", "--dropout", "0.2"],
                            mentioning: "--resume continues the model")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--optimizer", "adamax"], mentioning: "The value 'adamax' is invalid for '--optimizer")
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--hidden", "200000"], mentioning: "smaller model")
        try f.expectFailure(["sample", "m.safetensors", "--temperature", "0"], mentioning: "--temperature")
        try f.expectFailure(["sample", "m.safetensors", "--length=-3"], mentioning: "--length")
        // An existing checkpoint is not overwritten by a fresh run.
        try f.expectFailure(["train", "text.txt", "--checkpoint", "m.safetensors"] + CLI.tiny, mentioning: "already exists")
    }

    @Test func unwritableCheckpointPath() throws {
        let f = try Fixture()
        try f.expectFailure(["train", "text.txt", "--checkpoint", "no/such/folder/x.safetensors"] + CLI.tiny, mentioning: "does not exist")
        let locked = f.dir.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: locked.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: locked.path) }
        // root ignores permission bits, so only expect the failure when the folder really is unwritable.
        if access(locked.path, W_OK) != 0 {
            try f.expectFailure(["train", "text.txt", "--checkpoint", "locked/x.safetensors"] + CLI.tiny, mentioning: "not writable")
        }
        try f.expectFailure(["train", "text.txt", "--checkpoint", "text.txt/x.safetensors"] + CLI.tiny, mentioning: "does not exist")
    }

    @Test func damagedCheckpoints() throws {
        let f = try Fixture()
        let bytes = f.checkpoint
        try f.write("truncated.safetensors", bytes.prefix(bytes.count / 2))
        try f.write("tiny.safetensors", bytes.prefix(5))
        var corrupted = bytes
        corrupted[12] = UInt8(ascii: "#")  // inside the JSON header
        try f.write("corrupted.safetensors", corrupted)
        var lengthTooBig = bytes
        lengthTooBig[6] = 0x7F
        try f.write("huge-header.safetensors", lengthTooBig)
        try f.write("text.safetensors", Data("hello, I am not a checkpoint".utf8))
        for name in ["truncated", "tiny", "corrupted", "huge-header", "text"] {
            try f.expectFailure(["sample", "\(name).safetensors"], mentioning: "\(name).safetensors")
            try f.expectFailure(["eval", "\(name).safetensors", "text.txt"], mentioning: "not a valid safetensors file")
        }
        try f.expectFailure(["sample", "missing.safetensors"], mentioning: "no such file")
        // Resuming from a damaged checkpoint leaves it as it was.
        let damaged = f.dir.appendingPathComponent("truncated.safetensors")
        let before = try Data(contentsOf: damaged)
        try f.expectFailure(["train", "text.txt", "--checkpoint", "truncated.safetensors", "--resume", "--steps", "9"], mentioning: "cannot resume")
        #expect(try Data(contentsOf: damaged) == before)
        try f.expectFailure(["train", "text.txt", "--checkpoint", "missing.safetensors", "--resume"], mentioning: "does not exist")
    }

    @Test func incompatibleCheckpoints() throws {
        let f = try Fixture()
        var file = try SafeTensors.decode([UInt8](f.checkpoint))
        file.metadata["format_version"] = "99"
        try f.write("future.safetensors", Data(SafeTensors.encode(file)))
        try f.expectFailure(["sample", "future.safetensors"], mentioning: "format version 99")

        var other = try SafeTensors.decode([UInt8](f.checkpoint))
        other.metadata["format"] = "something.else"
        try f.write("other.safetensors", Data(SafeTensors.encode(other)))
        try f.expectFailure(["sample", "other.safetensors"], mentioning: "not a character model")

        var noVocabulary = try SafeTensors.decode([UInt8](f.checkpoint))
        noVocabulary.metadata["vocabulary"] = nil
        try f.write("novocab.safetensors", Data(SafeTensors.encode(noVocabulary)))
        try f.expectFailure(["sample", "novocab.safetensors"], mentioning: "no vocabulary")

        var wrongShape = try SafeTensors.decode([UInt8](f.checkpoint))
        let k = wrongShape.tensors.firstIndex { $0.name == "head.bias" }!
        wrongShape.tensors[k].tensor = SafeTensors.Tensor([Float](repeating: 0, count: 3), shape: [3])
        try f.write("shape.safetensors", Data(SafeTensors.encode(wrongShape)))
        try f.expectFailure(["sample", "shape.safetensors"], mentioning: "head.bias")

        var nan = try SafeTensors.decode([UInt8](f.checkpoint))
        let h = nan.tensors.firstIndex { $0.name == "head.weight" }!
        var values = nan.tensors[h].tensor.floats()!
        values[0] = .nan
        nan.tensors[h].tensor = SafeTensors.Tensor(values, shape: nan.tensors[h].tensor.shape)
        try f.write("nan.safetensors", Data(SafeTensors.encode(nan)))
        try f.expectFailure(["eval", "nan.safetensors", "text.txt"], mentioning: "NaN")

        // A different corpus cannot resume the checkpoint.
        try CLI.text(3000, seed: 99).write(to: f.dir.appendingPathComponent("other.txt"), atomically: true, encoding: .utf8)
        try f.expectFailure(["train", "other.txt", "--checkpoint", "m.safetensors", "--resume", "--steps", "9"], mentioning: "different corpus")
    }
}
