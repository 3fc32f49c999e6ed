import Foundation
import Testing
import LSTMKit

/// `mpirun -np N lstm train` over TCP (`--mca btl tcp,self`, the path between machines): the checkpoints depend
/// on `--shards` and the seed, not on the number of processes. Needs Open MPI's `mpirun` (`.ci/run` installs
/// `openmpi-bin`); without it these tests fail under CI and are skipped elsewhere.
@Suite(.serialized) struct DataParallelCLITests {
    static let mpirun: String? = {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(folder)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    /// mpirun's path, or nil (a recorded failure under CI) when it is missing.
    static func requireMPI() -> String? {
        if let mpirun { return mpirun }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record("mpirun not found: install Open MPI (apt-get install openmpi-bin), as .ci/run does")
        } else {
            print("DataParallelCLITests: mpirun not found; skipped (install openmpi-bin to run them)")
        }
        return nil
    }

    static func launcherArguments(_ np: Int) -> [String] {
        ["-np", "\(np)", "--oversubscribe", "--mca", "btl", "tcp,self"] + (getuid() == 0 ? ["--allow-run-as-root"] : [])
    }

    static func process(_ mpirun: String, np: Int, _ arguments: [String], in folder: URL) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = launcherArguments(np) + [CLI.executable.path] + arguments
        process.currentDirectoryURL = folder
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        return process
    }

    /// Runs `lstm arguments` under `mpirun -np np`; the exit status and standard error.
    static func run(_ mpirun: String, np: Int, _ arguments: [String], in folder: URL) throws -> (status: Int32, stderr: String) {
        let process = process(mpirun, np: np, arguments, in: folder)
        let errors = folder.appendingPathComponent("mpirun-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: AtomicFile.read(path: errors.path) ?? [], as: UTF8.self)
        return (process.terminationStatus, text)
    }

    /// One process running `lstm first` and one `lstm second` in one job (MPMD: `mpirun -np 1 A : -np 1 B`).
    static func runTwo(_ mpirun: String, _ first: [String], _ second: [String], in folder: URL) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = launcherArguments(1) + [CLI.executable.path] + first + [":", "-np", "1", CLI.executable.path] + second
        process.currentDirectoryURL = folder
        process.standardOutput = FileHandle.nullDevice
        let errors = folder.appendingPathComponent("mpmd-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: AtomicFile.read(path: errors.path) ?? [], as: UTF8.self))
    }

    static let flags = ["train", "corpus.txt", "--hidden", "16", "--layers", "2", "--embedding", "8", "--seq-length", "8",
                        "--batch", "4", "--eval-every", "3", "--seed", "5", "--threads", "1"]
    /// Dropout too, so that each shard's own masks are covered (a resumed run takes the model from its checkpoint).
    static let fresh = flags + ["--dropout", "0.1"]

    static func folder() throws -> URL {
        let f = try CLI.temporaryFolder()
        try CLI.text(6000).write(to: f.appendingPathComponent("corpus.txt"), atomically: true, encoding: .utf8)
        return f
    }

    static func bytes(_ folder: URL, _ name: String) -> [UInt8]? { AtomicFile.read(path: folder.appendingPathComponent(name).path) }

    /// Whether two files of `folder` both exist and hold the same bytes.
    static func same(_ folder: URL, _ a: String, _ b: String) -> Bool {
        guard let x = bytes(folder, a), let y = bytes(folder, b) else { return false }
        return x == y
    }

    @Test func checkpointsAreTheSameBytesOnOneAndTwoProcesses() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let single = try CLI.run(Self.fresh + ["--steps", "6", "--shards", "2", "--checkpoint", "single.safetensors"], in: f)
        #expect(single.status == 0, "\(single.stderr)")
        let one = try Self.run(mpirun, np: 1, Self.fresh + ["--steps", "6", "--shards", "2", "--checkpoint", "np1.safetensors"], in: f)
        #expect(one.status == 0, "\(one.stderr)")
        // --shards defaults to the process count.
        let two = try Self.run(mpirun, np: 2, Self.fresh + ["--steps", "6", "--checkpoint", "np2.safetensors"], in: f)
        #expect(two.status == 0, "\(two.stderr)")
        #expect(Self.same(f, "np1.safetensors", "single.safetensors"))
        #expect(Self.same(f, "np2.safetensors", "single.safetensors"))
        #expect(Self.same(f, "np2.best.safetensors", "single.best.safetensors"))
        #expect(Self.bytes(f, "np2.metrics.jsonl")?.count ?? 0 > 0)
        // Resuming with another process count continues bit for bit: 3 steps on 2 processes, 3 more on 1.
        let first = try Self.run(mpirun, np: 2, Self.fresh + ["--steps", "3", "--checkpoint", "r.safetensors"], in: f)
        #expect(first.status == 0, "\(first.stderr)")
        let rest = try CLI.run(Self.flags + ["--steps", "6", "--resume", "--checkpoint", "r.safetensors"], in: f)
        #expect(rest.status == 0, "\(rest.stderr)")
        #expect(Self.same(f, "r.safetensors", "single.safetensors"))
        // The saved shard count is the default on resuming; another one is refused.
        let other = try CLI.run(Self.flags + ["--steps", "9", "--resume", "--shards", "4", "--checkpoint", "r.safetensors"], in: f)
        #expect(other.status != 0 && other.stderr.contains("was trained with --shards 2"), "\(other.stderr)")
    }

    @Test func aShardCountThatTheProcessesCannotShareIsRefused() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let r = try Self.run(mpirun, np: 2, Self.fresh + ["--steps", "2", "--shards", "3", "--checkpoint", "m.safetensors"], in: f)
        #expect(r.status != 0)
        #expect(r.stderr.components(separatedBy: "lstm: error:").count == 2, "one line from process 0: \(r.stderr)")
        #expect(r.stderr.contains("2 processes cannot share 3 gradient shards"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.appendingPathComponent("m.safetensors").path))
    }

    @Test func forecastersAreTheSameBytesOnOneAndTwoProcesses() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let csv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/airpassengers.csv").path
        let flags = ["forecast", "train", csv, "--target", "passengers", "--members", "2", "--steps", "40",
                     "--hidden", "8", "--threads", "1"]
        let single = try CLI.run(flags + ["--shards", "2", "--checkpoint", "f1.safetensors"], in: f)
        #expect(single.status == 0, "\(single.stderr)")
        let two = try Self.run(mpirun, np: 2, flags + ["--checkpoint", "f2.safetensors"], in: f)
        #expect(two.status == 0, "\(two.stderr)")
        #expect(Self.same(f, "f1.safetensors", "f2.safetensors"))
        #expect(Self.same(f, "f1.best.safetensors", "f2.best.safetensors"))
    }

    /// Two processes started with different flags (MPMD: `mpirun -np 1 A : -np 1 B`) refuse to start.
    @Test func processesStartedWithDifferentFlagsRefuseToStart() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let common = ["--steps", "2", "--checkpoint", "m.safetensors"]
        let (status, text) = try Self.runTwo(mpirun, Self.fresh + common + ["--lr", "0.002"],
                                             Self.fresh + common + ["--lr", "0.003"], in: f)
        #expect(status != 0)
        #expect(text.contains("process 1 was started with other options than process 0"), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: f.appendingPathComponent("m.safetensors").path))
    }

    /// Two processes resuming checkpoints that differ in one parameter value (and nothing else) refuse to go on:
    /// the parameter hash every process compares at the start, and every 50 steps, tells them apart.
    @Test func processesWithDifferentParametersRefuseToGoOn() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let first = try CLI.run(Self.fresh + ["--steps", "2", "--shards", "2", "--checkpoint", "a.safetensors"], in: f)
        #expect(first.status == 0, "\(first.stderr)")
        var file = try SafeTensors.read(path: f.appendingPathComponent("a.safetensors").path)
        let k = try #require(file.tensors.firstIndex { $0.name == "head.bias" })
        var values = try #require(file.tensors[k].tensor.floats())
        values[0] = values[0].nextUp
        file.tensors[k].tensor = SafeTensors.Tensor(values, shape: file.tensors[k].tensor.shape)
        try SafeTensors.write(file, path: f.appendingPathComponent("b.safetensors").path)
        let common = Self.flags + ["--steps", "4", "--resume"]
        let (status, text) = try Self.runTwo(mpirun, common + ["--checkpoint", "a.safetensors"],
                                             common + ["--checkpoint", "b.safetensors"], in: f)
        #expect(status != 0)
        #expect(text.contains("process 1 was started with other parameters than process 0"), "\(text)")
    }

    @Test func theReductionBenchRunsUnderMPI() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let process = Self.process(mpirun, np: 2, ["bench", "--allreduce", "--repeats", "1", "--threads", "1"], in: f)
        let output = f.appendingPathComponent("bench.out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: AtomicFile.read(path: output.path) ?? [], as: UTF8.self)
        #expect(process.terminationStatus == 0)
        for line in ["character: 902288 parameters", "charrnn: 3320385 parameters", "large: 6824448 parameters"] {
            #expect(text.contains(line), "\(text)")
        }
        #expect(text.components(separatedBy: "ms per step").count == 6, "one line per model, from process 0 only: \(text)")
    }

    /// SIGKILL to one process mid-run: the job ends (non-zero, no hang), the checkpoint is whole, and resuming it
    /// on one process gives the bytes of an uninterrupted run.
    @Test func aKilledProcessStopsTheJobAndTheCheckpointResumes() throws {
        guard let mpirun = Self.requireMPI() else { return }
        let f = try Self.folder()
        let steps = ["--steps", "400", "--eval-every", "1"]
        let job = Self.process(mpirun, np: 2, Self.fresh + steps + ["--checkpoint", "k.safetensors"], in: f)
        job.standardError = FileHandle.nullDevice
        try job.run()
        let checkpoint = f.appendingPathComponent("k.safetensors").path
        let started = Date()
        while !FileManager.default.fileExists(atPath: checkpoint), job.isRunning, Date().timeIntervalSince(started) < 120 {
            usleep(20_000)
        }
        usleep(300_000)
        let ranks = Self.children(of: job.processIdentifier)
        try #require(ranks.count == 2, "found processes \(ranks)")
        kill(ranks[1], SIGKILL)
        let killed = Date()
        while job.isRunning, Date().timeIntervalSince(killed) < 60 { usleep(20_000) }
        let seconds = Date().timeIntervalSince(killed)
        #expect(!job.isRunning, "mpirun still running \(seconds) s after the kill")
        if job.isRunning { job.terminate(); return }
        #expect(job.terminationStatus != 0)
        print("DataParallelCLITests: killed process 1; mpirun exited with \(job.terminationStatus) after \(String(format: "%.2f", seconds)) s")
        let file = try SafeTensors.read(path: checkpoint)
        let state = try JSONSerialization.jsonObject(with: Data(try #require(file.metadata["state"]).utf8)) as? [String: Any]
        let step = try #require(state?["step"] as? Int)
        #expect(step >= 1 && step < 400)
        let target = ["--steps", "\(step + 3)", "--eval-every", "1"]
        let resumed = try CLI.run(Self.flags + target + ["--resume", "--checkpoint", "k.safetensors"], in: f)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let straight = try CLI.run(Self.fresh + target + ["--shards", "2", "--checkpoint", "u.safetensors"], in: f)
        #expect(straight.status == 0, "\(straight.stderr)")
        #expect(Self.same(f, "k.safetensors", "u.safetensors"), "resumed at step \(step)")
    }

    /// The `lstm` processes mpirun started (its children, by /proc).
    static func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = AtomicFile.read(path: "/proc/\(pid)/stat").map({ String(decoding: $0, as: UTF8.self) }),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent && stat.contains("(lstm)")
        }.sorted()
    }
}
