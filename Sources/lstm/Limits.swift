import Foundation
import LSTMKit

/// How much memory `lstm` may plan to use, so that an input too large for this machine fails at once with a clear
/// message instead of being killed by the OOM killer hours into a run.
///
/// Available memory is the smallest of: physical memory, Linux's MemAvailable, the cgroup (v2) limit minus current
/// use, and `LSTM_MEMORY_LIMIT` (bytes; set it to plan for less than the machine has, e.g. next to other jobs).
enum MemoryBudget {
    static func availableBytes() -> Double {
        var available = Double(ProcessInfo.processInfo.physicalMemory)
        #if os(Linux)
        if let meminfo = AtomicFile.read(path: "/proc/meminfo").map({ String(decoding: $0, as: UTF8.self) }),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kB = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            available = min(available, kB * 1024)
        }
        func number(_ path: String) -> Double? {
            AtomicFile.read(path: path).flatMap {
                Double(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        if let limit = number("/sys/fs/cgroup/memory.max") {  // "max" (no limit) does not parse
            available = min(available, max(0, limit - (number("/sys/fs/cgroup/memory.current") ?? 0)))
        }
        #endif
        if let text = ProcessInfo.processInfo.environment["LSTM_MEMORY_LIMIT"], let limit = Double(text), limit > 0 {
            available = min(available, limit)
        }
        return available
    }

    static func describe(_ bytes: Double) -> String {
        bytes >= 1e9 ? String(format: "%.1f GB", bytes / 1e9) : String(format: "%.0f MB", max(1, bytes / 1e6))
    }

    /// Throws a one-line failure if `bytes` is more than 90 % of the available memory.
    static func require(_ bytes: Double, for what: String, hint: String) throws {
        let available = availableBytes()
        guard bytes <= 0.9 * available else {
            throw Failure(message: "\(what) needs about \(describe(bytes)) of memory, but only \(describe(available)) is available; \(hint)")
        }
    }

    /// Bytes of a regular file (through symlinks), without reading it; nil for anything else.
    static func fileSize(_ path: String) -> Double? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Double(info.st_size)
    }

    /// Memory to train a character model: parameters, gradients and two optimizer states; per layer the stash of
    /// gates, cells and hidden states and δZ over the window; embeddings, logits and their gradients.
    static func trainingBytes(vocabulary V: Int, embedding E: Int, hidden H: Int, layers L: Int, batch B: Int,
                              steps T: Int, layerNorm: Bool = false, checkpointInterval k: Int = 0) -> Double {
        let (v, e, h, l, rows) = (Double(V), Double(E), Double(H), Double(L), Double(B) * Double(T))
        // With memory-lean BPTT the stash holds one window of k steps (plus a checkpoint per window).
        let stashRows = k > 0 && k < T ? Double(B) * Double(k) + 2 * rows / Double(k) : rows
        let parameters = v * e + 4 * h * (max(e, h) + h + 2) * l + h * v + v + (layerNorm ? 18 * h * l : 0)
        // Stash and backward scratch per layer (gates, δZ, cells, hiddens, dropout masks and dropped copies, the
        // recurrent-dropout scratch; with layer normalization x̂ of both products and of S, 1/σ, and δ of the
        // recurrent product), embeddings and logits with their gradients.
        let activations = stashRows * l * Double(15 + (layerNorm ? 14 : 0)) * h + rows * (2 * e + 3 * v)
        let workspaces = 2 * 4.7e6  // per-thread packing buffers of the matrix products (bytes)
        return 4 * (4 * parameters + activations) + workspaces
    }
}
