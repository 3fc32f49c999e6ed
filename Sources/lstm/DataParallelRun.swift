import ArgumentParser
import Foundation
import LSTMKit

/// `--shards`: how each step's batch is split for data-parallel training (under `mpirun`, or on one process).
struct ParallelOptions: ParsableArguments {
    @Option(help: "Split each step's batch into this many gradient shards, summed in shard order (default: the number of MPI processes, or the checkpoint's with --resume). The model depends on it and on the seed, not on the process count.")
    var shards: Int?

    func validate() throws {
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1, got \(shards)") }
    }

    /// S for a run on `group`: the flag, else the resumed checkpoint's, else the process count.
    func shards(for group: ProcessGroup, resumed: Int?, checkpoint: String) throws -> Int {
        if let shards, let resumed, shards != resumed {
            throw Failure(message: "\(checkpoint) was trained with --shards \(resumed); resume it with --shards \(resumed) (the default), since another count sums the gradients in another order")
        }
        return shards ?? resumed ?? group.size
    }
}

/// Set on processes other than 0 of an MPI job: they print nothing (process 0 speaks for the job).
nonisolated(unsafe) var isSecondaryProcess = false

/// The processes of this run; on processes other than 0, standard output goes to /dev/null.
func processGroup() throws -> ProcessGroup {
    let group = try ProcessGroup.current()
    if group.rank != 0 {
        isSecondaryProcess = true
        let null = open("/dev/null", O_WRONLY)
        if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
    }
    return group
}

/// Runs `setup` (reading data, building or resuming a trainer) on every process, then lets them agree: if any
/// failed, all of them stop with the first failure, rather than the others waiting for it forever.
func agreeingOnSetup<T>(_ group: ProcessGroup, _ setup: () throws -> T) throws -> T {
    guard group.size > 1 else { return try setup() }
    var value: T?, failure: String?
    do { value = try setup() } catch { failure = describe(error) }
    if let message = try group.firstFailure(failure) { throw Failure(message: message) }
    return value!
}

/// The one line a failure prints.
func describe(_ error: Error) -> String {
    switch error {
    case let failure as Failure: return failure.message
    case let error as LSTMKitError: return flagged(error.description)
    case let error as SafeTensorsError: return error.description
    default: return String(describing: error)
    }
}
