import ArgumentParser
import Foundation
import LSTMKit

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List a safetensors file's tensors and metadata, and say what model it holds."
    )

    @Argument(help: "A .safetensors file (an LSTMKit checkpoint or a PyTorch state_dict).") var file: String

    func run() throws {
        try reportingFailures {
            let contents: SafeTensors.File
            do { contents = try SafeTensors.read(path: file) } catch { throw Failure(message: "\(file): \(String(describing: error))") }
            say("\(file): \(contents.tensors.count) tensors")
            let width = max(6, contents.tensors.map(\.name.count).max() ?? 0)
            say(pad("name", width) + "  dtype  shape")
            var total = 0
            for (name, tensor) in contents.tensors {
                say(pad(name, width) + "  " + pad(tensor.dtype.rawValue, 5) + "  (" + tensor.shape.map(String.init).joined(separator: ", ") + ")")
                total += tensor.elementCount
            }
            if !contents.metadata.isEmpty {
                say("metadata:")
                for key in contents.metadata.keys.sorted() {
                    let value = contents.metadata[key]!
                    say("  \(key): " + (value.count > 200 ? String(value.prefix(200)) + "… (\(value.count) characters)" : value))
                }
            }
            say("model: " + describe(contents, total: total))
        }
    }

    private func describe(_ contents: SafeTensors.File, total: Int) -> String {
        if let loaded = try? CharacterModelFile.load(contents, source: file) {
            let c = loaded.model.configuration
            let step = contents.metadata["state"].flatMap { try? JSONValue.parse(Array($0.utf8)) }?["step"]?.exactInteger
            let training = step.map { ", training checkpoint at step \($0)" } ?? ""
            return "character model: vocabulary \(c.vocabularySize), embedding \(c.embedding), \(c.layers)-layer LSTM with hidden \(c.hidden)\(loaded.model.lstm.variantDescription), \(loaded.model.layout.count) parameters\(training)"
        }
        for prefix in ["", "lstm.", "rnn."] {
            if let (lstm, parameters) = try? LSTM.load(from: contents, prefix: prefix, as: Float.self) {
                return "nn.LSTM state_dict\(prefix.isEmpty ? "" : " under \(prefix)"): input \(lstm.inputSize), hidden \(lstm.hiddenSize), \(lstm.layerCount) layers\(lstm.variantDescription), \(parameters.storage.count) parameters"
            }
        }
        return "not a model LSTMKit recognises (\(total) values in all)"
    }
}

extension LSTM {
    /// ", bidirectional, projection 16, layer norm, peepholes, cell clip 3" — the options that change the tensors
    /// or the math, empty for a plain LSTM.
    var variantDescription: String {
        let a = layers[0].activations
        var parts: [String] = []
        if bidirectional { parts.append("bidirectional") }
        if projectionSize > 0 { parts.append("projection \(projectionSize)") }
        if a.layerNorm { parts.append("layer norm") }
        if a.peepholes { parts.append("peepholes") }
        if let clip = a.cellClip { parts.append("cell clip \(clip)") }
        return parts.map { ", " + $0 }.joined()
    }
}
