/// Truncated backpropagation through time over a long stream cut into windows.
///
/// The (h, c) reached at the end of one window is the next window's initial state, but as a constant: backward for
/// a window is called without δ on its final state and the δ(h0, c0) it returns are dropped, so no gradient crosses
/// a window boundary (char-rnn's stateful training). The forward values are exactly those of the uncut stream.
public struct TruncatedBPTT<Scalar: LSTMScalar>: Sendable {
    /// The network every window runs through.
    public let lstm: LSTM
    /// The number of streams B read side by side; the state holds one row for each.
    public let batch: Int
    /// The state the next window starts from, (L·D, B, P) and (L·D, B, H).
    public var state: LSTMState<Scalar>

    /// Creates a runner for `batch` streams through `lstm`, starting from a zero state.
    ///
    /// - Parameters:
    ///   - lstm: The network every window runs through.
    ///   - batch: The number of streams B, the batch size of every window.
    public init(lstm: LSTM, batch: Int) {
        self.lstm = lstm
        self.batch = batch
        state = LSTMState(for: lstm, batch: batch)
    }

    /// Runs one window (T, B, I) from the carried state, keeps the end state for the next window and returns the
    /// top layer's outputs (T, B, D·P). Follow it with `lstm.backward(dOutput:parameters:stash:gradients:)` on the
    /// same stash with no `dFinal`.
    public mutating func forward(_ x: [Scalar], steps T: Int, parameters: ParameterBuffer<Scalar>,
                                 stash: LSTMStash<Scalar>) -> [Scalar] {
        let out = lstm.forward(x, steps: T, batch: batch, initial: state, parameters: parameters, stash: stash)
        state = out.final
        return out.output
    }

    /// Zeroes the whole state (a new epoch, or evaluation from a fresh start).
    public mutating func reset() {
        state = LSTMState(for: lstm, batch: batch)
    }

    /// Zeroes one batch row's state in every layer (that row's stream starts over).
    public mutating func reset(row b: Int) {
        require(b >= 0 && b < batch, "TruncatedBPTT.reset(row:): row \(b) outside 0..<\(batch)")
        let (P, H) = (lstm.outputSize, lstm.hiddenSize)
        for u in 0..<lstm.stateCount {
            for k in ((u * batch + b) * P)..<((u * batch + b + 1) * P) { state.hidden[k] = 0 }
            for k in ((u * batch + b) * H)..<((u * batch + b + 1) * H) { state.cell[k] = 0 }
        }
    }
}
