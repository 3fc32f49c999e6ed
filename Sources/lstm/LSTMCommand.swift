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
        // Freed blocks stay mapped for the next step's (ProcessMemory): no page faults per training step.
        ProcessMemory.retainFreedMemory()
        // Known before parsing, so that an argument error in an MPI job is printed once, by process 0.
        let environment = ProcessInfo.processInfo.environment
        if let rank = environment["OMPI_COMM_WORLD_RANK"] ?? environment["PMI_RANK"], rank != "0" { isSecondaryProcess = true }
        do {
            var command = try parseAsRoot()
            try command.run()
            ProcessGroup.finish()
        } catch where error is Failure || error is LSTMKitError || error is SafeTensorsError {
            fail(describe(error), code: (error as? Failure)?.code ?? 1)
        } catch {
            let code = exitCode(for: error)
            if error is ExitCode || code == .success { ProcessGroup.finish(); exit(withError: error) }
            fail(message(for: error).split(separator: "\n").joined(separator: "; "), code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        // In an MPI job every failure reaching here is every process's (they agree first); process 0 prints it.
        if !isSecondaryProcess { FileHandle.standardError.write(Data("lstm: error: \(message)\n".utf8)) }
        ProcessGroup.finish()
        Foundation.exit(code)
    }
}
