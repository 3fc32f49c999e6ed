import Foundation
import Testing
import LSTMKit

/// `lstm forecast` end to end on small files.
@Suite(.serialized) struct ForecastCLITests {
    /// Two stores' monthly sales in long format, 8 years with a seasonal pattern.
    static func storesCSV() -> String {
        var random = RandomSource(seed: 5)
        var text = "month,store,sales\n"
        for t in 0..<96 {
            let month = "\(2015 + t / 12)-\(t % 12 < 9 ? "0" : "")\(t % 12 + 1)"
            for (store, base) in [("north", 100.0), ("south", 40.0)] {
                let v = base * (1 + 0.003 * Double(t)) * (1 + 0.2 * sin(2 * .pi * Double(t) / 12)) + random.normal()
                text += "\(month),\(store),\(String(format: "%.2f", v))\n"
            }
        }
        return text
    }

    @Test func trainPredictAndBacktest() throws {
        let dir = try CLI.temporaryFolder()
        try Self.storesCSV().write(to: dir.appendingPathComponent("sales.csv"), atomically: true, encoding: .utf8)
        let flags = ["--target", "sales", "--series", "store", "--horizon", "6", "--steps", "60", "--members", "2"]
        let train = try CLI.run(["forecast", "train", "sales.csv"] + flags, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("2 series (north, south) of 96 points, monthly (from the time stamps)"), "\(train.stdout)")
        #expect(train.stdout.contains("season 12 (from the frequency), horizon 6, lookback"))
        #expect(train.stdout.contains("seasonal naive") && train.stdout.contains("MASE"))
        let predict = try CLI.run(["forecast", "predict", "forecaster.best.safetensors", "sales.csv", "--plot", "f.svg"], in: dir)
        #expect(predict.status == 0, "\(predict.stderr)")
        let lines = predict.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "series,time,forecast,q0.1,q0.9")
        #expect(lines.count == 1 + 2 * 6)
        #expect(lines[1].hasPrefix("north,2023-01,") && lines[6].hasPrefix("north,2023-06,") && lines[7].hasPrefix("south,2023-01,"))
        for line in lines.dropFirst() {
            let v = line.split(separator: ",").dropFirst(2).map { Double($0)! }
            #expect(v[1] <= v[0] && v[0] <= v[2], "quantiles in order: \(line)")
        }
        let svg = try String(contentsOf: dir.appendingPathComponent("f.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("<polygon") && svg.contains(">north<") && svg.hasSuffix("</svg>\n"))
        let output = try CLI.run(["forecast", "predict", "forecaster.best.safetensors", "sales.csv", "--horizon", "2",
                                  "--output", "out.csv"], in: dir)
        #expect(output.status == 0 && output.stdout.isEmpty, "\(output.stderr)")
        #expect(try String(contentsOf: dir.appendingPathComponent("out.csv"), encoding: .utf8).split(separator: "\n").count == 5)
        let backtest = try CLI.run(["forecast", "backtest", "sales.csv", "--folds", "2"] + flags, in: dir)
        #expect(backtest.status == 0, "\(backtest.stderr)")
        #expect(backtest.stdout.contains("fold 1 (after 2021-12)") && backtest.stdout.contains("fold 2 (after 2022-06)"), "\(backtest.stdout)")
        #expect(backtest.stdout.contains("drift") && backtest.stdout.contains("mean"))
    }

    /// N steps, then resumed to 2N, give the bytes of 2N steps at once.
    @Test func resumeIsBitwiseExact() throws {
        let dir = try CLI.temporaryFolder()
        try Self.storesCSV().write(to: dir.appendingPathComponent("sales.csv"), atomically: true, encoding: .utf8)
        let flags = ["--target", "sales", "--series", "store", "--horizon", "6", "--members", "3"]
        let whole = try CLI.run(["forecast", "train", "sales.csv", "--steps", "40", "--checkpoint", "w.safetensors"] + flags, in: dir)
        let half = try CLI.run(["forecast", "train", "sales.csv", "--steps", "20", "--checkpoint", "s.safetensors"] + flags, in: dir)
        let rest = try CLI.run(["forecast", "train", "sales.csv", "--steps", "40", "--checkpoint", "s.safetensors", "--resume"] + flags, in: dir)
        #expect(whole.status == 0 && half.status == 0 && rest.status == 0, "\(whole.stderr)\(half.stderr)\(rest.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("w.safetensors")) == Data(contentsOf: dir.appendingPathComponent("s.safetensors")))
        #expect(try Data(contentsOf: dir.appendingPathComponent("w.best.safetensors")) == Data(contentsOf: dir.appendingPathComponent("s.best.safetensors")))
    }

    @Test func badInputIsOneLine() throws {
        let dir = try CLI.temporaryFolder()
        func write(_ name: String, _ text: String) throws { try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        try write("sales.csv", Self.storesCSV())
        try write("empty.csv", "")
        try write("header.csv", "month,sales\n")
        try write("text.csv", "month,sales\n2024-01,1\n2024-02,many\n")
        try write("short.csv", "month,sales\n" + (1...9).map { "2024-0\($0),\($0)" }.joined(separator: "\n") + "\n")
        func expectFailure(_ arguments: [String], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try CLI.run(arguments, in: dir)
            #expect(r.status != 0, sourceLocation: sourceLocation)
            #expect(r.stderr.hasPrefix("lstm: error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.contains(fragment), "'\(fragment)' not in \(r.stderr)", sourceLocation: sourceLocation)
        }
        try expectFailure(["forecast", "train", "missing.csv", "--target", "sales"], "no such file")
        try expectFailure(["forecast", "train", "empty.csv", "--target", "sales"], "empty.csv is empty")
        try expectFailure(["forecast", "train", "header.csv", "--target", "sales"], "has a header but no data rows")
        try expectFailure(["forecast", "train", "text.csv", "--target", "sales"], "text.csv line 3, column sales: 'many' is not a number")
        try expectFailure(["forecast", "train", "sales.csv", "--target", "revenue"], "has no column revenue; its columns are month, store, sales")
        try expectFailure(["forecast", "train", "short.csv", "--target", "sales", "--horizon", "3"], "series sales has 9 points")
        try expectFailure(["forecast", "train", "sales.csv"], "--target")
        try expectFailure(["forecast", "train", "sales.csv", "--target", "sales", "--quantiles", "0.1,2"], "--quantiles")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("forecaster.safetensors").path))
        // A predict file that does not match the model.
        let trained = try CLI.run(["forecast", "train", "sales.csv", "--target", "sales", "--series", "store", "--horizon", "6", "--steps", "5", "--members", "1"], in: dir)
        #expect(trained.status == 0, "\(trained.stderr)")
        try write("other.csv", Self.storesCSV().replacingOccurrences(of: "south", with: "east"))
        try expectFailure(["forecast", "predict", "forecaster.best.safetensors", "other.csv"], "series east is not one the forecaster was trained on")
        try write("renamed.csv", Self.storesCSV().replacingOccurrences(of: "sales", with: "revenue"))
        try expectFailure(["forecast", "predict", "forecaster.best.safetensors", "renamed.csv"], "has no column sales")
        try expectFailure(["forecast", "predict", "forecaster.best.safetensors", "sales.csv", "--horizon", "9"], "predicts 1 to 6 steps")
    }
}
