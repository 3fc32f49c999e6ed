import Foundation
import Testing

/// Under `-O` a failing `precondition` traps without its message. The layer-level checks keep theirs and the
/// model-level APIs throw: a release-built `lstm` making a wrong-shape call says what was wrong.
@Suite(.serialized) struct ReleaseShapeErrorTests {
    static let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        .standardized

    /// Builds (or brings up to date) the release `lstm` in its own scratch folder and returns its path.
    static func releaseExecutable() throws -> URL {
        let scratch = package.appendingPathComponent(".build-release-check")
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        build.arguments = ["swift", "build", "-c", "release", "--product", "lstm", "--scratch-path", scratch.path]
        build.currentDirectoryURL = package
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("release-build-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        build.standardOutput = handle
        build.standardError = handle
        try build.run()
        build.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        guard build.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "release build failed: \(output.suffix(2000))"])
        }
        return scratch.appendingPathComponent("release/lstm")
    }

    @Test func wrongShapesAreNamedInReleaseBuilds() throws {
        let lstm = try Self.releaseExecutable()
        let dir = try CLI.temporaryFolder()
        func run(_ call: String) throws -> CLI.Result {
            let process = Process()
            process.executableURL = lstm
            process.arguments = ["shape-check", call]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = Pipe()
            process.currentDirectoryURL = dir
            try process.run()
            let data = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return CLI.Result(status: process.terminationStatus, stdout: "", stderr: String(decoding: data, as: UTF8.self))
        }
        let forward = try run("lstm-forward")
        #expect(forward.status != 0)
        #expect(forward.stderr.contains("LSTM.forward: x has 5 values, expected T·B·I = 6"), "\(forward.stderr)")
        let linear = try run("linear-forward")
        #expect(linear.status != 0)
        #expect(linear.stderr.contains("Linear.forward: got 7 values of x, expected rows × inputSize = 2 × 3 = 6"), "\(linear.stderr)")
        let model = try run("model-predict")
        #expect(model.status == 1)
        #expect(model.stderr == "lstm: error: shape mismatch: the batch has 1 features per step, expected 2 (the model's input)\n",
                "\(model.stderr)")
    }
}
