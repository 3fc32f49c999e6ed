import Foundation
import Testing
@testable import LSTMKit

/// The unknown entry: unseen and rare characters map to U+FFFD's id; vocabularies without it (older checkpoints)
/// refuse unseen characters as they always did.
struct VocabularyTests {
    @Test func unseenAndRareCharactersMapToTheUnknownEntry() throws {
        let text = Array("aaabbbc\u{FFFD}".unicodeScalars)
        let vocabulary = try Vocabulary(building: text, minimumCount: 2)
        #expect(vocabulary.scalars == ["a", "b", "\u{FFFD}"])
        #expect(vocabulary.unknownID == 2)
        let (ids, unknown) = try vocabulary.encodeCountingUnknown(Array("abcz\u{FFFD}".unicodeScalars), source: "t")
        #expect(ids == [0, 1, 2, 2, 2])
        #expect(unknown == 2, "c (rare) and z (unseen); U+FFFD itself is in the vocabulary")
        #expect(vocabulary.id(of: "q") == nil, "id(of:) answers for listed characters only")
    }

    @Test func aVocabularyWithoutTheEntryRefusesUnseenCharacters() throws {
        let vocabulary = try Vocabulary(building: Array("ab".unicodeScalars), unknownEntry: false)
        #expect(vocabulary.unknownID == nil)
        #expect(throws: LSTMKitError.invalidInput("t has character U+007A at character 1, which the model's vocabulary does not contain")) {
            _ = try vocabulary.encode(Array("az".unicodeScalars), source: "t")
        }
    }

    /// A checkpoint written before the unknown entry existed (the fuzzing seed made by an earlier release).
    @Test func olderCheckpointsLoadAndRefuseUnseenCharacters() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Corpus/safetensors/lstmkit-checkpoint.safetensors").path
        let file = try SafeTensors.read(path: path)
        #expect(file.metadata["unknown_character"] == nil)
        let loaded = try CharacterModelFile.load(file, source: "old.safetensors")
        #expect(loaded.vocabulary.unknownID == nil)
        #expect(throws: LSTMKitError.self) { _ = try loaded.vocabulary.encode(["\u{2713}"], source: "text") }
    }

    @Test func theEntryIsSavedAndReadBack() throws {
        let vocabulary = try Vocabulary(building: Array("hello".unicodeScalars))
        let model = try CharacterModel(.init(vocabularySize: vocabulary.count, embedding: 2, hidden: 3, layers: 1))
        let parameters = ParameterBuffer<Float>(layout: model.layout)
        let file = CharacterModelFile.file(model: model, vocabulary: vocabulary, parameters: parameters)
        #expect(file.metadata["unknown_character"] == "65533")
        let loaded = try CharacterModelFile.load(file, source: "m")
        #expect(loaded.vocabulary == vocabulary)
        var marked = file
        marked.metadata["unknown_character"] = "63"
        #expect(throws: LSTMKitError.self) { _ = try CharacterModelFile.load(marked, source: "m") }
    }
}
