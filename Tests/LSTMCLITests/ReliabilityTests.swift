import Foundation
import Testing
import LSTMKit

/// Training that is killed, diverges, or is given inputs too large for the machine: nothing saved is lost, and the
/// failure is one clear line.
@Suite(.serialized) struct ReliabilityTests {
    /// SIGKILL at seeded random moments (a checkpoint is written at every step, so many kills land inside a write):
    /// after each kill the checkpoint loads, and the next run resumes from it.
    @Test func killedAtRandomMomentsTheCheckpointAlwaysLoadsAndResumes() throws {
        let dir = try CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try CLI.text(4000).write(to: dir.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let checkpoint = dir.appendingPathComponent("k.safetensors").path
        var random = RandomSource(seed: 2024)
        var kills = 0, loadedAfterKill = 0
        var lastStep = 0
        // LSTM_KILL_ROUNDS=N for a longer local run (the closing note of the reliability issue used 200).
        let rounds = ProcessInfo.processInfo.environment["LSTM_KILL_ROUNDS"].flatMap { Int($0) } ?? 10
        for _ in 0..<rounds {
            let exists = FileManager.default.fileExists(atPath: checkpoint)
            let process = Process()
            process.executableURL = CLI.executable
            process.currentDirectoryURL = dir
            process.arguments = ["train", "text.txt", "--checkpoint", "k.safetensors", "--steps", "1000000",
                                 "--hidden", "8", "--layers", "2", "--embedding", "4", "--seq-length", "8",
                                 "--batch", "3", "--eval-every", "1", "--seed", "7"] + (exists ? ["--resume"] : [])
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(150_000 + random.index(below: 600_000)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "the run ended before it was killed")
            kills += 1
            guard FileManager.default.fileExists(atPath: checkpoint) else { continue }
            // The checkpoint that survived is a whole one, and it is never behind the previous survivor.
            let loaded = try CharacterModelFile.load(path: checkpoint)
            let file = try SafeTensors.read(path: checkpoint)
            let tokens = try loaded.vocabulary.encode(Array(CLI.text(4000).unicodeScalars), source: "text")
            let trainer = try CharacterTrainer(resuming: file, tokens: tokens, source: checkpoint)
            #expect(trainer.step >= lastStep)
            lastStep = trainer.step
            loadedAfterKill += 1
        }
        #expect(kills == rounds && loadedAfterKill >= rounds - 2, "kills \(kills), loaded \(loadedAfterKill)")
        print("killed \(kills) times, the checkpoint loaded and resumed after \(loadedAfterKill); last step \(lastStep)")
        // And it still trains to the end; the temporary files of killed writers are gone.
        let r = try CLI.run(["train", "text.txt", "--checkpoint", "k.safetensors", "--resume", "--steps", "\(lastStep + 3)",
                             "--eval-every", "1"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// A divergent update stops the run in the step it happens, naming it, with the saved checkpoint untouched;
    /// `--on-nonfinite skip` does not skip it (the model is spoilt), and a bad policy name is refused.
    @Test func divergenceStopsAndKeepsTheCheckpoint() throws {
        let f = try CLIErrorTests.Fixture()
        for policy in ["stop", "skip"] {
            try f.expectFailure(["train", "text.txt", "--checkpoint", "m.safetensors", "--force", "--optimizer", "sgd",
                                 "--lr", "1e300", "--clip", "0", "--on-nonfinite", policy] + CLI.tiny,
                                mentioning: "training diverged: step 1")
        }
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--on-nonfinite", "ignore"],
                            mentioning: "--on-nonfinite")
    }

    /// Inputs too large for memory fail at once, before anything is read or allocated.
    @Test func inputsTooLargeForMemoryFailEarly() throws {
        let f = try CLIErrorTests.Fixture()
        // A 200 GB (sparse) corpus: refused from its size, without reading it.
        let huge = f.dir.appendingPathComponent("huge.txt")
        _ = FileManager.default.createFile(atPath: huge.path, contents: nil)
        let handle = try FileHandle(forWritingTo: huge)
        try handle.truncate(atOffset: 200_000_000_000)
        try handle.close()
        let start = Date()
        try f.expectFailure(["train", "huge.txt", "--checkpoint", "x.safetensors"], mentioning: "of memory")
        try f.expectFailure(["eval", "m.safetensors", "huge.txt"], mentioning: "of memory")
        // Through a symlink too, and a file whose size says nothing (/dev/zero) stops at the budget.
        try FileManager.default.createSymbolicLink(at: f.dir.appendingPathComponent("link.txt"), withDestinationURL: huge)
        try f.expectFailure(["train", "link.txt", "--checkpoint", "x.safetensors"], mentioning: "of memory")
        let zero = try CLI.run(["train", "/dev/zero", "--checkpoint", "x.safetensors"], in: f.dir,
                               environment: ["LSTM_MEMORY_LIMIT": "50000000"])
        #expect(zero.status != 0 && zero.stderr.contains("longer than") && zero.stderr.split(separator: "\n").count == 1,
                "\(zero.stderr)")
        #expect(Date().timeIntervalSince(start) < 30)
        // Sizes that overflow Int arithmetic are refused, not trapped on.
        try f.expectFailure(["train", "text.txt", "--checkpoint", "x.safetensors", "--hidden", "2000000000"],
                            mentioning: "smaller model")
        // A model, batch and window too large for the memory there is (here: a 100 MB budget).
        let r = try CLI.run(["train", "text.txt", "--checkpoint", "x.safetensors", "--hidden", "1024"], in: f.dir,
                            environment: ["LSTM_MEMORY_LIMIT": "100000000"])
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("lstm: error: training --hidden 1024") && r.stderr.contains("of memory"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.dir.appendingPathComponent("x.safetensors").path))
        // The same run fits when the budget allows it.
        let ok = try CLI.run(["train", "text.txt", "--checkpoint", "y.safetensors", "--steps", "1"] + CLI.tiny, in: f.dir,
                             environment: ["LSTM_MEMORY_LIMIT": "100000000"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}
