import ArgumentParser
import LSTMKit

/// Makes one wrong-shape call on purpose, so a test can see what a release build says (not listed in help).
struct ShapeCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shape-check",
        abstract: "Call a library entry point with a wrong shape (for the release-build message test).",
        shouldDisplay: false
    )

    enum Case: String, ExpressibleByArgument, CaseIterable {
        case lstmForward = "lstm-forward", linearForward = "linear-forward", modelPredict = "model-predict"
    }

    @Argument var call: Case

    func run() throws {
        switch call {
        case .lstmForward:
            var layout = ParameterLayout()
            let lstm = try LSTM(inputSize: 3, hiddenSize: 4, layout: &layout)
            _ = lstm.forward([Float](repeating: 0, count: 5), steps: 2, batch: 1,
                             parameters: ParameterBuffer(layout: layout), stash: LSTMStash())
        case .linearForward:
            var layout = ParameterLayout()
            let linear = try Linear(inputSize: 3, outputSize: 2, layout: &layout)
            _ = linear.forward([Float](repeating: 0, count: 7), rows: 2, parameters: ParameterBuffer(layout: layout))
        case .modelPredict:
            let model = try SequenceModel<Float>(input: .features(2), lstm: .init(hiddenSize: 4), head: .lastStep(outputs: 1),
                                                 loss: .meanSquaredError)
            _ = try model.predict(SequenceBatch(series: [[1, 2, 3]]))
        }
    }
}
