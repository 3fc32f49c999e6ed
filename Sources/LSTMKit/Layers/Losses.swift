/// Softmax cross-entropy over V classes, PyTorch's `F.cross_entropy(..., ignore_index=…, reduction='mean')`.
///
/// ```
/// loss = (1/N') Σ_{n counted} [ log Σ_v exp(z_nv − m_n) + m_n − z_{n,y_n} ]       m_n = max_v z_nv
/// δz_nv = (softmax(z_n)_v − [v = y_n]) / N'    for counted rows, 0 for ignored ones
/// ```
/// Subtracting the row maximum keeps every exponent ≤ 0, so nothing overflows; N' is the number of rows whose target
/// is not `ignoreIndex`. The loss is summed in Double so that its value does not depend on N's rounding.
public enum SoftmaxCrossEntropy {
    /// Mean loss over counted rows, and δlogits (N, V). With no counted row the loss is 0 and δ is zero.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forwardBackward<S: LSTMScalar>(
        logits: [S], targets: [Int32], classes V: Int, ignoreIndex: Int32 = -100
    ) -> (loss: Double, dLogits: [S]) {
        var d = [S](repeating: 0, count: logits.count)
        let (sum, count) = run(logits: logits, targets: targets, classes: V, ignoreIndex: ignoreIndex, dLogits: &d)
        guard count > 0 else { return (0, d) }
        let scale = 1 / S(count)
        for k in d.indices { d[k] *= scale }
        return (sum / Double(count), d)
    }

    /// Sum of the per-row losses over counted rows and their number (for evaluation over many batches).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func summedLoss<S: LSTMScalar>(
        logits: [S], targets: [Int32], classes V: Int, ignoreIndex: Int32 = -100
    ) -> (sum: Double, count: Int) {
        var none: [S] = []
        return run(logits: logits, targets: targets, classes: V, ignoreIndex: ignoreIndex, dLogits: &none)
    }

    private static func run<S: LSTMScalar>(
        logits: [S], targets: [Int32], classes V: Int, ignoreIndex: Int32, dLogits: inout [S]
    ) -> (Double, Int) {
        let N = targets.count
        precondition(logits.count == N * V, "SoftmaxCrossEntropy: logits have \(logits.count) values, expected \(N * V)")
        let wantGradient = !dLogits.isEmpty
        var total = 0.0
        var count = 0
        for n in 0..<N {
            let y = targets[n]
            if y == ignoreIndex { continue }
            precondition(y >= 0 && Int(y) < V, "SoftmaxCrossEntropy: target \(y) outside 0..<\(V)")
            let row = n * V
            var m = logits[row]
            for v in 1..<V { m = max(m, logits[row + v]) }
            var z: S = 0
            for v in 0..<V { z += S.exponential(logits[row + v] - m) }
            let logZ = S.logarithm(z)
            total += Double(logZ + m - logits[row + Int(y)])
            count += 1
            if wantGradient {
                for v in 0..<V { dLogits[row + v] = S.exponential(logits[row + v] - m) / z }
                dLogits[row + Int(y)] -= 1
            }
        }
        return (total, count)
    }
}

/// Mean squared error, PyTorch's `F.mse_loss(reduction='mean')`: loss = (1/N) Σ (p − y)², δp = 2(p − y)/N.
public enum MeanSquaredError {
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forwardBackward<S: LSTMScalar>(prediction: [S], target: [S]) -> (loss: Double, dPrediction: [S]) {
        precondition(prediction.count == target.count, "MeanSquaredError: prediction and target differ in size")
        let N = prediction.count
        guard N > 0 else { return (0, []) }
        var total = 0.0
        var d = [S](repeating: 0, count: N)
        let scale = 2 / S(N)
        for k in 0..<N {
            let e = prediction[k] - target[k]
            total += Double(e) * Double(e)
            d[k] = scale * e
        }
        return (total / Double(N), d)
    }
}
