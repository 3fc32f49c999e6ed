import ArgumentParser
import Foundation
import LSTMKit

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Generate text from a character model, printing characters as they are generated."
    )

    @Argument(help: "A character-model checkpoint (.safetensors).") var checkpoint: String
    @Option(help: "Text to start from (fed through the model first, and printed).") var prime = "\n"
    @Option(help: "Number of characters to generate.") var length = 500
    @Option(help: "Softmax temperature: below 1 is more conservative, above 1 more surprising.") var temperature = 1.0
    @Option(help: "Sample only among the K most likely characters (0: all).") var topK = 0
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Always take the most likely character (no randomness).") var argmax = false

    func run() throws {
        try reportingFailures {
            guard length >= 0 else { throw Failure(message: "--length must be 0 or more, got \(length)") }
            guard argmax || (temperature > 0 && temperature.isFinite) else {
                throw Failure(message: "--temperature must be a positive number, got \(temperature)")
            }
            guard topK >= 0 else { throw Failure(message: "--top-k must be 0 (all) or more, got \(topK)") }
            let loaded = try CharacterModelFile.load(path: checkpoint)
            let primeScalars = Array((prime.isEmpty ? "\n" : prime).unicodeScalars)
            let primeTokens = try loaded.vocabulary.encode(primeScalars, source: "--prime")
            var sampler = CharacterSampler(model: loaded.model, parameters: loaded.parameters,
                                           temperature: argmax ? 0 : temperature, topK: topK, seed: seed)
            let out = FileHandle.standardOutput
            out.write(Data(String(String.UnicodeScalarView(primeScalars)).utf8))
            var token = sampler.feed(primeTokens)
            for _ in 0..<length {
                let scalar = loaded.vocabulary.scalars[Int(token)]
                out.write(Data(String(scalar).utf8))
                token = sampler.feed([token])
            }
            out.write(Data("\n".utf8))
        }
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Cross-entropy, bits per character and perplexity of a character model on a text.",
        discussion: "The file is read as one stream from a zero state; every character but the first is predicted from those before it."
    )

    @Argument(help: "A character-model checkpoint (.safetensors).") var checkpoint: String
    @Argument(help: "UTF-8 text to evaluate on; - for standard input.") var file: String
    @Flag(help: "Print one JSON object with cross_entropy, bits_per_character and perplexity.") var json = false
    @Option(help: "Threads for the matrix products (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        try reportingFailures {
            let loaded = try CharacterModelFile.load(path: checkpoint)
            let corpus = try readCorpus(file)
            guard corpus.scalars.count >= 2 else {
                throw Failure(message: "\(corpus.source) has \(corpus.scalars.count) character; at least 2 are needed to predict one")
            }
            let tokens = try loaded.vocabulary.encode(corpus.scalars, source: corpus.source)
            guard threads >= 1 else { throw Failure(message: "--threads must be at least 1, got \(threads)") }
            let result = loaded.model.crossEntropy(of: tokens, parameters: loaded.parameters, threads: threads)
            let bits = result.mean / log(2.0)
            let perplexity = exp(result.mean)
            if json {
                let object: [String: Double] = ["cross_entropy": result.mean, "bits_per_character": bits, "perplexity": perplexity]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                say(String(decoding: data, as: UTF8.self))
            } else {
                say("\(corpus.source): \(result.count) characters predicted")
                say("cross-entropy \(format(result.mean, 4)) nats/char, \(format(bits, 4)) bits/char, perplexity \(format(perplexity, 3))")
            }
        }
    }
}
