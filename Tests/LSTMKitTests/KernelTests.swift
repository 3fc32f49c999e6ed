import Testing
@testable import LSTMKit

/// The contiguous-access GEMM against the plain triple loop: bitwise, for every transpose combination, on shapes
/// that are not multiples of anything, with padded leading dimensions, overwriting and accumulating.
struct KernelTests {
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 17, 3), (3, 1, 17), (17, 3, 1), (5, 7, 9), (13, 4, 33), (2, 31, 8)]

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func gemmMatchesReference(transposeA: Bool, transposeB: Bool) {
        var random = RandomSource(seed: 99)
        for (M, N, K) in Self.shapes {
            for accumulate in [false, true] {
                let pad = 3
                let lda = (transposeA ? M : K) + pad, ldb = (transposeB ? K : N) + pad, ldc = N + pad
                let a = (0..<((transposeA ? K : M) * lda)).map { _ in Float(random.uniform(-1, 1)) }
                let b = (0..<((transposeB ? N : K) * ldb)).map { _ in Float(random.uniform(-1, 1)) }
                let c0 = (0..<(M * ldc)).map { _ in Float(random.uniform(-1, 1)) }
                var fast = c0, reference = c0
                GEMM.gemm(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda, b, ldb: ldb,
                          &fast, ldc: ldc, accumulate: accumulate)
                GEMM.gemmReference(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda,
                                   b, ldb: ldb, &reference, ldc: ldc, accumulate: accumulate)
                #expect(fast == reference, "M=\(M) N=\(N) K=\(K) accumulate=\(accumulate)")
                // Padding columns are never written.
                for i in 0..<M { for j in N..<ldc { #expect(fast[i * ldc + j] == c0[i * ldc + j]) } }
            }
        }
    }

    /// Batch-first input gives the time-major result, transposed, forward and backward.
    @Test func batchFirstEqualsTimeMajor() throws {
        let configuration = GradientCheck.Configuration(layers: 2, inputSize: 3, hiddenSize: 4, batch: 3, steps: 5)
        let p = try GradientCheck.Problem(configuration, seed: 2)
        let (T, B, I, H) = (5, 3, 3, 4)
        func transpose(_ a: [Double], _ outer: Int, _ inner: Int, _ width: Int) -> [Double] {
            var r = a
            for o in 0..<outer { for i in 0..<inner { for w in 0..<width {
                r[(i * outer + o) * width + w] = a[(o * inner + i) * width + w]
            } } }
            return r
        }
        let s1 = LSTMStash<Double>(), s2 = LSTMStash<Double>()
        let o1 = p.lstm.forward(p.x, steps: T, batch: B, initial: p.initial, parameters: p.parameters, stash: s1)
        let o2 = p.lstm.forward(transpose(p.x, T, B, I), steps: T, batch: B, initial: p.initial, layout: .batchFirst,
                                parameters: p.parameters, stash: s2)
        #expect(transpose(o2.output, B, T, H) == o1.output)
        #expect(o1.final == o2.final)
        var g1 = ParameterBuffer<Double>(layout: p.parameters.layout), g2 = g1
        let d1 = p.lstm.backward(dOutput: p.dOutput, parameters: p.parameters, stash: s1, gradients: &g1)
        let d2 = p.lstm.backward(dOutput: transpose(p.dOutput, T, B, H), parameters: p.parameters, stash: s2,
                                 gradients: &g2)
        #expect(transpose(d2.input, B, T, I) == d1.input)
        #expect(g1.storage == g2.storage)
    }
}

/// Splitting the products over threads changes nothing: a character-model training run is bitwise the same on 1,
/// 2 and 3 threads, on shapes big enough that the split really happens.
struct ThreadingTests {
    @Test func threadCountDoesNotChangeResults() throws {
        var random = RandomSource(seed: 5)
        let text = (0..<4000).map { _ in Unicode.Scalar(UInt8(97 + random.index(below: 20))) }
        let vocabulary = try Vocabulary(building: text)
        let tokens = try vocabulary.encode(text, source: "test")
        var options = TrainingOptions()
        options.seqLength = 16
        options.batch = 8
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let trainer = try CharacterTrainer(
                tokens: tokens, vocabulary: vocabulary,
                model: .init(vocabularySize: vocabulary.count, embedding: 16, hidden: 48, layers: 2), options: options)
            trainer.threads = threads
            for _ in 0..<3 { try trainer.trainStep() }
            results.append(trainer.parameters.storage)
        }
        #expect(results[0] == results[1])
        #expect(results[0] == results[2])
    }

    @Test func threadedGemmMatchesReference() {
        var random = RandomSource(seed: 6)
        for (transposeA, transposeB) in [(false, false), (false, true), (true, false)] {
            let (M, N, K) = (37, 255, 33)
            let a = (0..<(M * K)).map { _ in Float(random.uniform(-1, 1)) }
            let b = (0..<(K * N)).map { _ in Float(random.uniform(-1, 1)) }
            var fast = [Float](repeating: 0, count: M * N), reference = fast
            GEMM.gemm(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: transposeA ? M : K,
                      b, ldb: transposeB ? K : N, &fast, ldc: N, accumulate: false, threads: 2)
            GEMM.gemmReference(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: transposeA ? M : K,
                               b, ldb: transposeB ? K : N, &reference, ldc: N, accumulate: false)
            #expect(fast == reference)
        }
    }
}

/// The C kernel (`_LSTMKernels`) on shapes that are not multiples of its 6×16 tile, against the fma reference
/// and against its own portable path, bit for bit.
struct FloatKernelTests {
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (3, 17, 1), (17, 3, 255), (255, 17, 3), (7, 255, 33),
                                            (1, 1023, 5), (37, 40, 1023), (6, 16, 1024), (13, 33, 1100)]

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func cKernelMatchesReference(transposeA: Bool, transposeB: Bool) {
        var random = RandomSource(seed: 17)
        for (M, N, K) in Self.shapes {
            let lda = transposeA ? M + 1 : K + 2, ldb = transposeB ? K + 3 : N + 1, ldc = N + 5
            let a = (0..<((transposeA ? K : M) * lda)).map { _ in Float(random.uniform(-1, 1)) }
            let b = (0..<((transposeB ? N : K) * ldb)).map { _ in Float(random.uniform(-1, 1)) }
            let c0 = (0..<(M * ldc)).map { _ in Float(random.uniform(-1, 1)) }
            for accumulate in [false, true] {
                var reference = c0
                GEMM.gemmReference(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda,
                                   b, ldb: ldb, &reference, ldc: ldc, accumulate: accumulate)
                for threads in [1, 2] {
                    var fast = c0
                    GEMM.gemm(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda, b,
                              ldb: ldb, &fast, ldc: ldc, accumulate: accumulate, threads: threads)
                    #expect(fast == reference, "M=\(M) N=\(N) K=\(K) accumulate=\(accumulate) threads=\(threads) kernel=\(GEMM.floatKernel)")
                }
                var portable = c0
                GEMM.portableFloatGEMM(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda,
                                       b, ldb: ldb, &portable, ldc: ldc, accumulate: accumulate)
                #expect(portable == reference, "portable M=\(M) N=\(N) K=\(K)")
            }
        }
    }
}
