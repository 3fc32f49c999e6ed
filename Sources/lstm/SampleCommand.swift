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
    @OptionGroup var random: SeedOption
    @Flag(help: "Always take the most likely character (no randomness).") var argmax = false

    func validate() throws {
        guard length >= 0 else { throw ValidationError("--length must be 0 or more, got \(length)") }
        guard argmax || (temperature > 0 && temperature.isFinite) else {
            throw ValidationError("--temperature must be a positive number, got \(temperature)")
        }
        guard topK >= 0 else { throw ValidationError("--top-k must be 0 (all) or more, got \(topK)") }
    }

    func run() throws {
        try reportingFailures {
            let loaded = try CharacterModelFile.load(path: checkpoint)
            let primeScalars = Array((prime.isEmpty ? "\n" : prime).unicodeScalars)
            let primeTokens = try loaded.vocabulary.encode(primeScalars, source: "--prime")
            var sampler = CharacterSampler(model: loaded.model, parameters: loaded.parameters,
                                           temperature: argmax ? 0 : temperature, topK: topK, seed: random.seed,
                                           excluding: loaded.vocabulary.unknownID)
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
