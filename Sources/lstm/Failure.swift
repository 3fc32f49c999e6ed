import ArgumentParser
import Foundation
import LSTMKit

/// A user-facing failure: printed as one line on standard error, then the process exits with `code`.
struct Failure: Error {
    var message: String
    var code: Int32 = 1
}

/// Runs `body`, turning any error into one line on stderr and a non-zero exit.
func reportingFailures(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch where error is Failure || error is LSTMKitError || error is SafeTensorsError {
        if !isSecondaryProcess { FileHandle.standardError.write(Data("lstm: error: \(describe(error))\n".utf8)) }
        throw ExitCode((error as? Failure)?.code ?? 1)
    }
}

/// Reads a UTF-8 text from a path, from standard input ("-"), or the bundled corpus (nil).
/// Peak bytes of memory per byte of corpus while it is read and encoded: the file's bytes (twice, briefly), four per
/// character as Unicode scalars and four as tokens (ASCII text: one character per byte).
let corpusBytesPerByte = 10.0

/// A text read for training or evaluation, and where it came from (for messages).
typealias CorpusText = (scalars: [Unicode.Scalar], source: String)

func readCorpus(_ path: String?) throws -> CorpusText {
    let bytes: [UInt8]
    let source: String
    switch path {
    case nil:
        guard let url = bundledCorpusURL(), let data = AtomicFile.read(path: url.path) else {
            throw Failure(message: "the bundled default corpus is missing next to the lstm executable; give a text file: lstm train FILE")
        }
        bytes = data
        source = "the bundled corpus"
    case "-"?:
        // Read in pieces, so that an endless or enormous stream fails with a message instead of exhausting memory.
        let limit = MemoryBudget.availableBytes() * 0.9 / corpusBytesPerByte
        guard let data = AtomicFile.read(fileDescriptor: 0, maxBytes: Int(limit)) else {
            throw Failure(message: "standard input is unreadable or longer than the \(MemoryBudget.describe(limit)) of text this machine's memory can hold while training; give a smaller text")
        }
        bytes = data
        source = "standard input"
    case let path?:
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(message: "cannot read \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw Failure(message: "cannot read \(path): it is a folder; give a text file") }
        // The size through symlinks, checked before reading; the read itself stops at the budget too, for files
        // whose size says nothing (a FIFO, /dev/zero).
        let limit = MemoryBudget.availableBytes() * 0.9 / corpusBytesPerByte
        if let size = MemoryBudget.fileSize(path) {
            try MemoryBudget.require(size * corpusBytesPerByte, for: "the \(MemoryBudget.describe(size)) text \(path)",
                                     hint: "give a smaller text (or split it)")
        }
        guard access(path, R_OK) == 0 else { throw Failure(message: "cannot read \(path): permission denied") }
        guard let data = AtomicFile.read(path: path, maxBytes: Int(limit)) else {
            throw Failure(message: "cannot read \(path): unreadable, or longer than the \(MemoryBudget.describe(limit)) of text this machine's memory can hold while training; give a smaller text")
        }
        bytes = data
        source = path
    }
    guard !bytes.isEmpty else { throw Failure(message: "\(source) is empty; give a text with at least a few thousand characters") }
    let scalars = try Corpus.decode(bytes, source: source)
    guard !scalars.isEmpty else { throw Failure(message: "\(source) has no characters") }
    return (scalars, source)
}

/// Where SwiftPM puts the executable's resources: a bundle folder beside the binary.
func bundledCorpusURL() -> URL? {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var candidates: [URL] = []
    let folder = Bundle.main.executableURL?.deletingLastPathComponent() ?? executable.deletingLastPathComponent()
    for dir in [folder, executable.deletingLastPathComponent()] {
        candidates.append(dir.appendingPathComponent("LSTMKit_lstm.resources/default-corpus.txt"))
        candidates.append(dir.appendingPathComponent("LSTMKit_lstm.bundle/Contents/Resources/default-corpus.txt"))
        candidates.append(dir.appendingPathComponent("LSTMKit_lstm.bundle/default-corpus.txt"))
    }
    return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
}
