/// A text as the character model sees it: Unicode scalars (code points), like Python's `str`, so a vocabulary
/// built here means the same thing in PyTorch.
public enum Corpus {
    /// Decodes UTF-8 strictly. Invalid bytes are an error naming their offset, not a replacement character, so a
    /// binary file given by mistake is reported instead of silently learned.
    public static func decode(_ bytes: [UInt8], source: String) throws(LSTMKitError) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                scalars.append(s)
                offset += UTF8.width(s)
            case .emptyInput:
                break loop
            case .error:
                throw .invalidInput("\(source) is not valid UTF-8 (bad byte sequence at byte offset \(offset)); give a UTF-8 text file")
            }
        }
        // A leading byte-order mark is an encoding detail, not text.
        if scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        return scalars
    }

    /// 64-bit FNV-1a of the tokens' bytes (each id as four little-endian bytes): identifies the corpus a checkpoint
    /// was trained on.
    public static func fingerprint(_ tokens: [Int32]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for t in tokens {
            var v = UInt32(bitPattern: t)
            for _ in 0..<4 {
                h ^= UInt64(v & 0xFF)
                h = h &* 0x0000_0100_0000_01B3
                v >>= 8
            }
        }
        return h
    }
}

/// The characters a model knows, in code-point order; a character's id is its index.
///
/// A vocabulary may have an *unknown* entry, U+FFFD (the replacement character): characters it does not contain
/// (and, when it was built with a minimum count, characters rarer than that) map to it. Without one (checkpoints
/// written before it existed) an unseen character is an error.
public struct Vocabulary: Sendable, Equatable {
    /// The characters, indexed by id: `scalars[k]` is the character with id k.
    public let scalars: [Unicode.Scalar]
    /// The id every character outside the vocabulary maps to, or nil.
    public let unknownID: Int32?
    private let ids: [UInt32: Int32]

    /// The character of the unknown entry.
    public static let unknownScalar: Unicode.Scalar = "\u{FFFD}"

    /// `unknown`: whether `unknownScalar` (which must be among `scalars`) is the unknown entry.
    public init(scalars: [Unicode.Scalar], unknown: Bool = false) throws(LSTMKitError) {
        guard !scalars.isEmpty else { throw .invalidInput("vocabulary is empty") }
        var ids: [UInt32: Int32] = [:]
        for (k, s) in scalars.enumerated() {
            guard ids[s.value] == nil else { throw .invalidInput("vocabulary lists U+\(hex(s.value)) twice") }
            ids[s.value] = Int32(k)
        }
        if unknown {
            guard let id = ids[Self.unknownScalar.value] else {
                throw .invalidInput("vocabulary has an unknown entry but does not list U+FFFD")
            }
            unknownID = id
        } else {
            unknownID = nil
        }
        self.scalars = scalars
        self.ids = ids
    }

    /// Every character of `text` that occurs at least `minimumCount` times, sorted by code point, plus the unknown
    /// entry (U+FFFD) when `unknownEntry`.
    public init(building text: [Unicode.Scalar], minimumCount: Int = 1, unknownEntry: Bool = true) throws(LSTMKitError) {
        var counts: [UInt32: Int] = [:]
        for s in text { counts[s.value, default: 0] += 1 }
        var kept = Set(counts.filter { $0.value >= minimumCount }.keys)
        if unknownEntry { kept.insert(Self.unknownScalar.value) }
        try self.init(scalars: kept.sorted().map { Unicode.Scalar($0)! }, unknown: unknownEntry)
    }

    /// The number of characters (the unknown entry included), which is the number of ids.
    public var count: Int { scalars.count }

    /// The id of `s`, nil when the vocabulary does not list it (`encode` maps those to the unknown entry).
    public func id(of s: Unicode.Scalar) -> Int32? { ids[s.value] }

    /// Ids of `text`; a character the vocabulary lacks maps to the unknown entry, or without one is an error
    /// naming it and where it is.
    public func encode(_ text: [Unicode.Scalar], source: String) throws(LSTMKitError) -> [Int32] {
        try encodeCountingUnknown(text, source: source).ids
    }

    /// Ids of `text` and how many of its characters the vocabulary lacks (mapped to the unknown entry).
    public func encodeCountingUnknown(_ text: [Unicode.Scalar], source: String) throws(LSTMKitError) -> (ids: [Int32], unknown: Int) {
        var out = [Int32](repeating: 0, count: text.count)
        var unknown = 0
        for (k, s) in text.enumerated() {
            if let id = ids[s.value], id != unknownID {
                out[k] = id
            } else if let unknownID {
                out[k] = unknownID
                unknown += ids[s.value] == nil ? 1 : 0
            } else {
                throw .invalidInput("\(source) has character U+\(hex(s.value)) at character \(k), which the model's vocabulary does not contain")
            }
        }
        return (out, unknown)
    }

    /// As stored in checkpoints: a JSON array of code points, e.g. `[10,32,33]`.
    public var json: String { "[" + scalars.map { String($0.value) }.joined(separator: ",") + "]" }

    /// Reads a vocabulary in its checkpoint form (see `json`): a JSON array of code points.
    ///
    /// - Parameters:
    ///   - json: The array text, e.g. `[10,32,33]`; whitespace around it and its entries is allowed.
    ///   - unknown: Whether U+FFFD, which must then be among the entries, is the unknown entry.
    /// - Throws: `LSTMKitError.invalidInput` when the text is not such an array or `init(scalars:unknown:)` rejects it.
    public init(json: String, unknown: Bool = false) throws(LSTMKitError) {
        let trimmed = json.trimmingSpaces()
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]") else { throw .invalidInput("vocabulary is not a JSON array of code points") }
        let body = trimmed.dropFirst().dropLast()
        var scalars: [Unicode.Scalar] = []
        for part in body.split(separator: ",") {
            guard let v = UInt32(String(part).trimmingSpaces()), let s = Unicode.Scalar(v) else {
                throw .invalidInput("vocabulary entry \(part) is not a Unicode code point")
            }
            scalars.append(s)
        }
        try self.init(scalars: scalars, unknown: unknown)
    }
}

func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
