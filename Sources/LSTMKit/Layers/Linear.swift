import _LSTMKernels

/// A fully connected layer, PyTorch's `nn.Linear`: weight (out, in), bias (out).
///
/// ```
/// forward:   Y = X·Wᵀ + b                      X (N, in), Y (N, out)
/// backward:  δX = δY·W    δW += δYᵀ·X    δb += Σ_rows δY
/// ```
/// Backward needs only the forward input, which the caller still holds, so nothing is kept.
public struct Linear: Sendable, Hashable {
    /// The width of each input row (`in`).
    public let inputSize: Int
    /// The width of each output row (`out`).
    public let outputSize: Int
    /// The tensor `weight` (out, in), named with the layer's prefix.
    public let weight: ParameterSpec   // (out, in)
    /// The tensor `bias` (out), or nil for a layer built without a bias.
    public let bias: ParameterSpec?    // (out)

    /// Adds the layer's tensors to `layout`: `prefix + "weight"` (outputSize, inputSize) and, when `bias` is true,
    /// `prefix + "bias"` (outputSize).
    /// - Throws: `LSTMKitError.invalidConfiguration` when either size is below 1.
    public init(inputSize: Int, outputSize: Int, bias: Bool = true,
                layout: inout ParameterLayout, prefix: String = "") throws(LSTMKitError) {
        guard inputSize > 0, outputSize > 0 else {
            throw .invalidConfiguration("Linear sizes must be at least 1, got in \(inputSize), out \(outputSize)")
        }
        self.inputSize = inputSize
        self.outputSize = outputSize
        weight = layout.add(prefix + "weight", shape: [outputSize, inputSize])
        self.bias = bias ? layout.add(prefix + "bias", shape: [outputSize]) : nil
    }

    /// PyTorch's default: weight and bias U(−1/√in, 1/√in).
    public func initialize<S: LSTMScalar>(_ parameters: inout ParameterBuffer<S>, random: inout RandomSource) {
        let k = 1 / Double(inputSize).squareRoot()
        for e in weight.range { parameters.storage[e] = S(random.uniform(-k, k)) }
        if let bias { for e in bias.range { parameters.storage[e] = S(random.uniform(-k, k)) } }
    }

    /// X (N, in) → Y (N, out).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func forward<S: LSTMScalar>(_ x: [S], rows N: Int, parameters: ParameterBuffer<S>, threads: Int = 1) -> [S] {
        require(x.count == N * inputSize, "Linear.forward: got \(x.count) values of x, expected rows × inputSize = \(N) × \(inputSize) = \(N * inputSize)")
        var y = [S].unfilled(N * outputSize)  // written whole by the product (accumulate: false)
        let In = inputSize, Out = outputSize
        x.withUnsafeBufferPointer { x in
            parameters.storage.withUnsafeBufferPointer { p in
                y.withUnsafeMutableBufferPointer { y in
                    guard N > 0 else { return }
                    GEMM.gemm(transposeA: false, transposeB: true, M: N, N: Out, K: In,
                              x.baseAddress!, lda: In, p.baseAddress! + weight.offset, ldb: In,
                              y.baseAddress!, ldc: Out, accumulate: false, threads: threads)
                    if let bias {
                        let b = p.baseAddress! + bias.offset
                        if S.self == Float.self {
                            // Over the threads, in the row blocks the product wrote (a serial pass was 0.03 ms of
                            // `small`'s head).
                            let yf = UnsafeMutableRawPointer(y.baseAddress!).assumingMemoryBound(to: Float.self)
                            Linear.addBias(UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), to: yf, rows: N,
                                           width: Out, threads: threads)
                        } else {
                            for r in 0..<N {
                                let row = y.baseAddress! + r * Out
                                for j in 0..<Out { row[j] += b[j] }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Adds δW, δb into `gradients` and returns δX (N, in).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func backward<S: LSTMScalar>(
        dOutput: [S], input x: [S], rows N: Int,
        parameters: ParameterBuffer<S>, gradients: inout ParameterBuffer<S>, threads: Int = 1
    ) -> [S] {
        require(dOutput.count == N * outputSize, "Linear.backward: got \(dOutput.count) values of dOutput, expected rows × outputSize = \(N) × \(outputSize) = \(N * outputSize)")
        require(x.count == N * inputSize, "Linear.backward: got \(x.count) values of input, expected rows × inputSize = \(N) × \(inputSize) = \(N * inputSize)")
        let In = inputSize, Out = outputSize
        var dx = [S].unfilled(N * In)  // written whole by δX = δY·W (accumulate: false)
        guard N > 0 else { return dx }
        dOutput.withUnsafeBufferPointer { dy in
            x.withUnsafeBufferPointer { x in
                parameters.storage.withUnsafeBufferPointer { p in
                    gradients.storage.withUnsafeMutableBufferPointer { g in
                        dx.withUnsafeMutableBufferPointer { dx in
                            GEMM.gemm(transposeA: true, transposeB: false, M: Out, N: In, K: N,
                                      dy.baseAddress!, lda: Out, x.baseAddress!, ldb: In,
                                      g.baseAddress! + weight.offset, ldc: In, accumulate: true, threads: threads)
                            if let bias {
                                // Σ_rows δY, rows ascending for every column: one chain of adds per column from the
                                // gradient's value. Float: the C kernel, 64 columns' chains side by side in registers
                                // (~3 µs for `small`'s head, where the loop below took 0.03 ms).
                                let gb = g.baseAddress! + bias.offset
                                if S.self == Float.self {
                                    let rows = UnsafeRawPointer(dy.baseAddress!).assumingMemoryBound(to: Float.self)
                                    lstmk_column_sums(rows, N, Out, Out,
                                                      UnsafeMutableRawPointer(gb).assumingMemoryBound(to: Float.self), 0)
                                } else {
                                    // Summed in a row of its own (which vectorizes) and then stored: the same chain
                                    // per column as adding into g directly.
                                    let sums = UnsafeMutablePointer<S>.allocate(capacity: Out)
                                    defer { sums.deallocate() }
                                    sums.update(from: gb, count: Out)
                                    for r in 0..<N {
                                        let row = dy.baseAddress! + r * Out
                                        for j in 0..<Out { sums[j] += row[j] }
                                    }
                                    gb.update(from: sums, count: Out)
                                }
                            }
                            GEMM.gemm(transposeA: false, transposeB: false, M: N, N: In, K: Out,
                                      dy.baseAddress!, lda: Out, p.baseAddress! + weight.offset, ldb: In,
                                      dx.baseAddress!, ldc: In, accumulate: false, threads: threads)
                        }
                    }
                }
            }
        }
        return dx
    }
}

extension Linear {
    /// y[r, j] += b[j] for rows 0..<rows, in row blocks over the threads as the product before it split them.
    static func addBias(_ b: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                        threads: Int) {
        let parts = rows * width >= 1 << 15 ? max(1, min(threads, rows / 6)) : 1
        nonisolated(unsafe) let (b, y) = (b, y)
        GEMM.rowBlocks(rows, parts: parts) { r0, r1 in
            for r in r0..<r1 {
                let row = y + r * width
                for j in 0..<width { row[j] += b[j] }
            }
        }
    }
}

/// A lookup table, PyTorch's `nn.Embedding`: weight (V, E).
///
/// ```
/// forward:   Y[n] = W[token_n]              tokens (N), Y (N, E)
/// backward:  δW[token_n] += δY[n]           (rows of repeated tokens add up)
/// ```
public struct Embedding: Sendable, Hashable {
    /// V: the number of rows of the table, one per token id in 0..<V.
    public let vocabularySize: Int
    /// E: the width of each embedding vector.
    public let dimension: Int
    /// The tensor `weight` (V, E), named with the layer's prefix.
    public let weight: ParameterSpec   // (V, E)

    /// Adds the table `prefix + "weight"` (vocabularySize, dimension) to `layout`.
    /// - Throws: `LSTMKitError.invalidConfiguration` when either size is below 1.
    public init(vocabularySize: Int, dimension: Int,
                layout: inout ParameterLayout, prefix: String = "") throws(LSTMKitError) {
        guard vocabularySize > 0, dimension > 0 else {
            throw .invalidConfiguration("Embedding sizes must be at least 1, got vocabulary \(vocabularySize), dimension \(dimension)")
        }
        self.vocabularySize = vocabularySize
        self.dimension = dimension
        weight = layout.add(prefix + "weight", shape: [vocabularySize, dimension])
    }

    /// PyTorch's default: N(0, 1).
    public func initialize<S: LSTMScalar>(_ parameters: inout ParameterBuffer<S>, random: inout RandomSource) {
        for e in weight.range { parameters.storage[e] = S(random.normal()) }
    }

    /// Looks up each token's row: tokens (N) → Y (N, E), row-major.
    /// - Parameters:
    ///   - tokens: Token ids, each in 0..<V; one outside stops the program with a message.
    ///   - parameters: The buffer that holds `weight`.
    /// - Returns: The N embedding vectors, one after another.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func forward<S: LSTMScalar>(_ tokens: [Int32], parameters: ParameterBuffer<S>) -> [S] {
        let E = dimension
        var y = [S](repeating: 0, count: tokens.count * E)
        for (n, token) in tokens.enumerated() {
            require(token >= 0 && Int(token) < vocabularySize, "Embedding: token \(token) outside 0..<\(vocabularySize)")
            let src = weight.offset + Int(token) * E
            for j in 0..<E { y[n * E + j] = parameters.storage[src + j] }
        }
        return y
    }

    /// Adds each row of δY into the row of δW its token selected (rows of repeated tokens add up).
    /// - Parameters:
    ///   - dOutput: δY (N, E).
    ///   - tokens: The N token ids `forward` read (not range-checked here).
    ///   - gradients: The buffer δW is added into.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func backward<S: LSTMScalar>(dOutput: [S], tokens: [Int32], gradients: inout ParameterBuffer<S>) {
        let E = dimension
        require(dOutput.count == tokens.count * E, "Embedding.backward: got \(dOutput.count) values of dOutput, expected tokens × dimension = \(tokens.count) × \(E) = \(tokens.count * E)")
        for (n, token) in tokens.enumerated() {
            let dst = weight.offset + Int(token) * E
            for j in 0..<E { gradients.storage[dst + j] += dOutput[n * E + j] }
        }
    }
}
