import ArgumentParser
import LSTMKit

@main
struct LSTMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lstm",
        abstract: "Train and run LSTM networks with exact, hand-derived backpropagation through time.",
        subcommands: [TrainCommand.self, SampleCommand.self, EvalCommand.self, InspectCommand.self, GradCheckCommand.self, BenchCommand.self]
    )
}
