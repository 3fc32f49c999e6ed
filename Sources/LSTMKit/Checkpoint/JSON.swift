/// A small strict JSON parser (RFC 8259) for untrusted headers.
///
/// Unlike Foundation's JSONSerialization it reports duplicate object keys (safetensors forbids duplicate tensor
/// names, and a duplicate must not silently shadow the first), keeps integers exact (data offsets beyond 2⁵³ are not
/// rounded), bounds nesting depth so a hostile header cannot exhaust the stack, and never traps: every malformed
/// input is a thrown `JSONError` with a byte offset.
public indirect enum JSONValue: Sendable, Equatable {
    /// A JSON object: its members in document order (the parser rejects duplicate keys).
    case object([(key: String, value: JSONValue)])
    /// A JSON array, its elements in document order.
    case array([JSONValue])
    /// A JSON string, its escapes decoded.
    case string(String)
    /// The number's text as written, and its value as a Double.
    case number(String, Double)
    /// A JSON `true` or `false`.
    case bool(Bool)
    /// The JSON `null`.
    case null

    /// Structural equality: object members compare pairwise in order, numbers by their text as written
    /// (so `1` and `1.0` differ).
    /// - Parameters:
    ///   - a: A value to compare.
    ///   - b: Another value to compare.
    /// - Returns: Whether `a` and `b` are the same JSON value.
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.number(x, _), .number(y, _)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// A non-negative integer written without fraction or exponent, if it fits in Int.
    public var exactInteger: Int? {
        guard case let .number(text, _) = self, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(text)
    }

    /// The string, if this is a `.string`; nil otherwise.
    public var stringValue: String? { if case let .string(s) = self { return s } else { return nil } }

    /// The Boolean, if this is a `.bool`; nil otherwise.
    public var boolean: Bool? { if case let .bool(b) = self { return b } else { return nil } }

    /// The value of the first member named `key`, if this is an object that has one; nil otherwise.
    /// - Parameter key: The member name to look up.
    public subscript(key: String) -> JSONValue? {
        guard case let .object(entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// Parses one JSON value from UTF-8 bytes; whitespace may surround it, nothing else may follow.
    /// - Parameter bytes: The complete JSON text, UTF-8 encoded.
    /// - Returns: The parsed value.
    /// - Throws: ``JSONError`` at the first problem: a syntax error, invalid UTF-8, a duplicate object key, nesting
    ///   deeper than 64 levels, or trailing characters.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONError) -> JSONValue {
        var parser = Parser(bytes: Array(bytes))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw JSONError(offset: parser.index, reason: "trailing characters") }
        return value
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0
        static let maximumDepth = 64

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        func fail(_ reason: String) -> JSONError { JSONError(offset: index, reason: reason) }

        mutating func value(depth: Int) throws(JSONError) -> JSONValue {
            guard depth < Self.maximumDepth else { throw fail("nested deeper than \(Self.maximumDepth) levels") }
            guard index < bytes.count else { throw fail("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return try number()
            }
        }

        mutating func literal(_ word: String) throws(JSONError) {
            for b in word.utf8 {
                guard index < bytes.count, bytes[index] == b else { throw fail("invalid literal") }
                index += 1
            }
        }

        mutating func object(depth: Int) throws(JSONError) -> JSONValue {
            index += 1
            var entries: [(key: String, value: JSONValue)] = []
            var keys = Set<String>()
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object([]) }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyOffset = index
                let key = try string()
                guard keys.insert(key).inserted else { throw JSONError(offset: keyOffset, reason: "duplicate key \"\(key)\"") }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                index += 1
                skipSpace()
                entries.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard index < bytes.count else { throw fail("unexpected end in object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(entries) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(JSONError) -> JSONValue {
            index += 1
            var items: [JSONValue] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array([]) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard index < bytes.count else { throw fail("unexpected end in array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func hex4() throws(JSONError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let d: UInt32
                switch c {
                case 48...57: d = UInt32(c - 48)
                case 65...70: d = UInt32(c - 55)
                case 97...102: d = UInt32(c - 87)
                default: throw fail("bad hex digit in \\u escape")
                }
                v = v * 16 + d
                index += 1
            }
            return v
        }

        mutating func string() throws(JSONError) -> String {
            index += 1
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() throws(JSONError) {
                guard !raw.isEmpty else { return }
                guard let s = String(validating: raw, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                scalars.append(contentsOf: s.unicodeScalars)
                raw.removeAll(keepingCapacity: true)
            }
            while true {
                guard index < bytes.count else { throw fail("unterminated string") }
                let c = bytes[index]
                index += 1
                switch c {
                case UInt8(ascii: "\""):
                    try flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    try flush()
                    guard index < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[index]
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                                throw fail("unpaired surrogate")
                            }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let s = Unicode.Scalar(code) else { throw fail("invalid code point in \\u escape") }
                        scalars.append(s)
                    default:
                        throw fail("invalid escape")
                    }
                case 0..<0x20:
                    throw fail("control character in string")
                default:
                    raw.append(c)
                }
            }
        }

        mutating func number() throws(JSONError) -> JSONValue {
            let start = index
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            func digits() -> Int {
                let s = index
                while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 { index += 1 }
                return index - s
            }
            let intStart = index
            guard digits() > 0 else { throw fail("invalid value") }
            if bytes[intStart] == 48 && index - intStart > 1 { throw fail("leading zero in number") }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw fail("digits expected after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw fail("digits expected in exponent") }
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard let value = Double(text) else { throw fail("invalid number") }
            return .number(text, value)
        }
    }
}

/// Why ``JSONValue/parse(_:)`` rejected its input, and where.
public struct JSONError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The byte offset in the input at which the problem was found.
    public var offset: Int
    /// What was wrong, in a few words (for example `duplicate key "a"`).
    public var reason: String
    /// The reason and the offset, as `reason at byte offset`.
    public var description: String { "\(reason) at byte \(offset)" }
}
