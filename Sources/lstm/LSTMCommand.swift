import ArgumentParser
import Foundation
import LSTMKit

@main
struct LSTMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lstm",
        abstract: "Train and run LSTM networks with exact, hand-derived backpropagation through time.",
        subcommands: [TrainCommand.self, SampleCommand.self, EvalCommand.self, InspectCommand.self, GradCheckCommand.self, BenchCommand.self,
                      ForecastCommand.self, TraceCommand.self, ShapeCheckCommand.self]
    )

    /// Every failure is one line on standard error (`lstm: error: …`) and a non-zero exit, argument errors included;
    /// help and exit codes a command chose go through ArgumentParser as usual.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as Failure {
            fail(failure.message, code: failure.code)
        } catch let error as LSTMKitError {
            fail(flagged(error.description), code: 1)
        } catch let error as SafeTensorsError {
            fail(error.description, code: 1)
        } catch {
            let code = exitCode(for: error)
            if error is ExitCode || code == .success { exit(withError: error) }
            fail(message(for: error).split(separator: "\n").joined(separator: "; "), code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("lstm: error: \(message)\n".utf8))
        Foundation.exit(code)
    }
}
