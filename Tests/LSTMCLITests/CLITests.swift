import Foundation
import Testing
import LSTMKit

/// End-to-end runs of the `lstm` command on tiny models with fixed seeds.
@Suite(.serialized) struct CLITests {
    @Test func trainCheckpointSampleIsDeterministic() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let train = try CLI.run(["train", "text.txt", "--steps", "10", "--checkpoint", "m.safetensors", "--threads", "2"]
                                + CLI.tiny, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        // Not a terminal: plain log lines, a metrics line per step, the plot and both checkpoints.
        #expect(train.stdout.contains("step 10/10"))
        #expect(train.stdout.contains("validation loss"))
        let metrics = try String(contentsOf: dir.appendingPathComponent("m.metrics.jsonl"), encoding: .utf8)
        #expect(metrics.split(separator: "\n").filter { $0.contains("train_loss") }.count == 10)
        #expect(metrics.split(separator: "\n").filter { $0.contains("val_loss") }.count == 2)
        let svg = try String(contentsOf: dir.appendingPathComponent("m.loss.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("<polyline") && svg.hasSuffix("</svg>\n"))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.best.safetensors").path))

        let a = try CLI.run(["sample", "m.safetensors", "--prime", "the ", "--length", "80", "--seed", "3"], in: dir)
        let b = try CLI.run(["sample", "m.safetensors", "--prime", "the ", "--length", "80", "--seed", "3"], in: dir)
        let c = try CLI.run(["sample", "m.safetensors", "--prime", "the ", "--length", "80", "--seed", "4"], in: dir)
        #expect(a.status == 0 && a.stdout == b.stdout)
        #expect(a.stdout != c.stdout)
        #expect(a.stdout.hasPrefix("the ") && a.stdout.unicodeScalars.count == 4 + 80 + 1)
        let greedy1 = try CLI.run(["sample", "m.safetensors", "--argmax", "--length", "30", "--seed", "1"], in: dir)
        let greedy2 = try CLI.run(["sample", "m.safetensors", "--argmax", "--length", "30", "--seed", "2"], in: dir)
        #expect(greedy1.status == 0 && greedy1.stdout == greedy2.stdout)
        // Training again from scratch with the same seed, on 1 thread instead of 2, gives the same bytes.
        let again = try CLI.run(["train", "text.txt", "--steps", "10", "--checkpoint", "n.safetensors", "--threads", "1"]
                                + CLI.tiny, in: dir)
        #expect(again.status == 0)
        #expect(try Data(contentsOf: dir.appendingPathComponent("m.safetensors"))
                == Data(contentsOf: dir.appendingPathComponent("n.safetensors")))
    }

    /// 2N steps in one run and N steps plus N resumed steps give the same checkpoint, byte for byte.
    @Test(arguments: ["adam", "sgd", "rmsprop"])
    func resumeIsBitwiseExact(optimizer: String) throws {
        let dir = try CLI.temporaryFolder()
        // Short enough that the 20 steps cross an epoch boundary (state and position reset) at least once.
        try CLI.text(400).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let flags = CLI.tiny + ["--optimizer", optimizer]
        let whole = try CLI.run(["train", "text.txt", "--steps", "20", "--checkpoint", "whole.safetensors"] + flags, in: dir)
        #expect(whole.status == 0, "\(whole.stderr)")
        let first = try CLI.run(["train", "text.txt", "--steps", "10", "--checkpoint", "split.safetensors"] + flags, in: dir)
        #expect(first.status == 0)
        let second = try CLI.run(["train", "text.txt", "--steps", "20", "--checkpoint", "split.safetensors", "--resume"] + flags, in: dir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("resuming at step 10"))
        let w = try Data(contentsOf: dir.appendingPathComponent("whole.safetensors"))
        let s = try Data(contentsOf: dir.appendingPathComponent("split.safetensors"))
        #expect(w == s)
        let file = try SafeTensors.decode([UInt8](w))
        #expect(file.metadata["state"]?.contains("\"epoch\":") == true)
        #expect(file.metadata["state"]?.contains("\"epoch\":0") == false, "the run should cross an epoch boundary")
        // The metrics history has one train line per step, without duplicates from the first run.
        let metrics = try String(contentsOf: dir.appendingPathComponent("split.metrics.jsonl"), encoding: .utf8)
        #expect(metrics.split(separator: "\n").filter { $0.contains("train_loss") }.count == 20)
    }

    @Test func evalAgreesWithTheLibrary() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        try CLI.text(600, seed: 11).write(to: dir.appendingPathComponent("held.txt"), atomically: true, encoding: .utf8)
        #expect(try CLI.run(["train", "text.txt", "--steps", "5", "--checkpoint", "m.safetensors"] + CLI.tiny, in: dir).status == 0)
        let result = try CLI.run(["eval", "m.safetensors", "held.txt", "--json"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Double]
        #expect(Set(object.keys) == ["cross_entropy", "bits_per_character", "perplexity", "unknown_characters"])
        #expect(object["unknown_characters"] == 0)

        let loaded = try CharacterModelFile.load(path: dir.appendingPathComponent("m.safetensors").path)
        let text = Array(try String(contentsOf: dir.appendingPathComponent("held.txt"), encoding: .utf8).unicodeScalars)
        let tokens = try loaded.vocabulary.encode(text, source: "held.txt")
        // Directly, one token at a time from a zero state: no chunking at all.
        var state = loaded.model.zeroState(batch: 1)
        let model = try SequenceModel(loaded.model.sequenceConfiguration(), parameters: loaded.parameters)
        var sum = 0.0
        for k in 0..<(tokens.count - 1) {
            let r = try model.evaluate(SequenceBatch(tokens: [tokens[k]], steps: 1, batch: 1),
                                       targets: .classes([tokens[k + 1]]), initial: state)
            sum += r.sum
            state = r.final
        }
        let expected = sum / Double(tokens.count - 1)
        #expect(abs(object["cross_entropy"]! - expected) <= 1e-9 * expected)
        #expect(abs(object["bits_per_character"]! - expected / log(2)) <= 1e-9 * expected)
        #expect(abs(object["perplexity"]! - exp(expected)) <= 1e-9 * exp(expected))
    }

    @Test func standardInputAndInterrupt() throws {
        let dir = try CLI.temporaryFolder()
        let piped = try CLI.run(["train", "-", "--steps", "3", "--checkpoint", "p.safetensors"] + CLI.tiny, in: dir,
                                input: Data(CLI.text(2000).utf8))
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(piped.stdout.contains("standard input"))

        try CLI.text(20000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = ["train", "text.txt", "--steps", "100000", "--checkpoint", "i.safetensors"] + CLI.tiny
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait for the first periodic checkpoint so the run is well under way, then Ctrl-C.
        let path = dir.appendingPathComponent("i.safetensors").path
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(50_000) }
        usleep(200_000)
        process.interrupt()
        let stopDeadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < stopDeadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        let file = try SafeTensors.read(path: path)
        let state = try JSONSerialization.jsonObject(with: Data((file.metadata["state"] ?? "{}").utf8)) as! [String: Any]
        let step = try #require(state["step"] as? Int)
        #expect(step >= 5)
        let resumed = try CLI.run(["train", "text.txt", "--steps", "\(step + 2)", "--checkpoint", "i.safetensors", "--resume"], in: dir)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming at step \(step)"))
    }

    /// `--cell-clip` (and `--peepholes`, `--recurrent-dropout`) are saved with the model, used by eval, sample and
    /// resume, and change what is learned.
    @Test func cellClipIsSavedAndUsed() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        for (name, clip) in [("plain", [String]()), ("clipped", ["--cell-clip", "0.05"]),
                             ("peep", ["--peepholes", "--recurrent-dropout", "0.2", "--cell-clip", "3"])] {
            let r = try CLI.run(["train", "text.txt", "--steps", "6", "--checkpoint", "\(name).safetensors"] + CLI.tiny + clip,
                                in: dir)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let clipped = try CharacterModelFile.load(path: dir.appendingPathComponent("clipped.safetensors").path)
        let plain = try CharacterModelFile.load(path: dir.appendingPathComponent("plain.safetensors").path)
        #expect(clipped.model.configuration.cellClip == 0.05 && plain.model.configuration.cellClip == nil)
        #expect(clipped.model.lstm.layers.allSatisfy { $0.activations.cellClip == 0.05 })
        #expect(clipped.parameters.storage != plain.parameters.storage)
        let peep = try CharacterModelFile.load(path: dir.appendingPathComponent("peep.safetensors").path)
        #expect(peep.model.lstm.layers.allSatisfy { $0.peephole != nil && $0.activations.peepholes }
                && peep.model.lstm.recurrentDropout == 0.2 && peep.model.configuration.cellClip == 3)
        let sample = try CLI.run(["sample", "peep.safetensors", "--length", "20", "--seed", "2"], in: dir)
        #expect(sample.status == 0, "\(sample.stderr)")
        let resumed = try CLI.run(["train", "text.txt", "--steps", "8", "--checkpoint", "clipped.safetensors", "--resume"],
                                  in: dir)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try CharacterModelFile.load(path: dir.appendingPathComponent("clipped.safetensors").path)
                    .model.configuration.cellClip == 0.05)
        let eval = try CLI.run(["eval", "clipped.safetensors", "text.txt", "--json"], in: dir)
        #expect(eval.status == 0 && eval.stdout.contains("bits_per_character"), "\(eval.stderr)")
    }

    /// 8 steps in one run (whole.safetensors) and 4 + 4 resumed steps (split.safetensors) give the same bytes.
    static func expectSplitRunEqualsWholeRun(_ flags: [String], in dir: URL,
                                             sourceLocation: SourceLocation = #_sourceLocation) throws {
        let whole = try CLI.run(["train", "text.txt", "--steps", "8", "--checkpoint", "whole.safetensors"] + flags, in: dir)
        let half = try CLI.run(["train", "text.txt", "--steps", "4", "--checkpoint", "split.safetensors"] + flags, in: dir)
        let rest = try CLI.run(["train", "text.txt", "--steps", "8", "--checkpoint", "split.safetensors", "--resume"], in: dir)
        #expect(whole.status == 0 && half.status == 0 && rest.status == 0, "\(whole.stderr)\(half.stderr)\(rest.stderr)",
                sourceLocation: sourceLocation)
        #expect(AtomicFile.read(path: dir.appendingPathComponent("whole.safetensors").path)
                == AtomicFile.read(path: dir.appendingPathComponent("split.safetensors").path), sourceLocation: sourceLocation)
    }

    /// `--dropout`: saved with the model, the mask depends on seed and step only, so resuming is still bitwise.
    @Test func dropoutTrainsAndResumesBitwise() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        try Self.expectSplitRunEqualsWholeRun(CLI.tiny + ["--dropout", "0.3"], in: dir)
        let plain = try CLI.run(["train", "text.txt", "--steps", "8", "--checkpoint", "plain.safetensors"] + CLI.tiny, in: dir)
        #expect(plain.status == 0)
        let a = try CharacterModelFile.load(path: dir.appendingPathComponent("whole.safetensors").path)
        let b = try CharacterModelFile.load(path: dir.appendingPathComponent("plain.safetensors").path)
        #expect(a.model.configuration.dropout == 0.3 && a.model.lstm.dropout == 0.3 && b.model.lstm.dropout == 0)
        #expect(a.parameters.storage != b.parameters.storage)
    }

    /// `--proj` and `--layer-norm`: saved with the model (tensors lstm.weight_hr_l{k}, lstm.layer_norm_*), used by
    /// sample, eval and inspect, and resumed bitwise (N + N steps = 2N steps, byte for byte).
    @Test func projectionAndLayerNormTrainAndResumeBitwise() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        try Self.expectSplitRunEqualsWholeRun(CLI.tiny + ["--proj", "5", "--layer-norm"], in: dir)
        let loaded = try CharacterModelFile.load(path: dir.appendingPathComponent("whole.safetensors").path)
        #expect(loaded.model.lstm.projectionSize == 5 && loaded.model.lstm.layers.allSatisfy { $0.activations.layerNorm })
        #expect(loaded.model.layout.spec(named: "lstm.weight_hr_l0")?.shape == [5, loaded.model.lstm.hiddenSize])
        #expect(loaded.model.layout.spec(named: "head.weight")?.shape[1] == 5)
        let sample = try CLI.run(["sample", "whole.safetensors", "--length", "20", "--seed", "2"], in: dir)
        #expect(sample.status == 0 && !sample.stdout.isEmpty, "\(sample.stderr)")
        let eval = try CLI.run(["eval", "whole.safetensors", "text.txt", "--json"], in: dir)
        #expect(eval.status == 0 && eval.stdout.contains("bits_per_character"), "\(eval.stderr)")
        let inspect = try CLI.run(["inspect", "whole.safetensors"], in: dir)
        #expect(inspect.stdout.contains("projection 5, layer norm"), "\(inspect.stdout)")
        let bad = try CLI.run(["train", "text.txt", "--steps", "2", "--checkpoint", "bad.safetensors"] + CLI.tiny
                              + ["--proj", "1000"], in: dir)
        #expect(bad.status != 0 && bad.stderr.contains("projection size"), "\(bad.stderr)")
        let negative = try CLI.run(["train", "text.txt", "--steps", "2", "--checkpoint", "neg.safetensors", "--proj", "-3"],
                                   in: dir)
        #expect(negative.status != 0 && negative.stderr.contains("--proj"), "\(negative.stderr)")
        // A tensor the model does not have (a reverse direction) is refused, not ignored.
        var file = try SafeTensors.read(path: dir.appendingPathComponent("whole.safetensors").path)
        file.tensors.append(("lstm.weight_ih_l0_reverse", file["lstm.weight_ih_l0"]!))
        try SafeTensors.write(file, path: dir.appendingPathComponent("stray.safetensors").path)
        let stray = try CLI.run(["eval", "stray.safetensors", "text.txt"], in: dir)
        #expect(stray.status != 0 && stray.stderr.contains("lstm.weight_ih_l0_reverse does not fit"), "\(stray.stderr)")
        let conflicting = try CLI.run(["train", "text.txt", "--steps", "9", "--checkpoint", "whole.safetensors", "--resume",
                                       "--layer-norm"], in: dir)
        #expect(conflicting.status != 0 && conflicting.stderr.contains("--layer-norm"))
    }

    /// `--bptt-checkpoint K`: memory-lean BPTT inside each window trains bitwise the same model (every tensor,
    /// optimizer state and carried state equal to a plain run's), is recorded with the training options, and resumes.
    @Test func memoryLeanTrainingGivesThePlainModel() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let flags = CLI.tiny + ["--seq-length", "12"]
        let plain = try CLI.run(["train", "text.txt", "--steps", "6", "--checkpoint", "plain.safetensors"] + flags, in: dir)
        let lean = try CLI.run(["train", "text.txt", "--steps", "3", "--checkpoint", "lean.safetensors", "--bptt-checkpoint", "5"]
                               + flags, in: dir)
        let resumed = try CLI.run(["train", "text.txt", "--steps", "6", "--checkpoint", "lean.safetensors", "--resume"], in: dir)
        #expect(plain.status == 0 && lean.status == 0 && resumed.status == 0, "\(plain.stderr)\(lean.stderr)\(resumed.stderr)")
        let a = try SafeTensors.read(path: dir.appendingPathComponent("plain.safetensors").path)
        let b = try SafeTensors.read(path: dir.appendingPathComponent("lean.safetensors").path)
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        for (name, tensor) in a.tensors { #expect(b[name] == tensor, "\(name) differs") }
        #expect(b.metadata["training"]?.contains("\"checkpoint_interval\":5") == true, "\(b.metadata["training"] ?? "")")
        #expect(a.metadata["training"]?.contains("checkpoint_interval") == false)
        let bad = try CLI.run(["train", "text.txt", "--steps", "2", "--checkpoint", "bad.safetensors", "--bptt-checkpoint", "-1"],
                              in: dir)
        #expect(bad.status != 0 && bad.stderr.contains("--bptt-checkpoint"))
    }

    /// `lstm bench` runs: one JSON object per configuration, and `--products` times each product alone.
    @Test func benchRuns() throws {
        let dir = try CLI.temporaryFolder()
        let json = try CLI.run(["bench", "--json", "--configs", "stream-128", "--repeats", "1", "--stream-steps", "5"], in: dir)
        #expect(json.status == 0, "\(json.stderr)")
        let line = json.stdout.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init) ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(object?["config"] as? String == "stream-128" && (object?["step_ms"] as? Double ?? 0) > 0)
        let products = try CLI.run(["bench", "--products", "--configs", "small", "--repeats", "1", "--threads", "2"], in: dir)
        #expect(products.status == 0 && products.stdout.contains("per step  h·W_hhᵀ"), "\(products.stderr)")
        #expect(products.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }.count == 5)
    }

    @Test func gradcheckPassesAndCanFail() throws {
        let dir = try CLI.temporaryFolder()
        let ok = try CLI.run(["gradcheck", "--layers", "2", "--input", "3", "--hidden", "4", "--batch", "2", "--steps", "3",
                              "--gate", "hardsigmoid", "--cell", "identity"], in: dir)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        for name in ["weight_ih_l0", "weight_hh_l1", "bias_hh_l1", "x ", "h0", "c0"] { #expect(ok.stdout.contains(name)) }
        #expect(ok.stdout.contains("rel = |analytic − numeric|"))
        let variants = try CLI.run(["gradcheck", "--layers", "2", "--batch", "3", "--bidirectional", "--proj", "3",
                                    "--layer-norm", "--peepholes", "--lengths", "5,2,4", "--dropout", "0.2",
                                    "--recurrent-dropout", "0.2"], in: dir)
        #expect(variants.status == 0, "\(variants.stdout)\(variants.stderr)")
        for name in ["weight_hr_l1_reverse", "layer_norm_gates_l0", "weight_peephole_l1"] { #expect(variants.stdout.contains(name)) }
        let badClip = try CLI.run(["gradcheck", "--cell-clip", "-1"], in: dir)
        #expect(badClip.status != 0 && badClip.stderr.contains("--cell-clip"))
        let badLengths = try CLI.run(["gradcheck", "--lengths", "1,9"], in: dir)
        #expect(badLengths.status != 0 && badLengths.stderr.contains("--lengths"))
        // A threshold no finite-precision check can meet must fail with exit status 1.
        let strict = try CLI.run(["gradcheck", "--threshold", "1e-30"], in: dir)
        #expect(strict.status == 1)
        #expect(strict.stdout.contains("FAIL"))
    }

    @Test func inspectDescribesFiles() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(3000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        #expect(try CLI.run(["train", "text.txt", "--steps", "5", "--checkpoint", "m.safetensors"] + CLI.tiny, in: dir).status == 0)
        let r = try CLI.run(["inspect", "m.safetensors"], in: dir)
        #expect(r.status == 0)
        #expect(r.stdout.contains("lstm.weight_ih_l1") && r.stdout.contains("F32") && r.stdout.contains("(32, 8)"))
        #expect(r.stdout.contains("character model: vocabulary") && r.stdout.contains("training checkpoint at step 5"))
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LSTMKitTests/Fixtures/torch_lstm_l2.safetensors").path
        let torch = try CLI.run(["inspect", fixture], in: dir)
        #expect(torch.stdout.contains("nn.LSTM state_dict: input 7, hidden 6, 2 layers"))
        let bad = try CLI.run(["inspect", "text.txt"], in: dir)
        #expect(bad.status != 0 && bad.stderr.hasPrefix("lstm: error: text.txt: not a valid safetensors file"))
    }

    /// `--validation FILE`: the vocabulary covers both texts, the whole training text trains, the validation loss is
    /// the model's cross-entropy on FILE (what `lstm eval` reports), and a resume finds FILE again by itself.
    @Test func separateValidationFile() throws {
        let dir = try CLI.temporaryFolder()
        try CLI.text(2000).write(to: dir.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        try (CLI.text(400, seed: 8) + "§").write(to: dir.appendingPathComponent("b.txt"), atomically: true, encoding: .utf8)
        let flags = CLI.tiny + ["--validation", "b.txt"]
        let whole = try CLI.run(["train", "a.txt", "--steps", "10", "--checkpoint", "m.safetensors"] + flags, in: dir)
        #expect(whole.status == 0, "\(whole.stderr)")
        func count(_ name: String) throws -> Int {
            Array(try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).unicodeScalars).count
        }
        #expect(whole.stdout.contains("\(try count("a.txt")) training and \(try count("b.txt")) validation characters (b.txt)"),
                "\(whole.stdout)")
        let loaded = try CharacterModelFile.load(path: dir.appendingPathComponent("m.safetensors").path)
        #expect(loaded.vocabulary.id(of: "§") != nil, "the vocabulary covers the validation text")
        // The last validation loss is the model's loss on b.txt's streams, recomputed here by the library.
        let metrics = try String(contentsOf: dir.appendingPathComponent("m.metrics.jsonl"), encoding: .utf8)
        let last = try #require(metrics.split(separator: "\n").last { $0.contains("val_loss") })
        let logged = try #require((try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])?["val_loss"] as? Double)
        func tokens(_ name: String) throws -> [Int32] {
            try loaded.vocabulary.encode(Array(String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).unicodeScalars), source: name)
        }
        let streams = try TokenStreams(tokens: try tokens("a.txt")[...], validation: try tokens("b.txt")[...], batch: 3, steps: 8)
        let trainer = try Trainer(model: SequenceModel(loaded.model.sequenceConfiguration(), parameters: loaded.parameters),
                                  source: streams)
        let recomputed = try #require(try trainer.validationLoss())
        #expect(abs(logged - recomputed) <= 1e-12 * recomputed, "logged \(logged), recomputed \(recomputed)")
        let half = try CLI.run(["train", "a.txt", "--steps", "5", "--checkpoint", "h.safetensors"] + flags, in: dir)
        let rest = try CLI.run(["train", "a.txt", "--steps", "10", "--checkpoint", "h.safetensors", "--resume"] + CLI.tiny, in: dir)
        #expect(half.status == 0 && rest.status == 0, "\(half.stderr)\(rest.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("h.safetensors"))
                == Data(contentsOf: dir.appendingPathComponent("m.safetensors")))
    }

    /// Characters the model has never seen read as its unknown entry in eval, sample --prime and validation, and
    /// characters rarer than --min-char-count join them.
    @Test func unseenCharactersReadAsUnknown() throws {
        let dir = try CLI.temporaryFolder()
        try (CLI.text(3000) + "~").write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        try "the ✓ cell Ω keeps".write(to: dir.appendingPathComponent("alien.txt"), atomically: true, encoding: .utf8)
        let train = try CLI.run(["train", "text.txt", "--steps", "3", "--checkpoint", "m.safetensors", "--min-char-count", "2"]
                                + CLI.tiny, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        let loaded = try CharacterModelFile.load(path: dir.appendingPathComponent("m.safetensors").path)
        #expect(loaded.vocabulary.unknownID != nil)
        #expect(loaded.vocabulary.id(of: "~") == nil, "'~' occurs once, below --min-char-count 2")
        let eval = try CLI.run(["eval", "m.safetensors", "alien.txt", "--json"], in: dir)
        #expect(eval.status == 0, "\(eval.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        #expect(object["unknown_characters"] as? Int == 2)
        let text = try CLI.run(["eval", "m.safetensors", "alien.txt"], in: dir)
        #expect(text.stdout.contains("2 not in the model's vocabulary"), "\(text.stdout)")
        let sample = try CLI.run(["sample", "m.safetensors", "--prime", "Ω the", "--length", "5"], in: dir)
        #expect(sample.status == 0 && sample.stdout.hasPrefix("Ω the"), "\(sample.stderr)")
    }

    /// `lstm trace`: the JSON contract's keys, the text's sections, a self-contained HTML page.
    @Test func traceInEveryFormat() throws {
        let dir = try CLI.temporaryFolder()
        let json = try CLI.run(["trace", "--format", "json", "--steps", "4", "--linear"], in: dir)
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        for key in ["weights", "inputs", "targets", "h0", "c0", "activations", "loss", "forward", "backward", "gradients"] {
            #expect(object[key] != nil, "\(key)")
        }
        let forward = try #require(object["forward"] as? [[String: Any]])
        let backward = try #require(object["backward"] as? [[String: Any]])
        #expect(forward.count == 4 && backward.count == 4)
        #expect(Set(forward[0].keys) == ["x", "h_prev", "I", "Z", "i", "f", "g", "o", "S", "h"])
        #expect(Set(backward[0].keys) == ["dh", "dS_from_h", "dS_from_next", "dS", "di", "df", "dg", "do", "dZ", "dI", "dx", "dh_prev", "dW"])
        #expect((object["activations"] as? [String: String]) == ["gate": "identity", "cell": "identity"])
        let weights = try #require(object["weights"] as? [String: Any])
        #expect((weights["W"] as? [[Double]])?.count == 8 && (weights["W"] as? [[Double]])?[0].count == 4)
        let text = try CLI.run(["trace"], in: dir)
        #expect(text.status == 0 && text.stdout.contains("δS through S_{t+1}") && text.stdout.contains("largest |difference|"))
        let html = try CLI.run(["trace", "--format", "html", "--output", "t.html"], in: dir)
        #expect(html.status == 0, "\(html.stderr)")
        let page = try String(contentsOf: dir.appendingPathComponent("t.html"), encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.contains("<svg") && page.contains("Totals against central differences"))
        #expect(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "no network, nothing loaded")
        let bad = try CLI.run(["trace", "--hidden", "0"], in: dir)
        #expect(bad.status != 0 && bad.stderr.hasPrefix("lstm: error: --hidden must be 1 to 64"))
    }
}
