// libFuzzer entry point for LSTMKit's readers. Not part of the package: Scripts/fuzz.sh compiles it together with
// the LSTMKit sources (one module, so internal parsers are reachable) with `-sanitize=fuzzer,address`.
//
// LSTM_FUZZ_TARGET picks what the input bytes are fed to:
//   safetensors — SafeTensors.decode, then every loader built on it: the character-model checkpoint
//                 (CharacterModelFile.load), resuming a trainer from it, and PyTorch nn.LSTM state_dicts
//                 (LSTM.load with and without the "lstm." prefix, Float and Double), and SequenceModel files.
//   corpus      — Corpus.decode (strict UTF-8), Vocabulary building and encoding, the vocabulary JSON parser.
//   csv         — CSVTable.parse, then ForecastData.read of its last column as the target (wide and, with a
//                 second column, long format), with and without filling empty cells.
// Every failure must be a thrown error; a crash, hang, leak or sanitizer report is a bug.

import Foundation

nonisolated(unsafe) private var target: String = ProcessInfo.processInfo.environment["LSTM_FUZZ_TARGET"] ?? "safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func lstmFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? [UInt8](UnsafeBufferPointer(start: data, count: size)) : []
    switch target {
    case "corpus": fuzzCorpus(bytes)
    case "csv": fuzzCSV(bytes)
    default: fuzzSafeTensors(bytes)
    }
    return 0
}

private func fuzzSafeTensors(_ bytes: [UInt8]) {
    guard let file = try? SafeTensors.decode(bytes) else { return }
    _ = SafeTensors.encode(file)
    if let loaded = try? CharacterModelFile.load(file, source: "fuzz") {
        // A checkpoint that loads must also run: one evaluation window on a few of its own characters.
        let tokens = (0..<min(8, loaded.vocabulary.count)).map { Int32($0) }
        if tokens.count >= 2, loaded.model.configuration.hidden <= 64, loaded.model.configuration.layers <= 3 {
            _ = try? loaded.model.crossEntropy(of: tokens, parameters: loaded.parameters)
        }
        _ = try? CharacterTrainer(resuming: file, tokens: tokens + tokens + tokens, source: "fuzz")
    }
    if let model = try? SequenceModel<Float>(file: file, source: "fuzz"), model.lstm.hiddenSize <= 64,
       model.lstm.layerCount <= 3 {
        // A model file that loads must also run, on a batch of its own input kind.
        let batch: SequenceBatch<Float>? = switch model.configuration.input {
        case .tokens(let V, _): try? SequenceBatch(tokenSequences: [[0, Int32(V - 1)], [0]])
        case .features(let f): try? SequenceBatch(sequences: [[[Float](repeating: 0.5, count: f)]])
        }
        if let batch { _ = try? model.predict(batch) }
    }
    if let forecaster = try? Forecaster(file: file, source: "fuzz"), forecaster.configuration.lookback <= 256,
       forecaster.configuration.hiddenSize <= 64 {
        // A forecaster file that loads must forecast a series it knows.
        if let name = forecaster.scalings.keys.first {
            let n = forecaster.configuration.lookback
            let series = TimeSeries(name: name, values: (0..<n).map { 1 + Double($0 % 7) },
                                    covariates: Array(repeating: [Double](repeating: 0, count: forecaster.covariateNames.count), count: n))
            _ = try? forecaster.forecast([series])
        }
    }
    for prefix in ["", "lstm."] {
        _ = try? LSTM.load(from: file, prefix: prefix, as: Float.self)
        _ = try? LSTM.load(from: file, prefix: prefix, as: Double.self)
    }
}

private func fuzzCorpus(_ bytes: [UInt8]) {
    if let scalars = try? Corpus.decode(bytes, source: "fuzz"), let vocabulary = try? Vocabulary(building: scalars) {
        let tokens = try? vocabulary.encode(scalars, source: "fuzz")
        precondition(tokens?.count == scalars.count, "a built vocabulary must encode its own text")
        let json = vocabulary.json
        let reread = try? Vocabulary(json: json)
        precondition(reread?.count == vocabulary.count, "a vocabulary must survive its JSON round trip")
    }
    if let text = String(bytes: bytes, encoding: .utf8) { _ = try? Vocabulary(json: text) }
}

private func fuzzCSV(_ bytes: [UInt8]) {
    guard let table = try? CSVTable.parse(bytes, source: "fuzz"), let target = table.header.last else { return }
    for fill in [nil, FillPolicy.previous, .linear] {
        let wide = try? ForecastData.read(table, source: "fuzz", targets: [target], fill: fill)
        if table.header.count >= 3 {
            _ = try? ForecastData.read(table, source: "fuzz", targets: [target], series: table.header[1], fill: fill)
        }
        if let wide {
            precondition(wide.series.allSatisfy { $0.values.count == $0.times.count && $0.values.allSatisfy(\.isFinite) },
                         "a series read from a CSV file has a value per time stamp, all finite")
        }
    }
    _ = CSVTable.format(header: table.header, rows: table.rows)
}
