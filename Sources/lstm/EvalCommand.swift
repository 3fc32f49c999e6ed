import ArgumentParser
import Foundation
import LSTMKit

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Cross-entropy, bits per character and perplexity of a character model on a text.",
        discussion: "The file is read as one stream from a zero state; every character but the first is predicted from those before it."
    )

    @Argument(help: "A character-model checkpoint (.safetensors).") var checkpoint: String
    @Argument(help: "UTF-8 text to evaluate on; - for standard input.") var file: String
    @Flag(help: "Print one JSON object with cross_entropy, bits_per_character, perplexity and unknown_characters.")
    var json = false
    @OptionGroup var runtime: ThreadOptions

    func run() throws {
        try reportingFailures {
            let loaded = try CharacterModelFile.load(path: checkpoint)
            let corpus = try readCorpus(file)
            guard corpus.scalars.count >= 2 else {
                throw Failure(message: "\(corpus.source) has \(corpus.scalars.count) character; at least 2 are needed to predict one")
            }
            // Characters the model has never seen read as its unknown entry (a model without one refuses them).
            let (tokens, unknown) = try loaded.vocabulary.encodeCountingUnknown(corpus.scalars, source: corpus.source)
            let result = try loaded.model.crossEntropy(of: tokens, parameters: loaded.parameters, threads: runtime.threads)
            let bits = result.mean / log(2.0)
            let perplexity = exp(result.mean)
            if json {
                let object: [String: Any] = ["cross_entropy": result.mean, "bits_per_character": bits, "perplexity": perplexity,
                                             "unknown_characters": unknown]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                say(String(decoding: data, as: UTF8.self))
            } else {
                say("\(corpus.source): \(result.count) characters predicted"
                    + (unknown > 0 ? "; \(unknown) not in the model's vocabulary, read as its unknown character" : ""))
                say("cross-entropy \(format(result.mean, 4)) nats/char, \(format(bits, 4)) bits/char, perplexity \(format(perplexity, 3))")
            }
        }
    }
}
