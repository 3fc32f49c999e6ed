import Foundation

/// A CSV file as RFC 4180 reads it: a header row and records of the same number of fields, fields separated by
/// commas, optionally quoted (a quote inside a quoted field doubled), records ended by CRLF or LF. Each record keeps
/// the physical line it starts on, so errors can name the line.
///
/// Written here rather than taken from yaslab/CSV.swift or swiftcsv/SwiftCSV: neither reports the line of a bad
/// record (CSV.swift keeps only the last error, SwiftCSV none per record), and the fuzzing build compiles LSTMKit's
/// sources alone, so the library keeps no dependencies.
public struct CSVTable: Sendable, Equatable {
    /// The column names, trimmed of surrounding spaces when read by `parse(_:source:)`.
    public var header: [String]
    /// The data records after the header, as text, one field per column.
    public var rows: [[String]]
    /// The 1-based line each row starts on (the header is line 1 unless blank lines or a quoted newline precede).
    public var lines: [Int]

    /// Creates a table from its parts as given (nothing is checked or trimmed).
    /// - Parameters:
    ///   - header: The column names.
    ///   - rows: The data records, each with one field per column.
    ///   - lines: The 1-based line each record starts on, one per row.
    public init(header: [String], rows: [[String]], lines: [Int]) {
        self.header = header
        self.rows = rows
        self.lines = lines
    }

    /// Parses UTF-8 bytes (a leading byte-order mark is skipped; blank lines are skipped).
    public static func parse(_ bytes: [UInt8], source: String) throws(LSTMKitError) -> CSVTable {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidInput("\(source) is not valid UTF-8; save the CSV file as UTF-8")
        }
        var scalars = Array(text.unicodeScalars)
        if scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        var records: [[String]] = []
        var lines: [Int] = []
        var field = String.UnicodeScalarView(), record: [String] = []
        var line = 1, recordLine = 1
        var quoted = false, wasQuoted = false, atFieldStart = true
        var k = 0
        func endField() {
            record.append(String(field))
            field = String.UnicodeScalarView()
            atFieldStart = true
            wasQuoted = false
        }
        func endRecord() {
            endField()
            // A blank line is one empty unquoted field: skipped.
            if !(record.count == 1 && record[0].isEmpty) {
                records.append(record)
                lines.append(recordLine)
            }
            record = []
        }
        while k < scalars.count {
            let c = scalars[k]
            if quoted {
                if c == "\"" {
                    if k + 1 < scalars.count && scalars[k + 1] == "\"" {
                        field.append("\"")
                        k += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
            } else if c == "\"" && atFieldStart {
                quoted = true
                wasQuoted = true
                atFieldStart = false
            } else if c == "\"" {
                throw .invalidInput("\(source) line \(line): a quote inside an unquoted field; quote the whole field and double the quote (\"\")")
            } else if c == "," {
                endField()
            } else if c == "\r" || c == "\n" {
                if c == "\r" && k + 1 < scalars.count && scalars[k + 1] == "\n" { k += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                if wasQuoted {
                    throw .invalidInput("\(source) line \(line): text after a closing quote; a quoted field ends at its closing quote")
                }
                field.append(c)
                atFieldStart = false
            }
            k += 1
        }
        if quoted { throw .invalidInput("\(source) line \(recordLine): a quoted field is never closed") }
        if !field.isEmpty || !record.isEmpty || wasQuoted { endRecord() }
        guard let header = records.first else { throw .invalidInput("\(source) is empty; give a CSV file with a header row and data rows") }
        let names = header.map { $0.trimmingSpaces() }
        for (k, record) in records.enumerated().dropFirst() where record.count != header.count {
            throw .invalidInput("\(source) line \(lines[k]): \(record.count) fields, but the header has \(header.count) (\(names.joined(separator: ", ")))")
        }
        var seen = Set<String>()
        for name in names {
            guard seen.insert(name).inserted else { throw .invalidInput("\(source) line \(lines[0]): the header names column \(name) twice") }
        }
        return CSVTable(header: names, rows: Array(records.dropFirst()), lines: Array(lines.dropFirst()))
    }

    /// The index of column `name`; an unknown name is an error listing the columns there are.
    public func column(_ name: String, source: String) throws(LSTMKitError) -> Int {
        guard let k = header.firstIndex(of: name) else {
            throw .invalidInput("\(source) has no column \(name); its columns are \(header.joined(separator: ", "))")
        }
        return k
    }

    /// RFC 4180 text of a header and rows (fields with commas, quotes or line breaks quoted).
    public static func format(header: [String], rows: [[String]]) -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([header] + rows).map { $0.map(quote).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
