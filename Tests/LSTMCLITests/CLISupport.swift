import Foundation
import LSTMKit

/// Runs the `lstm` executable that SwiftPM built beside the test bundle.
struct CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static let executable: URL = {
        var folders: [URL] = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                              Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        for bundle in Bundle.allBundles { folders.append(bundle.bundleURL.deletingLastPathComponent()) }
        for folder in folders {
            let candidate = folder.appendingPathComponent("lstm")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        fatalError("lstm executable not found next to the tests (looked in \(folders.map(\.path)))")
    }()

    static func run(_ arguments: [String], in directory: URL, input: Data? = nil,
                    environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        // Output goes to files, so a chatty child can never block on a full pipe.
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("lstm-out-\(UUID().uuidString)")
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("lstm-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        try out.close()
        try err.close()
        // AtomicFile.read, not Data(contentsOf:): Foundation leaks a buffer reading an empty file (found by ASan).
        let outData = AtomicFile.read(path: outURL.path) ?? [], errData = AtomicFile.read(path: errURL.path) ?? []
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A fresh temporary folder.
    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lstm-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A deterministic text of about `characters` characters with some structure to learn.
    static func text(_ characters: Int, seed: UInt64 = 3) -> String {
        var random = RandomSource(seed: seed)
        let words = ["the", "cell", "keeps", "state", "gate", "forgets", "input", "output", "and", "a", "long", "memory"]
        var s = ""
        while s.count < characters {
            s += words[random.index(below: words.count)]
            s += random.index(below: 8) == 0 ? ".\n" : " "
        }
        return s
    }

    /// Small, fast training flags shared by the tests.
    static let tiny = ["--hidden", "8", "--layers", "2", "--embedding", "4", "--seq-length", "8", "--batch", "3",
                       "--eval-every", "5", "--seed", "7"]
}
