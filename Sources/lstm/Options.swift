import ArgumentParser
import Foundation
import LSTMKit

/// The character model's shape and LSTM variants (`lstm train`).
struct ModelOptions: ParsableArguments {
    @Option(help: "LSTM hidden size H.") var hidden = 256
    @Option(help: "Number of LSTM layers.") var layers = 2
    @Option(help: "Embedding size.") var embedding = 64
    @Option(help: "Clip every LSTM cell state to [-C, C] (cuDNN's cell clip); off by default.") var cellClip: Double?
    @Option(help: "Dropout probability between LSTM layers while training (PyTorch's dropout; needs --layers ≥ 2).")
    var dropout = 0.0
    @Option(help: "Variational recurrent dropout in every LSTM layer while training (one mask per sequence, Gal & Ghahramani).")
    var recurrentDropout = 0.0
    @Flag(help: "Peephole connections in every LSTM layer (i and f see the previous cell state, o the new one).")
    var peepholes = false
    @Flag(help: "Layer-normalized LSTM (Ba, Kiros & Hinton): normalize both gate products and the cell in every layer.")
    var layerNorm = false
    @Option(help: "Projected LSTM (LSTMP, PyTorch's proj_size): h has P < --hidden values; 0: none.")
    var proj = 0

    /// Whether any variant flag differs from its default (a resumed model keeps the variants it was built with).
    var setsVariants: Bool { cellClip != nil || dropout != 0 || recurrentDropout != 0 || peepholes || layerNorm || proj != 0 }

    func validate() throws {
        for (name, value) in [("--hidden", hidden), ("--layers", layers), ("--embedding", embedding)] where value < 1 {
            throw ValidationError("\(name) must be at least 1, got \(value)")
        }
        if let cellClip, !(cellClip > 0 && cellClip < 1e38) {
            throw ValidationError("--cell-clip must be a positive number, got \(cellClip)")
        }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        guard recurrentDropout >= 0 && recurrentDropout < 1 else {
            throw ValidationError("--recurrent-dropout must be in [0, 1), got \(recurrentDropout)")
        }
        guard proj >= 0 else { throw ValidationError("--proj must be 0 (none) or a size below --hidden, got \(proj)") }
        guard dropout == 0 || layers >= 2 else {
            throw ValidationError("--dropout acts between LSTM layers; use --layers 2 or more, or --dropout 0")
        }
        // A model whose parameters alone would not fit in memory is refused before anything is allocated. In
        // Double: a huge --hidden would overflow Int.
        let perLayer = 4 * Double(hidden) * (Double(max(embedding, hidden)) + Double(hidden) + 2)
        let parameterBytes = 4.0 * Double(layers) * perLayer * 4  // weights, gradients, two optimizer states
        guard parameterBytes < 8e9 else {
            throw ValidationError("--hidden \(hidden) with --layers \(layers) needs about \(Int(parameterBytes / 1e9)) GB for parameters and optimizer state; use a smaller model")
        }
    }

    func configuration(vocabularySize: Int) -> CharacterModel.Configuration {
        .init(vocabularySize: vocabularySize, embedding: embedding, hidden: hidden, layers: layers, cellClip: cellClip,
              dropout: dropout > 0 ? dropout : nil, recurrentDropout: recurrentDropout > 0 ? recurrentDropout : nil,
              peepholes: peepholes ? true : nil, layerNorm: layerNorm ? true : nil, projection: proj > 0 ? proj : nil)
    }
}

enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable {
    case adam, adamw, sgd, rmsprop, adagrad

    var configuration: OptimizerConfiguration {
        switch self {
        case .adam: return .adam()
        case .adamw: return .adamW()
        case .sgd: return .sgd(momentum: 0.9)
        case .rmsprop: return .rmsProp(alpha: 0.95)
        case .adagrad: return .adagrad()
        }
    }
}

enum ScheduleChoice: String, ExpressibleByArgument, CaseIterable {
    case constant, cosine
}

extension NonFinitePolicy: ExpressibleByArgument {}

/// How the model is trained (`lstm train`).
struct TrainingFlags: ParsableArguments {
    @Option(help: "Truncated-BPTT window length T.") var seqLength = 64
    @Option(help: "Number of parallel streams (batch size B).") var batch = 32
    @Option(help: "Total optimizer steps (including those of a resumed checkpoint).") var steps: Int?
    @Option(help: "Train for this many passes over the training text instead of --steps.") var epochs: Double?
    @Option(help: "The optimizer (sgd: momentum 0.9).") var optimizer = OptimizerChoice.adam
    @Option(help: "Learning rate.") var lr = 2e-3
    @Option(help: "Learning-rate schedule (cosine decays to lr/10 at the last step).") var schedule = ScheduleChoice.constant
    @Option(help: "Warm-up steps for the cosine schedule.") var warmup = 0
    @Option(help: "Clip gradients to this global norm (0: no clipping).") var clip = 5.0
    @Option(help: "Fraction of the text held out for validation (without --validation).") var valFraction = 0.05
    @Option(help: "Validate and save a checkpoint every N steps.") var evalEvery = 100
    @Option(help: "Without a terminal, print a log line every N steps.") var logEvery = 10
    @Option(help: "Memory-lean BPTT: keep the LSTM state every K steps of a window and recompute the rest in backward (bitwise the same model; for long --seq-length); 0: off.")
    var bpttCheckpoint = 0
    @Option(help: "When a loss or gradient is NaN or infinite: stop (keep the last checkpoint) or skip (leave the model unchanged, move to the next window; stops after 10 in a row).")
    var onNonfinite = NonFinitePolicy.stop

    func validate() throws {
        for (name, value) in [("--seq-length", seqLength), ("--batch", batch), ("--eval-every", evalEvery),
                              ("--log-every", logEvery)] where value < 1 {
            throw ValidationError("\(name) must be at least 1, got \(value)")
        }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        if let epochs, !(epochs > 0 && epochs.isFinite) { throw ValidationError("--epochs must be a positive number, got \(epochs)") }
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number, got \(lr)") }
        guard bpttCheckpoint >= 0 else { throw ValidationError("--bptt-checkpoint must be 0 (off) or a number of steps, got \(bpttCheckpoint)") }
        guard clip >= 0, clip.isFinite else { throw ValidationError("--clip must be 0 (off) or a positive number, got \(clip)") }
        guard valFraction >= 0, valFraction < 1 else { throw ValidationError("--val-fraction must be in [0, 1), got \(valFraction)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
    }
}

/// The thread count, shared by the commands that compute.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for the matrix products (default: all cores); any count gives bitwise the same results.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }
}

/// The seed of everything random a command does (initialisation and dropout masks, or sampling).
struct SeedOption: ParsableArguments {
    @Option(help: "Random seed.") var seed: UInt64 = 1
}

/// Library errors name the library's parameters in backticks; the command line speaks in flags.
func flagged(_ message: String) -> String {
    let flags = ["`seqLength`": "--seq-length", "`batch`": "--batch", "`validationFraction`": "--val-fraction",
                 "`learningRate`": "--lr", "`checkpointInterval`": "--bptt-checkpoint"]
    return flags.reduce(message) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
}
