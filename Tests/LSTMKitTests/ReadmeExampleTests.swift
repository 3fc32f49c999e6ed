import Foundation
import Testing
import LSTMKit

/// The documentation's examples (README.md and the DocC articles), verbatim between the markers: each block is
/// tested here, and `DocumentedExampleTests` checks that it appears in the documentation as written.
struct ReadmeExampleTests {
    @Test func readmeExampleRunsAndLearns() throws {
        // LayersUnderneath.md example begin
        // A 2-layer LSTM with a linear head, trained to predict the next value of a sine wave.
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: 1, hiddenSize: 16, layers: 2, layout: &layout, prefix: "lstm.")
        let head = try Linear(inputSize: 16, outputSize: 1, layout: &layout, prefix: "head.")
        var random = RandomSource(seed: 42)
        var parameters = ParameterBuffer<Float>(layout: layout)
        lstm.initialize(&parameters, random: &random)
        head.initialize(&parameters, random: &random)

        var gradients = ParameterBuffer<Float>(layout: layout)
        var optimizer = Optimizer<Float>(.adam(), parameterCount: layout.count)
        let stash = LSTMStash<Float>()              // what forward keeps for backward, reused every step
        let (T, B) = (20, 8)                        // 8 sequences of 20 steps, laid out (T, B, 1)
        func wave(_ t: Int, _ b: Int) -> Float { Float(sin(Double(t + 3 * b) * 0.3)) }
        let x = (0..<(T * B)).map { wave($0 / B, $0 % B) }
        let target = (0..<(T * B)).map { wave($0 / B + 1, $0 % B) }

        var losses: [Double] = []
        for _ in 0..<100 {
            let h = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: stash).output  // (T, B, 16)
            let prediction = head.forward(h, rows: T * B, parameters: parameters)                     // (T·B, 1)
            let (loss, dPrediction) = MeanSquaredError.forwardBackward(prediction: prediction, target: target)
            gradients.zero()
            let dh = head.backward(dOutput: dPrediction, input: h, rows: T * B,
                                   parameters: parameters, gradients: &gradients)
            // x is data: skip its δ (inputGradient: false), the first layer's δZ·W_ih.
            _ = lstm.backward(dOutput: dh, parameters: parameters, stash: stash, gradients: &gradients,
                              inputGradient: false)
            GradientClipping.clipNorm(&gradients, maxNorm: 1)
            optimizer.step(&parameters, gradients: gradients, learningRate: 0.01)
            losses.append(loss)
        }
        print("MSE: first step \(losses.first!), after 100 steps \(losses.last!)")
        // LayersUnderneath.md example end
        #expect(losses.last! < losses.first! / 10)
    }
}

/// The PyTorch interop article's example, verbatim between the markers.
struct ReadmeInteropExampleTests {
    @Test func readmeInteropExampleRuns() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/torch_lstm_state_dict.safetensors").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let out = folder.appendingPathComponent("lstm_from_swift.safetensors").path
        let (path, outputPath) = (fixture, out)
        // PyTorchInterop.md interop begin
        // Load an nn.LSTM saved with safetensors.torch.save_file(lstm.state_dict(), path): sizes come from the shapes.
        let (lstm, parameters) = try LSTM.load(from: SafeTensors.read(path: path))
        let x = [Float](repeating: 0.5, count: 4 * 1 * lstm.inputSize)               // (T=4, B=1, I)
        let y = lstm.forward(x, steps: 4, batch: 1, parameters: parameters, stash: LSTMStash()).output
        // ... train or fine-tune, then write it back for torch.nn.LSTM.load_state_dict:
        try SafeTensors.write(SafeTensors.File(tensors: lstm.stateDict(parameters)), path: outputPath)
        // PyTorchInterop.md interop end
        #expect(y.count == 4 * lstm.hiddenSize)
        let back = try SafeTensors.read(path: out)
        #expect(back.tensors.map(\.name) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                             "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"])
    }
}

/// The README's classifier and the getting-started regressor, verbatim between the markers.
struct ReadmeModelExampleTests {
    @Test func readmeClassifierLearns() throws {
        // README.md classifier begin
        // A many-to-one classifier: is the sum of a sequence of 5 to 30 numbers positive? 2 LSTM layers, lengths vary.
        func example(_ random: inout RandomSource) -> (series: [Float], label: Int32) {
            let series = (0..<(5 + random.index(below: 26))).map { _ in Float(random.uniform(-1, 1)) }
            return (series, series.reduce(0, +) > 0 ? 1 : 0)
        }
        var random = RandomSource(seed: 1)
        let examples = (0..<1000).map { _ in example(&random) }
        let data = try SequenceDataset(series: examples.map(\.series), classes: examples.map(\.label),
                                       validationFraction: 0.1, batch: 32)
        let model = try SequenceModel<Float>(input: .features(1), lstm: LSTMConfiguration(hiddenSize: 32, layers: 2),
                                             head: .lastStep(outputs: 2), loss: .crossEntropy)
        let trainer = try Trainer(model: model, source: data, options: TrainerOptions(learningRate: 0.01))
        _ = try trainer.fit(FitOptions(steps: 150))

        let test = (0..<500).map { _ in example(&random) }
        let predicted = try model.predict(SequenceBatch(series: test.map(\.series))).classes
        let accuracy = Double(zip(predicted, test).filter { $0 == $1.label }.count) / Double(test.count)
        print("validation loss \(try trainer.validationLoss()!), test accuracy \(accuracy)")
        // README.md classifier end
        #expect(accuracy > 0.9)
    }

    @Test func readmeRegressorLearns() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // The example writes a relative path; nothing else in the suite reads or writes relative paths.
        let previous = FileManager.default.currentDirectoryPath
        try #require(FileManager.default.changeCurrentDirectoryPath(folder.path), "cannot enter \(folder.path)")
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        // GettingStarted.md regressor begin
        // A sine regressor: from 20 steps of a sine wave, predict the next value. Saved, loaded, used.
        let waves = (0..<320).map { s in (0...20).map { t in Float(sin(Double(s) * 0.37 + Double(t) * 0.3)) } }
        let data = try SequenceDataset(series: waves.map { Array($0.prefix(20)) }, values: waves.map { [$0[20]] },
                                       validationFraction: 0.1, batch: 16)
        let model = try SequenceModel<Float>(input: .features(1), lstm: LSTMConfiguration(hiddenSize: 16, layers: 2),
                                             head: .lastStep(outputs: 1), loss: .meanSquaredError)
        let trainer = try Trainer(model: model, source: data, options: TrainerOptions(learningRate: 0.01))
        let before = try trainer.validationLoss()!
        _ = try trainer.fit(FitOptions(steps: 200))
        print("validation MSE \(before) before, \(try trainer.validationLoss()!) after 200 steps")

        try model.save(to: "sine.safetensors")
        let loaded = try SequenceModel<Float>(contentsOf: "sine.safetensors")
        let next = try loaded.predict(SequenceBatch(series: [(0..<20).map { Float(sin(Double($0) * 0.3)) }])).outputs[0]
        print("sin(6.0) = \(sin(6.0)), predicted \(next)")
        // GettingStarted.md regressor end
        #expect(try trainer.validationLoss()! < before / 20)
        #expect(abs(Double(next) - sin(6.0)) < 0.1)
    }
}

/// The forecasting article's example, verbatim between the markers.
struct ReadmeForecastExampleTests {
    @Test func readmeForecasterRuns() throws {
        // Forecasting.md forecaster begin
        // A forecaster from series in memory: 10 years of a monthly pattern, then the next 12 months at 3 quantiles.
        let sales = (0..<120).map { t in 100 + 0.5 * Double(t) + 20 * sin(2 * Double.pi * Double(t) / 12) }
        let start = TimeStamps.parse("2015-01")!.ordinal
        let series = TimeSeries(name: "sales", values: sales, times: (0..<120).map { start + $0 })
        var configuration = ForecasterConfiguration.defaults(frequency: Frequency(.month), shortest: 120, horizon: 12)
        (configuration.members, configuration.steps) = (2, 150)   // defaults 5 networks, 400 steps: kept quick here
        let forecaster = try Forecaster(configuration, frequency: Frequency(.month), format: .month)
        let report = try forecaster.fit([series])
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("sales.forecaster.safetensors").path
        print("held-out MASE \(report.heldOut[0].model.mase), seasonal naive \(report.heldOut[0].seasonalNaive.mase)")
        try forecaster.save(to: saved)
        let forecast = try Forecaster(contentsOf: saved).forecast([series])[0]
        for (t, (median, high)) in zip(forecast.times, zip(forecast.median, forecast.values.last!)).prefix(3) {
            print(TimeStamps.format(t, as: .month), median, high)
        }
        // Forecasting.md forecaster end
        #expect(report.heldOut[0].model.mase < report.heldOut[0].seasonalNaive.mase)
        let truth = (120..<123).map { t in 100 + 0.5 * Double(t) + 20 * sin(2 * Double.pi * Double(t) / 12) }
        for (a, b) in zip(forecast.median, truth) { #expect(abs(a - b) < 3, "forecast \(a), truth \(b)") }
    }
}

/// Every block between `// FILE NAME begin` and `// FILE NAME end` markers in this file appears in FILE (README.md or
/// a DocC article) as written, ignoring indentation and blank lines, so the documentation cannot drift from what is
/// tested.
struct DocumentedExampleTests {
    static func codeLines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    @Test func documentedExamplesAreVerbatim() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try String(contentsOf: here, encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var checked = 0
        var index = 0
        while index < lines.count {
            let words = lines[index].trimmingCharacters(in: .whitespaces).split(separator: " ")
            guard words.count == 4, words[0] == "//", words[3] == "begin", words[1].hasSuffix(".md") else {
                index += 1; continue
            }
            let end = "// \(words[1]) \(words[2]) end"
            guard let last = lines[index...].firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == end }) else {
                Issue.record("no `\(end)` after line \(index + 1)"); return
            }
            let block = Self.codeLines(lines[(index + 1)..<last].joined(separator: "\n"))
            let file = words[1] == "README.md" ? root.appendingPathComponent("README.md")
                : root.appendingPathComponent("Sources/LSTMKit/LSTMKit.docc/\(words[1])")
            let document = Self.codeLines(try String(contentsOf: file, encoding: .utf8))
            let found = document.count >= block.count && (0...(document.count - block.count)).contains {
                Array(document[$0..<($0 + block.count)]) == block
            }
            #expect(found, "the \(words[2]) example differs from \(words[1]) (or is missing there)")
            checked += 1
            index = last + 1
        }
        #expect(checked == 5)
    }
}
