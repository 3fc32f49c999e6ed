import Foundation
import Testing
@testable import LSTMKit
import _LSTMKernels

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

    /// Weights packed on several threads (each a block of whole panels or unit groups) are the bytes one thread
    /// packs, on shapes past the 256 K-float threshold where the split happens, with ragged last blocks.
    @Test func threadedPackingIsTheSame() {
        var random = RandomSource(seed: 9)
        for (N, K, transposeB) in [(1000, 300, true), (1000, 300, false), (4 * 300, 230, true)] {
            let b = (0..<(N * K)).map { _ in Float(random.uniform(-1, 1)) }
            var packs: [[Float]] = []
            for threads in [1, 2, 3] {
                let buffer = AlignedBuffer<Float>()
                b.withUnsafeBufferPointer { b in
                    _ = GEMM.prepare(transposeB: transposeB, K: K, N: N, b.baseAddress!, ldb: transposeB ? K : N,
                                     buffer: buffer, threads: threads)
                }
                packs.append(Array(UnsafeBufferPointer(start: buffer.pointer, count: lstmk_sgemm_packed_size(N, K))))
            }
            #expect(packs[0] == packs[1] && packs[0] == packs[2], "\(N)×\(K), transposed \(transposeB)")
        }
        // Gate-interleaved (inference): H = 300 units, 19 groups of 16, W (4H, K).
        let (H, K) = (300, 230)
        let w = (0..<(4 * H * K)).map { _ in Float(random.uniform(-1, 1)) }
        var packs: [[Float]] = []
        for threads in [1, 2, 3] {
            let buffer = AlignedBuffer<Float>()
            let operand = w.withUnsafeBufferPointer {
                LSTM.packGateInterleaved($0.baseAddress!, hidden: H, K: K, into: buffer, threads: threads)
            }
            packs.append(Array(UnsafeBufferPointer(start: buffer.pointer, count: lstmk_sgemm_packed_size(operand.N, K))))
        }
        #expect(packs[0] == packs[1] && packs[0] == packs[2], "gate-interleaved")
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

/// The C kernel (`_LSTMKernels`) on shapes that are not multiples of its 6×16, 8×48 and 8×32 tiles, against the fma reference
/// and against its own portable path, bit for bit.
struct FloatKernelTests {
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (3, 17, 1), (17, 3, 255), (255, 17, 3), (7, 255, 33),
                                            (1, 1023, 5), (37, 40, 1023), (6, 16, 1024), (13, 33, 1100),
                                            // across the row block (MC = 144) and the column block (NC = 4096)
                                            (151, 20, 300), (2, 4113, 3),
                                            // the AVX-512 kernel's 4-row tile for the last rows (M mod 8 = 1...4)
                                            (4, 31, 65), (8, 40, 70), (20, 17, 9), (32, 50, 129), (64, 33, 200),
                                            // its column runs: 64 = 32 + 32, 112 = 32 + 48 + 32, 80 = 48 + 32,
                                            // 57 = 32 + 25, with K not a multiple of its 4-step loop
                                            (9, 112, 37), (5, 57, 6), (12, 80, 130), (16, 64, 3),
                                            // the 6-row kernels' blocks ending in two 4-row tiles (M mod 6 = 1 or 2;
                                            // also 7, 8, 13, 20, 32, 37 and 151 = 144 + 7 above)
                                            (25, 47, 130), (26, 64, 31)]

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
                for level in GEMM.floatKernelLevels {
                    var out = c0
                    GEMM.floatGEMM(level: level, transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a,
                                   lda: lda, b, ldb: ldb, &out, ldc: ldc, accumulate: accumulate)
                    #expect(out == reference, "level \(level) M=\(M) N=\(N) K=\(K) accumulate=\(accumulate)")
                }
            }
        }
    }
}

/// The Float element-wise kernels: accuracy against libm in Double, and every vector path (AVX-512, AVX2) equal to
/// the portable one.
/// δW_ih and δW_hh together (`lstmk_sgemm_pair`, each block of δZᵀ packed once): bitwise the two products one
/// after the other, ascending and descending, with A read in place (rows ≤ 512 floats apart, ≤ 48 columns in all) and
/// packed, several KC blocks, widths that are not multiples of 16, the fallback past 1024 columns together, on 1 to 3
/// threads.
struct PairedProductTests {
    /// The pair against two lstmk_sgemm calls, and its row sums (δb alongside δW) against one chain of adds per row
    /// of op(A) in k order: A read in place (21 columns), packed (whole tiles, a last partial block of rows, rows 700
    /// apart) and the two products one after the other (4100 columns); 1–3 threads and an adaptive split.
    @Test(arguments: [false, true])
    func pairEqualsTwoProducts(descending: Bool) {
        var random = RandomSource(seed: 23)
        // (M, K, N1, N2, row stride of A): 4H rows; K = window rows; N1 = In, N2 = P.
        let shapes = [(64, 37, 5, 16, 64), (151, 300, 65, 40, 160), (512, 270, 64, 128, 512), (96, 40, 33, 17, 700),
                      (48, 20, 4000, 100, 48)]
        for (M, K, N1, N2, lda) in shapes {
            let a = (0..<(K * lda)).map { _ in Float(random.uniform(-1, 1)) }
            let b1 = (0..<(K * N1)).map { _ in Float(random.uniform(-1, 1)) }
            let b2 = (0..<(K * N2)).map { _ in Float(random.uniform(-1, 1)) }
            let c1 = (0..<(M * N1)).map { _ in Float(random.uniform(-1, 1)) }
            let c2 = (0..<(M * N2)).map { _ in Float(random.uniform(-1, 1)) }
            let last = descending ? K - 1 : 0, sign = descending ? -1 : 1
            var r1 = c1, r2 = c2
            let s0 = (0..<M).map { _ in Float(random.uniform(-1, 1)) }
            var rs = s0
            for k in 0..<K {
                let row = descending ? K - 1 - k : k
                for i in 0..<M { rs[i] = rs[i] + a[row * lda + i] }
            }
            a.withUnsafeBufferPointer { a in
                b1.withUnsafeBufferPointer { b1 in
                    b2.withUnsafeBufferPointer { b2 in
                        let pa = a.baseAddress! + last * lda, p1 = b1.baseAddress! + last * N1
                        let p2 = b2.baseAddress! + last * N2
                        lstmk_sgemm(M, N1, K, pa, 1, sign * lda, p1, sign * N1, 1, &r1, N1, 1)
                        lstmk_sgemm(M, N2, K, pa, 1, sign * lda, p2, sign * N2, 1, &r2, N2, 1)
                        for threads in [1, 2, 3] {
                            var o1 = c1, o2 = c2, os = s0
                            GEMM.accumulateTransposedPair(M: M, K: K, pa, lda: sign * lda, N1: N1, p1, ldb1: sign * N1,
                                                          &o1, ldc1: N1, N2: N2, p2, ldb2: sign * N2, &o2, ldc2: N2,
                                                          threads: threads)
                            #expect(o1 == r1 && o2 == r2, "M=\(M) K=\(K) N1=\(N1) N2=\(N2) lda=\(lda) threads=\(threads)")
                            o1 = c1
                            o2 = c2
                            os.withUnsafeMutableBufferPointer { sums in
                                GEMM.accumulateTransposedPair(M: M, K: K, pa, lda: sign * lda, N1: N1, p1,
                                                              ldb1: sign * N1, &o1, ldc1: N1, N2: N2, p2, ldb2: sign * N2,
                                                              &o2, ldc2: N2, threads: threads, sums: sums.baseAddress!)
                            }
                            #expect(o1 == r1 && o2 == r2 && os == rs, "M=\(M) K=\(K) lda=\(lda) threads=\(threads), sums")
                        }
                        // Blocks of rows sized by an adaptive split that has seen the first thread run 3× slower.
                        let split = AdaptiveSplit()
                        let even = split.bounds(M, parts: 2, granule: 8)
                        split.record(bounds: even, seconds: [3, 1])
                        #expect(M < 32 || split.bounds(M, parts: 2, granule: 8)[1] < even[1], "M=\(M)")
                        var o1 = c1, o2 = c2, os = s0
                        os.withUnsafeMutableBufferPointer { sums in
                            GEMM.accumulateTransposedPair(M: M, K: K, pa, lda: sign * lda, N1: N1, p1, ldb1: sign * N1,
                                                          &o1, ldc1: N1, N2: N2, p2, ldb2: sign * N2, &o2, ldc2: N2,
                                                          threads: 2, split: split, sums: sums.baseAddress!)
                        }
                        #expect(o1 == r1 && o2 == r2 && os == rs,
                                "M=\(M) K=\(K) N1=\(N1) N2=\(N2) lda=\(lda) adaptive split")
                    }
                }
            }
        }
    }
}

struct ActivationKernelTests {
    /// A dense grid over the range that matters, the branch points of tanh (±0.625) and tiny and huge values.
    static let grid: [Float] = {
        var xs: [Float] = stride(from: -30.0, through: 30.0, by: 0.00123).map { Float($0) }
        xs += [0, -0, 1e-30, -1e-30, 1e-7, -1e-7, 0.625, -0.625, 0.6249999, -0.6249999, 88, -88, 100, -100, 1e30, -1e30]
        return xs
    }()

    /// σ: 1/(1+e^{-z}) with Cephes' expf, and tanh: within 3e-7 relative of libm in Double wherever the result is a
    /// normal Float (measured: see the printed line and the comment in pointwise.c).
    @Test func accuracyAgainstLibm() {
        let x = Self.grid
        let sigmoid = LSTMPointwise.floatActivation(0, x), tanh = LSTMPointwise.floatActivation(1, x)
        var worstSigmoid = 0.0, worstTanh = 0.0
        for k in x.indices {
            let d = Double(x[k])
            let s = 1 / (1 + Foundation.exp(-d)), t = Foundation.tanh(d)
            // Below the smallest normal Float (σ < 1.2e-38, z < −87) the kernel clamps; only the absolute error counts.
            if s >= Double(Float.leastNormalMagnitude) {
                worstSigmoid = max(worstSigmoid, abs(Double(sigmoid[k]) - s) / s)
            } else {
                #expect(abs(Double(sigmoid[k]) - s) <= Double(Float.leastNormalMagnitude))
            }
            if t != 0 { worstTanh = max(worstTanh, abs(Double(tanh[k]) - t) / abs(t)) } else { #expect(tanh[k] == 0) }
        }
        print("max relative error: sigmoid \(worstSigmoid), tanh \(worstTanh)")
        #expect(worstSigmoid <= 3e-7)
        #expect(worstTanh <= 3e-7)
        #expect(sigmoid.allSatisfy { $0 >= 0 && $0 <= 1 } && tanh.allSatisfy { $0 >= -1 && $0 <= 1 })
    }

    /// Every vector width this CPU has (kernel 0: the widest, AVX-512 where there is one; 2: at most AVX2) against the
    /// portable code (kernel 1).
    @Test func vectorPathEqualsPortablePath() {
        let x = Self.grid
        for function in [0, 1] {
            let portable = LSTMPointwise.floatActivation(function, x, portable: true)
            for kernel: Int32 in [0, 2] {
                #expect(LSTMPointwise.floatActivation(function, x, kernel: kernel) == portable, "kernel \(kernel)")
            }
        }
        var random = RandomSource(seed: 3)
        // AVX-512: 64 units four vectors at once, one vector of 16, then AVX2's 8, then a scalar tail of 5; AVX2: two
        // times 32 units four vectors at once, three vectors of 8, the tail of 5.
        let (B, H) = (3, 93)
        for gate in GateActivation.allCases {
            for cellActivation in CellActivation.allCases {
                let z = (0..<(B * 4 * H)).map { _ in Float(random.uniform(-6, 6)) }
                let cPrev = (0..<(B * H)).map { _ in Float(random.uniform(-2, 2)) }
                var g1 = z, c1 = [Float](repeating: 0, count: B * H), h1 = c1
                var g2 = z, c2 = c1, h2 = c1
                var g3 = z, c3 = c1, h3 = c1
                LSTMPointwise.floatForward(gates: &g3, previousCell: cPrev, cell: &c3, hidden: &h3, batch: B, hidden: H,
                                           gate: gate, cellActivation: cellActivation, kernel: 2)
                z.withUnsafeBufferPointer { _ in
                    g1.withUnsafeMutableBufferPointer { g in
                        c1.withUnsafeMutableBufferPointer { c in
                            h1.withUnsafeMutableBufferPointer { h in
                                cPrev.withUnsafeBufferPointer { p in
                                    LSTMPointwise.forward(gates: g.baseAddress!, previousCell: p.baseAddress!,
                                                          cell: c.baseAddress!, hidden: h.baseAddress!, batch: B,
                                                          hidden: H, gate: gate, cellActivation: cellActivation)
                                }
                            }
                        }
                    }
                }
                LSTMPointwise.portableFloatForward(gates: &g2, previousCell: cPrev, cell: &c2, hidden: &h2, batch: B,
                                                   hidden: H, gate: gate, cellActivation: cellActivation)
                #expect(g1 == g2 && c1 == c2 && h1 == h2, "\(gate) \(cellActivation)")
                #expect(g3 == g2 && c3 == c2 && h3 == h2, "\(gate) \(cellActivation) at most AVX2")
            }
        }
    }
}

/// The Float backward element-wise pass in C (AVX-512, AVX2 and portable) against the Swift loop it replaces, bit for
/// bit, for every activation mode, with and without δh from above, and saturated gates (hard σ at 0 and 1).
struct BackwardPointwiseTests {
    /// The bias gradients' column sums (`lstmk_column_sums`): every path the same bits as one chain of adds per
    /// column over the rows in order, rows first to last and last to first (negative stride), across the 256-column
    /// register blocks, the 64-column blocks after them and a masked tail.
    @Test func columnSumsAreOneChainPerColumn() {
        var random = RandomSource(seed: 41)
        for (rows, cols, ld) in [(1, 1, 1), (7, 15, 17), (33, 256, 256), (50, 300, 301), (9, 529, 600), (0, 20, 20),
                                 (40, 64, 64), (12, 130, 131), (5, 400, 400)] {
            let a = (0..<(max(rows, 1) * ld)).map { _ in Float(random.uniform(-1, 1)) }
            let start = (0..<cols).map { _ in Float(random.uniform(-1, 1)) }
            for descending in [false, true] {
                var expected = start
                for i in 0..<rows {
                    let r = descending ? rows - 1 - i : i
                    for j in 0..<cols { expected[j] += a[r * ld + j] }
                }
                for portable: Int32 in [0, 1] {
                    var sum = start
                    a.withUnsafeBufferPointer { p in
                        let first = p.baseAddress! + (descending ? max(rows - 1, 0) * ld : 0)
                        lstmk_column_sums(first, rows, descending ? -ld : ld, cols, &sum, portable)
                    }
                    #expect(sum == expected, "rows \(rows) cols \(cols) descending \(descending) portable \(portable)")
                }
            }
        }
    }

    @Test func cBackwardEqualsSwiftLoop() {
        var random = RandomSource(seed: 5)
        let (B, H) = (3, 93)  // AVX-512: 5 vectors of 16, AVX2's 8, a scalar tail of 5; AVX2: 11 vectors of 8, the tail
        for gate in GateActivation.allCases {
            for cellActivation in CellActivation.allCases {
                for (withOutput, clip, peep) in [(false, nil, false), (true, nil, false), (true, 0.75, false),
                                                 (true, nil, true), (false, 0.75, true)] as [(Bool, Double?, Bool)] {
                    var z = (0..<(B * 4 * H)).map { _ in Float(random.uniform(-6, 6)) }
                    let cPrev = (0..<(B * H)).map { _ in Float(random.uniform(-2, 2)) }
                    let peepholes: [Float]? = peep ? (0..<(3 * H)).map { _ in Float(random.uniform(-1, 1)) } : nil
                    var c = [Float](repeating: 0, count: B * H), h = c
                    var zPortable = z, cPortable = c, hPortable = h
                    let peepStorage = peepholes ?? [0]
                    peepStorage.withUnsafeBufferPointer { pp in
                        LSTMPointwise.forward(gates: &z, previousCell: cPrev, cell: &c, hidden: &h, batch: B, hidden: H,
                                              gate: gate, cellActivation: cellActivation, cellClip: clip,
                                              peepholes: peep ? pp.baseAddress! : nil)
                    }
                    LSTMPointwise.portableFloatForward(gates: &zPortable, previousCell: cPrev, cell: &cPortable,
                                                       hidden: &hPortable, batch: B, hidden: H, gate: gate,
                                                       cellActivation: cellActivation, cellClip: clip,
                                                       peepholes: peepholes)
                    #expect(z == zPortable && c == cPortable && h == hPortable)
                    if let clip {
                        // Clipping happened, and held exactly at the bound.
                        #expect(c.allSatisfy { abs($0) <= Float(clip) })
                        #expect(c.contains { abs($0) == Float(clip) } && c.contains { abs($0) < Float(clip) })
                    }
                    let dOut = withOutput ? (0..<(B * H)).map { _ in Float(random.uniform(-1, 1)) } : nil
                    let dCarry = (0..<(B * H)).map { _ in Float(random.uniform(-1, 1)) }
                    let dc0 = (0..<(B * H)).map { _ in Float(random.uniform(-1, 1)) }
                    var dcSwift = dc0, dzSwift = [Float](repeating: 0, count: B * 4 * H)
                    let dOutStorage = dOut ?? [0]
                    dcSwift.withUnsafeMutableBufferPointer { dc in
                        dzSwift.withUnsafeMutableBufferPointer { dz in
                            dOutStorage.withUnsafeBufferPointer { o in
                                peepStorage.withUnsafeBufferPointer { pp in
                                    LSTMPointwise.backwardLoop(
                                        gates: z, previousCell: cPrev, cell: c, dOutput: withOutput ? o.baseAddress! : nil,
                                        dHiddenCarry: dCarry, dCellCarry: dc.baseAddress!, dGates: dz.baseAddress!,
                                        batch: B, hidden: H, gate: gate, cellActivation: cellActivation, cellClip: clip,
                                        peepholes: peep ? pp.baseAddress! : nil)
                                }
                            }
                        }
                    }
                    for kernel: Int32 in [0, 2, 1] {  // the widest vectors, at most AVX2, portable
                        var dc = dc0, dz = [Float](repeating: 0, count: B * 4 * H)
                        LSTMPointwise.floatBackward(gates: z, previousCell: cPrev, cell: c, dOutput: dOut,
                                                    dHiddenCarry: dCarry, dCellCarry: &dc, dGates: &dz, batch: B,
                                                    hidden: H, gate: gate, cellActivation: cellActivation,
                                                    cellClip: clip, peepholes: peepholes, kernel: kernel)
                        #expect(dc == dcSwift && dz == dzSwift, "\(gate) \(cellActivation) output=\(withOutput) clip=\(String(describing: clip)) peep=\(peep) kernel=\(kernel)")
                    }
                }
            }
        }
    }
}

/// B packed once (`GEMM.prepare`) gives the bits of the plain product, for every split of the columns.
struct PreparedOperandTests {
    /// A prepared product with a bias: bitwise C += b (or C = b) and then the product, on every level, thread count,
    /// and the one-row path; for Double too.
    @Test func preparedWithBiasEqualsBiasThenProduct() {
        var random = RandomSource(seed: 29)
        for (M, N, K) in [(1, 40, 30), (2, 212, 300), (3, 100, 600), (4, 1030, 70), (8, 512, 128), (13, 100, 600),
                          (64, 33, 70), (150, 64, 20)] {
            let a = (0..<(M * K)).map { _ in Float(random.uniform(-1, 1)) }
            let b = (0..<(K * N)).map { _ in Float(random.uniform(-1, 1)) }
            let bias = (0..<N).map { _ in Float(random.uniform(-1, 1)) }
            let c0 = (0..<(M * N)).map { _ in Float(random.uniform(-1, 1)) }
            for accumulate in [false, true] {
                var expected = accumulate ? c0 : [Float](repeating: 0, count: M * N)
                for i in 0..<M { for j in 0..<N { expected[i * N + j] += bias[j] } }
                GEMM.gemm(transposeA: false, transposeB: false, M: M, N: N, K: K, a, lda: K, b, ldb: N, &expected,
                          ldc: N, accumulate: true)
                let buffer = AlignedBuffer<Float>()
                b.withUnsafeBufferPointer { bs in
                    let prepared = GEMM.prepare(transposeB: false, K: K, N: N, bs.baseAddress!, ldb: N, buffer: buffer)
                    for threads in [1, 2, 3] {
                        var fast = c0
                        GEMM.gemm(transposeA: false, M: M, a, lda: K, prepared, &fast, ldc: N, accumulate: accumulate,
                                  threads: threads, bias: bias)
                        #expect(fast == expected, "M=\(M) N=\(N) K=\(K) accumulate=\(accumulate) threads=\(threads)")
                    }
                    for level in GEMM.floatKernelLevels where accumulate {
                        var out = c0
                        GEMM.floatGEMM(level: level, transposeA: false, M: M, a, lda: K, prepared, &out, ldc: N,
                                       accumulate: true, bias: bias)
                        #expect(out == expected, "level \(level) M=\(M) N=\(N) K=\(K)")
                    }
                }
                let da = a.map(Double.init), db = b.map(Double.init), dbias = bias.map(Double.init)
                var dExpected = accumulate ? c0.map(Double.init) : [Double](repeating: 0, count: M * N)
                for i in 0..<M { for j in 0..<N { dExpected[i * N + j] += dbias[j] } }
                GEMM.gemm(transposeA: false, transposeB: false, M: M, N: N, K: K, da, lda: K, db, ldb: N, &dExpected,
                          ldc: N, accumulate: true)
                db.withUnsafeBufferPointer { bs in
                    let prepared = GEMM.prepare(transposeB: false, K: K, N: N, bs.baseAddress!, ldb: N,
                                                buffer: AlignedBuffer<Double>())
                    var out = c0.map(Double.init)
                    GEMM.gemm(transposeA: false, M: M, da, lda: K, prepared, &out, ldc: N, accumulate: accumulate,
                              threads: 2, bias: dbias)
                    #expect(out == dExpected, "Double M=\(M) N=\(N) K=\(K) accumulate=\(accumulate)")
                }
            }
        }
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func preparedEqualsPlain(transposeA: Bool, transposeB: Bool) {
        var random = RandomSource(seed: 23)
        // M = 1 takes the row kernel over the panels (128- and 64-column blocks, then single panels, several KC
        // blocks; 212 = 128 + 64 + 20); M = 2–4 (rows in place) the row kernels too, up to four rows a pass; with
        // more than 512 KB of weights a thread (700 × 520: 1.4 MB) in runs of 128 columns, alternately last to first
        // from one call to the next (each shape is multiplied several times below, on 1–3 threads).
        for (M, N, K) in [(1, 17, 3), (1, 100, 600), (1, 1030, 70), (1, 212, 300), (2, 212, 300), (3, 1030, 70),
                          (4, 100, 600), (4, 17, 3), (1, 700, 520), (3, 700, 520), (5, 300, 257), (13, 513, 40),
                          (64, 1024, 300), (150, 33, 520)] {
            let ldb = transposeB ? K : N, lda = transposeA ? M + 2 : K
            let a = (0..<((transposeA ? K : M) * lda)).map { _ in Float(random.uniform(-1, 1)) }
            let b = (0..<(K * N)).map { _ in Float(random.uniform(-1, 1)) }
            let c0 = (0..<(M * N)).map { _ in Float(random.uniform(-1, 1)) }
            for accumulate in [false, true] {
                var plain = c0
                GEMM.gemm(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda, b, ldb: ldb,
                          &plain, ldc: N, accumulate: accumulate)
                let buffer = AlignedBuffer<Float>()
                b.withUnsafeBufferPointer { bs in
                    let prepared = GEMM.prepare(transposeB: transposeB, K: K, N: N, bs.baseAddress!, ldb: ldb, buffer: buffer)
                    for threads in [1, 2, 3] {
                        var fast = c0
                        GEMM.gemm(transposeA: transposeA, M: M, a, lda: lda, prepared, &fast, ldc: N,
                                  accumulate: accumulate, threads: threads)
                        #expect(fast == plain, "M=\(M) N=\(N) K=\(K) threads=\(threads)")
                    }
                    var portable = c0
                    GEMM.portableFloatGEMM(transposeA: transposeA, M: M, a, lda: lda, prepared, &portable, ldc: N,
                                           accumulate: accumulate)
                    #expect(portable == plain, "portable M=\(M) N=\(N) K=\(K)")
                    for level in GEMM.floatKernelLevels {
                        var out = c0
                        GEMM.floatGEMM(level: level, transposeA: transposeA, M: M, a, lda: lda, prepared, &out, ldc: N,
                                       accumulate: accumulate)
                        #expect(out == plain, "level \(level) M=\(M) N=\(N) K=\(K)")
                    }
                }
            }
        }
    }
}
