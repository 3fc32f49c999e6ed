import Foundation

/// The safetensors file format (https://github.com/huggingface/safetensors):
/// ```
/// [8 bytes: N, little-endian u64][N bytes: JSON header, UTF-8, may end in spaces][data]
/// header = { "__metadata__": { string: string }?, name: { "dtype": "F32", "shape": [..], "data_offsets": [b, e] }, … }
/// ```
/// Offsets are relative to the start of the data section; data is little-endian and row-major.
///
/// The reader treats the file as untrusted, as the reference implementation does: the header length is bounded and
/// must fit the file, the header must be a JSON object of the right shape, dtypes must be known, every tensor's
/// byte range must lie inside the data section and equal shape × dtype size, ranges must not overlap, and names are
/// unique (JSON object keys). Any violation is a `SafeTensorsError` with a one-line reason, never a crash.
public enum SafeTensors {
    /// A tensor element type, spelled as in the header's `dtype` field (`F32`, `BF16`, …).
    public enum DType: String, Sendable, Hashable {
        /// Floating point: 64-, 32- and 16-bit IEEE 754, and bfloat16.
        case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
        /// Integers (signed 64, 32, 16 and 8 bits; unsigned 8 bits) and one-byte Booleans.
        case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

        /// The bytes per element: 8, 4, 2 or 1.
        public var size: Int {
            switch self {
            case .f64, .i64: return 8
            case .f32, .i32: return 4
            case .f16, .bf16, .i16: return 2
            case .i8, .u8, .bool: return 1
            }
        }
    }

    /// One tensor as stored: dtype, shape and raw little-endian bytes.
    public struct Tensor: Sendable, Equatable {
        /// The element type stored in `bytes`.
        public var dtype: DType
        /// The dimensions, outermost first (row-major); `[]` is a scalar.
        public var shape: [Int]
        /// The elements, little-endian and row-major: `elementCount × dtype.size` bytes.
        public var bytes: [UInt8]

        /// A tensor from raw little-endian, row-major bytes, stored as given. The length is not checked: keep
        /// `bytes.count` equal to the element count times `dtype.size` (a shorter buffer makes `floats()` trap).
        /// - Parameters:
        ///   - dtype: The element type.
        ///   - shape: The dimensions, outermost first.
        ///   - bytes: The element bytes.
        public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        /// An F32 tensor holding `values`.
        /// - Parameters:
        ///   - values: The elements in row-major order, as many as the product of `shape`; any other count stops
        ///     the program with a message naming both counts.
        ///   - shape: The dimensions, outermost first.
        public init(_ values: [Float], shape: [Int]) {
            require(values.count == shape.reduce(1, *), "SafeTensors.Tensor: got \(values.count) values, expected \(shape.reduce(1, *)) for shape \(shape)")
            dtype = .f32
            self.shape = shape
            bytes = [UInt8](repeating: 0, count: values.count * 4)
            for (k, v) in values.enumerated() {
                let b = v.bitPattern.littleEndian
                withUnsafeBytes(of: b) { for i in 0..<4 { bytes[4 * k + i] = $0[i] } }
            }
        }

        /// An F64 tensor holding `values`.
        /// - Parameters:
        ///   - values: The elements in row-major order, as many as the product of `shape`; any other count stops
        ///     the program with a message naming both counts.
        ///   - shape: The dimensions, outermost first.
        public init(_ values: [Double], shape: [Int]) {
            require(values.count == shape.reduce(1, *), "SafeTensors.Tensor: got \(values.count) values, expected \(shape.reduce(1, *)) for shape \(shape)")
            dtype = .f64
            self.shape = shape
            bytes = [UInt8](repeating: 0, count: values.count * 8)
            for (k, v) in values.enumerated() {
                let b = v.bitPattern.littleEndian
                withUnsafeBytes(of: b) { for i in 0..<8 { bytes[8 * k + i] = $0[i] } }
            }
        }

        /// The number of elements: the product of `shape` (1 for a scalar).
        public var elementCount: Int { shape.reduce(1, *) }

        /// The values as Float, converting from F64, F16 or BF16; nil for integer dtypes.
        public func floats() -> [Float]? {
            let n = elementCount
            switch dtype {
            case .f32:
                return (0..<n).map { k in Float(bitPattern: load(UInt32.self, k)) }
            case .f64:
                return (0..<n).map { k in Float(Double(bitPattern: load(UInt64.self, k))) }
            case .f16:
                return (0..<n).map { k in Float(halfBits: load(UInt16.self, k)) }
            case .bf16:
                return (0..<n).map { k in Float(bitPattern: UInt32(load(UInt16.self, k)) << 16) }
            default:
                return nil
            }
        }

        /// The values as Double (exact for F64 and F32).
        public func doubles() -> [Double]? {
            if dtype == .f64 { return (0..<elementCount).map { Double(bitPattern: load(UInt64.self, $0)) } }
            return floats()?.map(Double.init)
        }

        private func load<T: FixedWidthInteger>(_: T.Type, _ k: Int) -> T {
            var v: T = 0
            let size = MemoryLayout<T>.size
            for i in 0..<size { v |= T(bytes[k * size + i]) << (8 * i) }
            return v
        }
    }

    /// A whole file: named tensors in file order and the metadata map.
    public struct File: Sendable, Equatable {
        /// The named tensors: `encode(_:)` writes them in this order, `decode(_:)` returns them in data-offset order.
        public var tensors: [(name: String, tensor: Tensor)]
        /// The header's `__metadata__` string map (empty when the file has none).
        public var metadata: [String: String]

        /// A file holding `tensors` and `metadata`.
        /// - Parameters:
        ///   - tensors: Named tensors in the order to write them; the names must be unique for the file to decode.
        ///   - metadata: String keys and values for the header's `__metadata__`.
        public init(tensors: [(name: String, tensor: Tensor)] = [], metadata: [String: String] = [:]) {
            self.tensors = tensors
            self.metadata = metadata
        }

        /// The first tensor called `name`, or nil if there is none.
        /// - Parameter name: The tensor's name as in the header.
        public subscript(name: String) -> Tensor? {
            tensors.first { $0.name == name }?.tensor
        }

        /// Equal metadata, and the same named tensors in the same order.
        /// - Parameters:
        ///   - a: A file to compare.
        ///   - b: Another file to compare.
        /// - Returns: Whether the two files hold the same metadata and tensors.
        public static func == (a: File, b: File) -> Bool {
            a.metadata == b.metadata && a.tensors.count == b.tensors.count
                && zip(a.tensors, b.tensors).allSatisfy { $0.name == $1.name && $0.tensor == $1.tensor }
        }
    }

    /// Largest header accepted (the reference implementation's limit).
    public static let maximumHeaderSize = 100_000_000

    /// Serializes tensors in the given order, metadata first, header padded with spaces to a multiple of 8 bytes.
    public static func encode(_ file: File) -> [UInt8] {
        var header = "{"
        var parts: [String] = []
        if !file.metadata.isEmpty {
            let entries = file.metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(file.metadata[$0]!))" }
            parts.append("\"__metadata__\":{" + entries.joined(separator: ",") + "}")
        }
        var offset = 0
        for (name, tensor) in file.tensors {
            let end = offset + tensor.bytes.count
            parts.append("\(jsonString(name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out += headerBytes
        for (_, tensor) in file.tensors { out += tensor.bytes }
        return out
    }

    /// Parses and validates a file's bytes.
    public static func decode(_ bytes: [UInt8]) throws(SafeTensorsError) -> File {
        guard bytes.count >= 8 else { throw .invalid("file is \(bytes.count) bytes, shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maximumHeaderSize) else { throw .invalid("header length \(n) exceeds the limit of \(maximumHeaderSize) bytes") }
        let headerLength = Int(n)
        guard 8 + headerLength <= bytes.count else {
            throw .invalid("header length \(headerLength) runs past the end of the \(bytes.count)-byte file (truncated?)")
        }
        let headerBytes = bytes[8..<(8 + headerLength)]
        guard headerBytes.first == UInt8(ascii: "{") else { throw .invalid("header does not start with '{'") }
        let json: JSONValue
        do { json = try JSONValue.parse(headerBytes) } catch { throw .invalid("header is not valid JSON (\(error.description))") }
        guard case let .object(object) = json else { throw .invalid("header is not a JSON object") }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard case let .object(map) = value else { throw .invalid("__metadata__ is not an object") }
                for (k, v) in map {
                    guard let s = v.stringValue else { throw .invalid("__metadata__ value for \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard case let .object(fields) = value else { throw .invalid("entry \(name) is not an object") }
            for (key, _) in fields where !["dtype", "shape", "data_offsets"].contains(key) {
                throw .invalid("tensor \(name) has an unknown field \(key)")
            }
            guard let dtypeName = value["dtype"]?.stringValue else { throw .invalid("tensor \(name) has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else { throw .invalid("tensor \(name) has unsupported dtype \(dtypeName)") }
            guard case let .array(shapeValues)? = value["shape"] else { throw .invalid("tensor \(name) has no shape") }
            var shape: [Int] = []
            for d in shapeValues {
                guard let dim = d.exactInteger else { throw .invalid("tensor \(name) has an invalid dimension") }
                shape.append(dim)
            }
            guard case let .array(offsets)? = value["data_offsets"], offsets.count == 2,
                  let begin = offsets[0].exactInteger, let end = offsets[1].exactInteger else {
                throw .invalid("tensor \(name) has no valid data_offsets")
            }
            guard begin <= end, end <= dataLength else {
                throw .invalid("tensor \(name) data_offsets [\(begin), \(end)] lie outside the \(dataLength)-byte data section")
            }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, product <= dataLength else { throw .invalid("tensor \(name) shape \(shape) is larger than the file") }
                count = product
            }
            guard count * dtype.size == end - begin else {
                throw .invalid("tensor \(name) has \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(count * dtype.size)")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        // As the reference implementation: sorted by offset, the tensors tile the data section exactly, with no
        // overlap and no gap.
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        for e in entries {
            guard e.begin == covered else {
                throw .invalid(e.begin < covered ? "tensor \(e.name) overlaps another tensor's bytes" : "gap before tensor \(e.name) in the data section")
            }
            covered = e.end
        }
        guard covered == dataLength else {
            throw .invalid("the data section has \(dataLength) bytes but the tensors cover \(covered) (truncated or padded file)")
        }
        let tensors = entries.map { e in
            (name: e.name, tensor: Tensor(dtype: e.dtype, shape: e.shape,
                                          bytes: Array(bytes[(dataStart + e.begin)..<(dataStart + e.end)])))
        }
        return File(tensors: tensors, metadata: metadata)
    }

    /// Reads and validates the safetensors file at `path`.
    /// - Parameter path: The file's path.
    /// - Returns: The file's tensors and metadata.
    /// - Throws: `SafeTensorsError.io` if the file cannot be read (missing, unreadable or a folder),
    ///   `SafeTensorsError.invalid` if its contents break the format.
    public static func read(path: String) throws(SafeTensorsError) -> File {
        guard let bytes = AtomicFile.read(path: path) else {
            throw .io("cannot read \(path): no such file or not readable")
        }
        return try decode(bytes)
    }

    /// Writes atomically: a temporary file in the same folder, flushed, then renamed over `path`, so a crash leaves
    /// either the old file or the new one, never a half-written one.
    public static func write(_ file: File, path: String) throws(SafeTensorsError) {
        try AtomicFile.write(encode(file), to: path)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Why a safetensors file could not be read, decoded or written.
public enum SafeTensorsError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The bytes are not a valid safetensors file; the string says which rule they break.
    case invalid(String)
    /// The file could not be read or written; the string names the path and the reason.
    case io(String)

    /// One line: `not a valid safetensors file: …` for `invalid`, the message itself for `io`.
    public var description: String {
        switch self {
        case .invalid(let s): return "not a valid safetensors file: \(s)"
        case .io(let s): return s
        }
    }
}

/// Crash-safe file replacement, and plain whole-file reading.
public enum AtomicFile {
    /// The whole file, read with POSIX calls (Foundation's readers on Linux leak a buffer for empty files and files
    /// that report size 0, such as those in /proc: found by the AddressSanitizer run); nil if it cannot be opened,
    /// is a folder, or holds more than `maxBytes` (reading stops there: a FIFO or /dev/zero cannot exhaust memory).
    public static func read(path: String, maxBytes: Int = Int.max) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) != S_IFDIR else { return nil }
        return read(fileDescriptor: fd, sizeHint: Int(info.st_size), maxBytes: maxBytes)
    }

    /// Everything left on an open descriptor (standard input, a pipe), or nil past `maxBytes` or on a read error.
    public static func read(fileDescriptor fd: Int32, sizeHint: Int = 0, maxBytes: Int = Int.max) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(0, min(sizeHint, maxBytes)))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return bytes }
            if bytes.count + n > maxBytes { return nil }
            bytes.append(contentsOf: chunk[0..<n])
        }
    }

    /// Replaces the file at `path` with `bytes` atomically: a temporary `.name.tmp-PID` in the same folder is
    /// written, flushed to disk and renamed over `path`, so a crash leaves either the old file or the new one.
    /// - Parameters:
    ///   - bytes: The complete new contents.
    ///   - path: The file to create or replace; its folder must exist.
    /// - Throws: `SafeTensorsError.io` if the folder is missing or writing, flushing or renaming fails.
    public static func write(_ bytes: [UInt8], to path: String) throws(SafeTensorsError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .io("cannot write \(path): folder \(directory) does not exist")
        }
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .io("cannot write \(path): \(String(cString: strerror(errno)))") }
        var written = 0
        let ok: Bool = bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let r = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if r <= 0 { return false }
                written += r
            }
            return fsync(fd) == 0
        }
        let closed = close(fd) == 0
        guard ok, closed else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .io("cannot write \(path): \(reason)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .io("cannot write \(path): \(reason)")
        }
        // Make the rename itself durable.
        let dirfd = open(directory, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    /// Removes the temporary files that writers of `path` killed mid-write left behind (`.name.tmp-PID` whose
    /// process no longer exists). Returns how many were removed.
    @discardableResult
    public static func removeStaleTemporaries(of path: String) -> Int {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let prefix = "." + url.lastPathComponent + ".tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return 0 }
        var removed = 0
        for name in names where name.hasPrefix(prefix) {
            guard let pid = pid_t(name.dropFirst(prefix.count)), pid != getpid() else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH, unlink(directory + "/" + name) == 0 { removed += 1 }
        }
        return removed
    }
}

extension Float {
    /// IEEE 754 binary16 → Float, exact (every half value is representable).
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exponent = Int(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * 0x1p-24
            self = sign != 0 ? -magnitude : magnitude
        } else if exponent == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}
