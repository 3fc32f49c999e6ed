import Testing
@testable import LSTMKit

/// The reader treats files as untrusted: each malformed header is a specific error, never a crash.
struct SafeTensorsTests {
    /// A file from a header string and a data section.
    static func file(_ header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h + data
    }

    static let malformed: [(header: String, data: Int, reason: String)] = [
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate key"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "cover 8"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "outside"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12"),
        ("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "invalid dimension"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "invalid dimension"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,9223372036854775807],\"data_offsets\":[0,8]}}", 8, "larger than the file"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8, "unknown field"),
        ("{\"a\":[1,2]}", 0, "not an object"),
        ("{\"__metadata__\":{\"k\":1}}", 0, "not a string"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not valid JSON"),
        ("[1,2,3]", 0, "does not start with"),
        ("{\"a\":" + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "}", 0, "nested deeper"),
        ("{\"a\":\"\u{01}\"}", 0, "control character"),
    ]

    @Test(arguments: 0..<malformed.count)
    func malformedHeadersAreRejected(index: Int) {
        let c = Self.malformed[index]
        do {
            _ = try SafeTensors.decode(Self.file(c.header, data: [UInt8](repeating: 0, count: c.data)))
            Issue.record("accepted: \(c.header.prefix(80))")
        } catch {
            #expect(error.description.contains(c.reason), "expected '\(c.reason)', got: \(error.description)")
        }
    }

    @Test func truncatedAndOversizedFiles() {
        #expect(throws: SafeTensorsError.self) { try SafeTensors.decode([1, 2, 3]) }
        var huge = [UInt8](repeating: 0, count: 16)
        huge[7] = 0x10
        #expect(throws: SafeTensorsError.invalid("header length 1152921504606846976 exceeds the limit of 100000000 bytes")) {
            try SafeTensors.decode(huge)
        }
        let good = SafeTensors.encode(SafeTensors.File(tensors: [("w", SafeTensors.Tensor([1, 2, 3] as [Float], shape: [3]))]))
        for cut in [8, 9, good.count - 12, good.count - 1] {
            #expect(throws: SafeTensorsError.self) { try SafeTensors.decode(Array(good.prefix(cut))) }
        }
        #expect(throws: Never.self) { try SafeTensors.decode(good) }
    }

    /// Every dtype LSTMKit reads, with values whose conversions are exact.
    @Test func dtypes() throws {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001.
        // BF16: 1.0 = 0x3F80, -2.5 = 0xC020, 3.0 = 0x4040.
        let f16: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x0001]
        let bf16: [UInt16] = [0x3F80, 0xC020, 0x4040]
        func bytes(_ v: [UInt16]) -> [UInt8] { v.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
        let file = SafeTensors.File(tensors: [
            ("half", SafeTensors.Tensor(dtype: .f16, shape: [4], bytes: bytes(f16))),
            ("brain", SafeTensors.Tensor(dtype: .bf16, shape: [3], bytes: bytes(bf16))),
            ("double", SafeTensors.Tensor([0.1, -1e300] as [Double], shape: [2])),
            ("float", SafeTensors.Tensor([0.1, .infinity] as [Float], shape: [1, 2])),
        ], metadata: ["note": "quote \" backslash \\ newline \n tab \t é ∑"])
        let decoded = try SafeTensors.decode(SafeTensors.encode(file))
        #expect(decoded == file)
        #expect(decoded["half"]!.floats()! == [1, -2.5, 65504, 0x1p-24])
        #expect(decoded["brain"]!.floats()! == [1, -2.5, 3])
        #expect(decoded["double"]!.doubles()! == [0.1, -1e300])
        #expect(decoded["float"]!.floats()! == [0.1, .infinity])
        #expect(decoded.metadata["note"] == "quote \" backslash \\ newline \n tab \t é ∑")
        // The header is padded to a multiple of 8 bytes, as safetensors writes it.
        let encoded = SafeTensors.encode(file)
        #expect(Int(encoded[0]) % 8 == 0)
    }

    @Test func jsonParser() throws {
        let v = try JSONValue.parse(Array("{\"a\": [1, -2.5e3, true, null, \"\\u00e9\\ud83d\\ude00\"], \"n\": 18446744073709551616}".utf8))
        #expect(v["a"] == .array([.number("1", 1), .number("-2.5e3", -2500), .bool(true), .null, .string("é😀")]))
        #expect(v["n"]?.exactInteger == nil)  // too big for Int: not silently rounded
        if case .array(let a)? = v["a"] { #expect(a[0].exactInteger == 1 && a[1].exactInteger == nil) }
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "01", "\"\\x\"", "{\"a\":1}x", "\"\\ud800\"", "tru"] {
            #expect(throws: JSONError.self, "\(bad)") { try JSONValue.parse(Array(bad.utf8)) }
        }
    }
}
