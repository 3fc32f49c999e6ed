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
    /// `threads`: rows in blocks over the worker pool (the same bits on any count: each row alone, the loss summed
    /// over the rows in order afterwards).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forwardBackward<S: LSTMScalar>(
        logits: [S], targets: [Int32], classes V: Int, ignoreIndex: Int32 = -100, threads: Int = 1
    ) -> (loss: Double, dLogits: [S]) {
        var d = [S].unfilled(logits.count)
        let (sum, count) = run(logits: logits, targets: targets, classes: V, ignoreIndex: ignoreIndex, dLogits: &d,
                               threads: threads)
        return (count > 0 ? sum / Double(count) : 0, d)
    }

    /// Sum of the per-row losses over counted rows and their number (for evaluation over many batches).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func summedLoss<S: LSTMScalar>(
        logits: [S], targets: [Int32], classes V: Int, ignoreIndex: Int32 = -100, threads: Int = 1
    ) -> (sum: Double, count: Int) {
        var none: [S] = []
        return run(logits: logits, targets: targets, classes: V, ignoreIndex: ignoreIndex, dLogits: &none,
                   threads: threads)
    }

    /// Each counted row: m, Σ exp(z − m) (each exponential computed once, kept in δ as it is summed), the row's
    /// loss, then δ = (e / Σ − [v = y]) · (1/N'), the operations and order of the plain two-pass loop (which
    /// computed every exponential twice). A serial pass over the main job's 2048 × 65 logits was 3.7 % of `lstm
    /// train`.
    private static func run<S: LSTMScalar>(
        logits: [S], targets: [Int32], classes V: Int, ignoreIndex: Int32, dLogits: inout [S], threads: Int
    ) -> (Double, Int) {
        let N = targets.count
        require(logits.count == N * V, "SoftmaxCrossEntropy: got \(logits.count) logits, expected targets × classes = \(N) × \(V) = \(N * V)")
        var count = 0
        for y in targets where y != ignoreIndex {
            require(y >= 0 && Int(y) < V, "SoftmaxCrossEntropy: target \(y) outside 0..<\(V)")
            count += 1
        }
        if logits.isEmpty { return (0, count) }  // no rows (or no classes, so every row ignored)
        let wantGradient = !dLogits.isEmpty
        let scale = count > 0 ? 1 / S(count) : 0
        var terms = [Double].unfilled(N)
        logits.withUnsafeBufferPointer { l in
            targets.withUnsafeBufferPointer { t in
                terms.withUnsafeMutableBufferPointer { terms in
                    dLogits.withUnsafeMutableBufferPointer { d in
                        let l = l.baseAddress!, t = t.baseAddress!, terms = terms.baseAddress!
                        let d = wantGradient ? d.baseAddress : nil  // an empty array's may not be nil
                        func rows(_ n0: Int, _ n1: Int) {
                            for n in n0..<n1 {
                                let y = t[n], row = l + n * V
                                if y == ignoreIndex {
                                    terms[n] = 0
                                    if let d { (d + n * V).update(repeating: 0, count: V) }
                                    continue
                                }
                                var m = row[0]
                                for v in 1..<V { m = max(m, row[v]) }
                                var z: S = 0
                                if let d {
                                    let e = d + n * V
                                    for v in 0..<V { e[v] = S.exponential(row[v] - m); z += e[v] }
                                    for v in 0..<V { e[v] = e[v] / z }
                                    e[Int(y)] -= 1
                                    for v in 0..<V { e[v] *= scale }
                                } else {
                                    for v in 0..<V { z += S.exponential(row[v] - m) }
                                }
                                terms[n] = Double(S.logarithm(z) + m - row[Int(y)])
                            }
                        }
                        let parts = N * V >= 1 << 14 ? max(1, min(threads, N / 16)) : 1
                        WorkerPool.blocks(N, parts: parts, rows)
                    }
                }
            }
        }
        var total = 0.0
        for n in 0..<N where targets[n] != ignoreIndex { total += terms[n] }
        return (total, count)
    }
}

/// Mean squared error, PyTorch's `F.mse_loss(reduction='mean')`: loss = (1/N) Σ (p − y)², δp = 2(p − y)/N.
public enum MeanSquaredError {
    /// The mean of (p − y)² over all N values and its gradient; (0, []) when N = 0.
    /// - Parameters:
    ///   - prediction: p, N values.
    ///   - target: y, N values.
    /// - Returns: `loss`, summed in Double, and `dPrediction` = 2(p − y)/N.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forwardBackward<S: LSTMScalar>(prediction: [S], target: [S]) -> (loss: Double, dPrediction: [S]) {
        require(prediction.count == target.count, "MeanSquaredError: got \(target.count) target values, expected one per prediction (\(prediction.count))")
        let N = prediction.count
        guard N > 0 else { return (0, []) }
        let scale = 2 / S(N)
        var lanes = SquareSum()
        let d = [S](unsafeUninitializedCapacity: N) { buffer, count in
            prediction.withUnsafeBufferPointer { p in
                target.withUnsafeBufferPointer { y in
                    lanes.add(p.baseAddress!, y.baseAddress!, 0..<N, gradient: buffer.baseAddress!, scale: scale)
                }
            }
            count = N
        }
        return (lanes.total / Double(N), d)
    }
}

/// Σ (p − y)² in Double in eight lanes — value k goes to lane k mod 8, whatever ranges the values come in — added up
/// in one fixed order at the end: eight independent chains instead of one, whose 4-cycle add latency made the loss
/// a serial pass as long as a small model's whole backward product (`small`: 102,400 values, 0.15 ms).
struct SquareSum {
    var lanes = SIMD8<Double>()

    /// Adds x² for x = value(k), k in `range` ascending, into lane k mod 8.
    @inline(__always)
    mutating func add(_ range: Range<Int>, _ value: (Int) -> Double) {
        var k = range.lowerBound
        while k < range.upperBound && k & 7 != 0 { let x = value(k); lanes[k & 7] += x * x; k += 1 }
        var sums = lanes
        while k + 8 <= range.upperBound {
            let x = SIMD8(value(k), value(k + 1), value(k + 2), value(k + 3),
                          value(k + 4), value(k + 5), value(k + 6), value(k + 7))
            sums += x * x
            k += 8
        }
        lanes = sums
        while k < range.upperBound { let x = value(k); lanes[k & 7] += x * x; k += 1 }
    }

    /// Adds (p[k] − y[k])² for k in `range`, and writes scale·(p[k] − y[k]) to `gradient[k]` when it is given.
    @inline(__always)
    mutating func add<S: LSTMScalar>(_ p: UnsafePointer<S>, _ y: UnsafePointer<S>, _ range: Range<Int>,
                                     gradient: UnsafeMutablePointer<S>?, scale: S) {
        if S.self == Float.self {
            addFloats(UnsafeRawPointer(p).assumingMemoryBound(to: Float.self),
                      UnsafeRawPointer(y).assumingMemoryBound(to: Float.self), range,
                      gradient: gradient.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) },
                      scale: unsafeBitCast(scale, to: Float.self))
            return
        }
        add(range) { k in
            let e = p[k] - y[k]
            gradient?[k] = scale * e
            return Double(e)
        }
    }

    /// The same sums and δ for Float, eight values per vector: e = p − y and scale·e in Float, e² added in Double to
    /// lane k mod 8 (the closure above builds each vector from eight scalar loads and stores each δ on its own). On
    /// the Ice Lake host, small's 102,400 values: 54 → 32 µs alone on one core; in the bench's training step, where
    /// the predictions and targets come from L3, 0.116 → 0.093 ms (faster in 195 of 200 alternated steps).
    private mutating func addFloats(_ p: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ range: Range<Int>,
                                    gradient: UnsafeMutablePointer<Float>?, scale: Float) {
        var k = range.lowerBound
        func one(_ k: Int) -> Double {
            let e = p[k] - y[k]
            gradient?[k] = scale * e
            return Double(e)
        }
        while k < range.upperBound && k & 7 != 0 { let x = one(k); lanes[k & 7] += x * x; k += 1 }
        var sums = lanes
        while k + 8 <= range.upperBound {
            let e = UnsafeRawPointer(p + k).loadUnaligned(as: SIMD8<Float>.self)
                - UnsafeRawPointer(y + k).loadUnaligned(as: SIMD8<Float>.self)
            if let gradient { UnsafeMutableRawPointer(gradient + k).storeBytes(of: scale * e, as: SIMD8<Float>.self) }
            let x = SIMD8<Double>(e)
            sums += x * x
            k += 8
        }
        lanes = sums
        while k < range.upperBound { let x = one(k); lanes[k & 7] += x * x; k += 1 }
    }

    var total: Double {
        ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    }
}

/// Mean squared error over the rows a mask keeps (padding excluded): rows of `width` values,
/// loss = (1/n) Σ_{kept rows, j} (p − y)², δp = 2(p − y)/n, n = kept rows × width; δ is zero on dropped rows.
public enum MaskedSquaredError {
    /// The summed squared error over the kept rows, the number n of values summed, and δp of the mean (sum / n).
    ///
    /// `keep` has one flag per row of `width` values (nil keeps every row). With `wantGradient` false `dPrediction` is
    /// empty; otherwise it is zero on dropped rows. With nothing kept, `sum` and `count` are 0.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forwardBackward<S: LSTMScalar>(prediction: [S], target: [S], width: Int, keep: [Bool]?,
                                                      wantGradient: Bool = true) -> (sum: Double, count: Int, dPrediction: [S]) {
        require(prediction.count == target.count, "MaskedSquaredError: got \(target.count) target values, expected one per prediction (\(prediction.count))")
        require(keep == nil || keep!.count * width == target.count, "MaskedSquaredError: got \(keep?.count ?? 0) row flags, expected one per row of \(width) (\(target.count / max(width, 1)))")
        guard let keep else {
            if !wantGradient {
                var lanes = SquareSum()
                prediction.withUnsafeBufferPointer { p in
                    target.withUnsafeBufferPointer { y in
                        lanes.add(p.baseAddress!, y.baseAddress!, 0..<p.count, gradient: nil, scale: 0)
                    }
                }
                return (lanes.total, prediction.count, [])
            }
            let (loss, d) = MeanSquaredError.forwardBackward(prediction: prediction, target: target)
            return (loss * Double(prediction.count), prediction.count, d)
        }
        let n = keep.reduce(0) { $0 + ($1 ? 1 : 0) } * width
        var d = [S](repeating: 0, count: wantGradient ? prediction.count : 0)
        guard n > 0 else { return (0, 0, d) }
        let scale = 2 / S(n)
        var lanes = SquareSum()
        prediction.withUnsafeBufferPointer { p in
            target.withUnsafeBufferPointer { y in
                d.withUnsafeMutableBufferPointer { dp in
                    for (r, kept) in keep.enumerated() where kept {
                        lanes.add(p.baseAddress!, y.baseAddress!, (r * width)..<((r + 1) * width),
                                  gradient: wantGradient ? dp.baseAddress! : nil, scale: scale)
                    }
                }
            }
        }
        return (lanes.total, n, d)
    }
}

/// The quantile (pinball) loss over K quantiles q_1 … q_K, as MQ-RNN and DeepAR-style forecasters train with:
/// ```
/// ρ_q(u) = max(q·u, (q − 1)·u),   u = y − p
/// loss = (1/n) Σ_{rows, j, k} ρ_{q_k}(y_j − p_{j,k})          n = kept rows × width × K
/// δp_{j,k} = (−q_k if y_j > p_{j,k};  1 − q_k if y_j < p_{j,k};  0 at y = p) / n
/// ```
/// Predictions are (rows, width, K): for each target value its K quantile predictions side by side. The median
/// (q = 0.5) gives half the mean absolute error. ρ has a kink at u = 0, so the derivative there is taken as 0.
public enum QuantileLoss {
    /// The summed pinball loss over the kept rows, the number n = kept rows × width × K of terms, and δp of the
    /// mean (sum / n).
    ///
    /// `prediction` is (rows, width, K) for `target` (rows, width) and K `quantiles`; `keep` has one flag per row (nil
    /// keeps all). With `wantGradient` false `dPrediction` is empty; with nothing kept, `sum` and `count` are 0.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func forwardBackward<S: LSTMScalar>(prediction: [S], target: [S], quantiles: [Double], width: Int,
                                                      keep: [Bool]?, wantGradient: Bool = true)
        -> (sum: Double, count: Int, dPrediction: [S]) {
        let K = quantiles.count
        require(prediction.count == target.count * K, "QuantileLoss: got \(prediction.count) predictions, expected targets × quantiles = \(target.count) × \(K) = \(target.count * K)")
        require(keep == nil || keep!.count * width == target.count, "QuantileLoss: got \(keep?.count ?? 0) row flags, expected one per row of \(width) (\(target.count / max(width, 1)))")
        let rows = width > 0 ? target.count / width : 0
        let keptRows = keep.map { $0.reduce(0) { $0 + ($1 ? 1 : 0) } } ?? rows
        let n = keptRows * width * K
        var d = [S](repeating: 0, count: wantGradient ? prediction.count : 0)
        guard n > 0 else { return (0, 0, d) }
        let scale = 1 / Double(n)
        var total = 0.0
        for r in 0..<rows where keep?[r] ?? true {
            for j in (r * width)..<((r + 1) * width) {
                let y = Double(target[j])
                for (k, q) in quantiles.enumerated() {
                    let u = y - Double(prediction[j * K + k])
                    total += max(q * u, (q - 1) * u)
                    if wantGradient { d[j * K + k] = S(u > 0 ? -q * scale : (u < 0 ? (1 - q) * scale : 0)) }
                }
            }
        }
        return (total, n, d)
    }
}
