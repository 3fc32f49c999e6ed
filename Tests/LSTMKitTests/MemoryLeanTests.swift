import Testing
@testable import LSTMKit

/// Memory-lean BPTT (`LSTM.checkpointInterval`): the gradients are bitwise those of the full stash, for any interval.
struct MemoryLeanTests {
    /// The δW products run their K rows last to first through negative strides: every kernel (each level this CPU
    /// has, 1 and 2 threads, Double) gives the reference's bits for that order — shapes across the 256-row K block
    /// and the 2 KB in-place limit.
    @Test func descendingProductsMatchTheReference() {
        var random = RandomSource(seed: 41)
        for (M, N, K) in [(4, 3, 1), (16, 5, 7), (64, 17, 300), (520, 9, 40), (36, 130, 513)] {
            let a = (0..<(K * M)).map { _ in Float(random.uniform(-1, 1)) }   // (K, M)
            let b = (0..<(K * N)).map { _ in Float(random.uniform(-1, 1)) }   // (K, N)
            let c0 = (0..<(M * N)).map { _ in Float(random.uniform(-1, 1)) }
            // The reference in the descending order: rows reversed, then the plain ascending chain.
            let ar = (0..<K).reversed().flatMap { k in a[(k * M)..<((k + 1) * M)] }
            let br = (0..<K).reversed().flatMap { k in b[(k * N)..<((k + 1) * N)] }
            var reference = c0
            GEMM.gemmReference(transposeA: true, transposeB: false, M: M, N: N, K: K, ar, lda: M, br, ldb: N,
                               &reference, ldc: N, accumulate: true)
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    let lastA = ap.baseAddress! + (K - 1) * M, lastB = bp.baseAddress! + (K - 1) * N
                    for threads in [1, 2] {
                        var out = c0
                        GEMM.gemm(transposeA: true, transposeB: false, M: M, N: N, K: K, lastA, lda: -M, lastB, ldb: -N,
                                  &out, ldc: N, accumulate: true, threads: threads)
                        #expect(out == reference, "M=\(M) N=\(N) K=\(K) threads=\(threads)")
                    }
                    for level in GEMM.floatKernelLevels {
                        var out = c0
                        GEMM.floatGEMM(level: level, transposeA: true, transposeB: false, M: M, N: N, K: K, lastA,
                                       lda: -M, lastB, ldb: -N, &out, ldc: N, accumulate: true)
                        #expect(out == reference, "level \(level) M=\(M) N=\(N) K=\(K)")
                    }
                }
            }
            let ad = a.map(Double.init), bd = b.map(Double.init), ard = ar.map(Double.init), brd = br.map(Double.init)
            var referenceD = c0.map(Double.init), outD = referenceD
            GEMM.gemmReference(transposeA: true, transposeB: false, M: M, N: N, K: K, ard, lda: M, brd, ldb: N,
                               &referenceD, ldc: N, accumulate: true)
            ad.withUnsafeBufferPointer { ap in
                bd.withUnsafeBufferPointer { bp in
                    GEMM.gemm(transposeA: true, transposeB: false, M: M, N: N, K: K, ap.baseAddress! + (K - 1) * M,
                              lda: -M, bp.baseAddress! + (K - 1) * N, ldb: -N, &outD, ldc: N, accumulate: true, threads: 2)
                }
            }
            #expect(outD == referenceD, "Double M=\(M) N=\(N) K=\(K)")
        }
    }

    /// Outputs, final states, every parameter gradient, δx, δh0 and δc0: the same bits with checkpoints every k steps
    /// as with the full stash, for k from 1 to past T, in Float (the fast kernels, 2 threads) and Double, plain and with
    /// variable lengths, projection, layer normalization, peepholes, clipping and both dropouts.
    static let cases: [(String, LSTMActivations, Int, [Int]?, Double, Double)] = [
        ("plain", .standard, 0, nil, 0, 0),
        ("lengths", .standard, 0, [9, 3, 7, 1], 0, 0),
        ("projection + layer norm + peepholes", LSTMActivations(peepholes: true, layerNorm: true), 3, nil, 0, 0),
        ("lengths + clip + hard σ + dropouts", LSTMActivations(gate: .hardSigmoid, cell: .tanh, cellClip: 0.5),
         0, [2, 9, 9, 5], 0.3, 0.3),
        ("everything", LSTMActivations(cellClip: 0.8, peepholes: true, layerNorm: true), 2, [9, 4, 6, 8], 0.2, 0.2),
        // No row reaches T = 9: the windows past step 4 hold no rows at all.
        ("short rows, empty windows", LSTMActivations(layerNorm: true), 0, [4, 2, 3, 1], 0.2, 0),
    ]

    @Test(arguments: cases)
    func gradientsAreBitwiseThoseOfTheFullStash(name: String, activations: LSTMActivations, projection: Int,
                                                lengths: [Int]?, dropout: Double, recurrentDropout: Double) throws {
        var configuration = GradientCheck.Configuration(layers: 3, inputSize: 3, hiddenSize: 5, batch: 4, steps: 9,
                                                        activations: activations, parameterScale: 1.5,
                                                        dropout: dropout, dropoutSeed: 3)
        configuration.projectionSize = projection
        configuration.recurrentDropout = recurrentDropout
        configuration.lengths = lengths
        let problem = try GradientCheck.Problem(configuration, seed: 17)
        let seed: UInt64? = dropout > 0 || recurrentDropout > 0 ? 3 : nil
        func run<S: LSTMScalar>(_: S.Type, interval: Int, threads: Int, inputGradient: Bool = true) throws -> [[S]] {
            let lstm = try problem.lstm.withCheckpointInterval(interval)
            let p = ParameterBuffer<S>(converting: problem.parameters)
            let c = { (a: [Double]) in a.map { S($0) } }
            let s = problem.initial
            let stash = LSTMStash<S>(threads: threads)
            let out = lstm.forward(c(problem.x), steps: 9, batch: 4, lengths: lengths,
                                   initial: LSTMState(hidden: c(s.hidden), cell: c(s.cell), layers: s.layers, batch: 4,
                                                      hiddenSize: s.hiddenSize, cellSize: s.cellSize),
                                   parameters: p, stash: stash, dropoutSeed: seed)
            var g = ParameterBuffer<S>(layout: p.layout)
            let f = problem.dFinal!
            let d = lstm.backward(dOutput: c(problem.dOutput),
                                  dFinal: LSTMState(hidden: c(f.hidden), cell: c(f.cell), layers: f.layers, batch: 4,
                                                    hiddenSize: f.hiddenSize, cellSize: f.cellSize),
                                  parameters: p, stash: stash, gradients: &g, inputGradient: inputGradient)
            return [out.output, out.final.hidden, out.final.cell, g.storage, d.input, d.initial.hidden, d.initial.cell]
        }
        let fullF = try run(Float.self, interval: 0, threads: 2), fullD = try run(Double.self, interval: 0, threads: 1)
        for k in [1, 2, 3, 4, 8, 9, 20] {
            #expect(try run(Float.self, interval: k, threads: 2) == fullF, "\(name): Float, checkpoint every \(k)")
            #expect(try run(Double.self, interval: k, threads: 1) == fullD, "\(name): Double, checkpoint every \(k)")
        }
        // Without δx (inputGradient: false): an empty δx, everything else the same bits.
        for k in [0, 3] {
            var float = try run(Float.self, interval: k, threads: 2, inputGradient: false)
            var double = try run(Double.self, interval: k, threads: 1, inputGradient: false)
            #expect(float[4].isEmpty && double[4].isEmpty, "\(name): δx computed")
            float[4] = fullF[4]
            double[4] = fullD[4]
            #expect(float == fullF && double == fullD, "\(name): without δx, checkpoint every \(k)")
        }
    }

    /// The stash holds one window: for T = 60, k = 8 its per-step buffers are 8/60 of the full stash's.
    @Test func stashHoldsOneWindow() throws {
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: 3, hiddenSize: 16, checkpointInterval: 8, layout: &layout)
        let parameters = ParameterBuffer<Float>(layout: layout)
        let full = LSTMStash<Float>(), lean = LSTMStash<Float>()
        let x = [Float](repeating: 0.1, count: 60 * 2 * 3)
        _ = try lstm.withCheckpointInterval(0).forward(x, steps: 60, batch: 2, parameters: parameters, stash: full)
        _ = lstm.forward(x, steps: 60, batch: 2, parameters: parameters, stash: lean)
        #expect(lean.schedule.windows.count == 8 && lean.schedule.windowRows == 16)
        #expect(full.gates.capacity == 60 * 2 * 64 && lean.gates.capacity == 16 * 64)
        #expect(lean.checkpoints.capacity == 8 * 2 * 32)
    }

    /// `withCheckpointInterval` on an LSTM whose tensors do not start the layout (a character model's: the
    /// embedding comes first) keeps its tensors where they are, and still gives the full stash's bits.
    @Test func checkpointingALoadedModelKeepsItsLayout() throws {
        let model = try CharacterModel(.init(vocabularySize: 7, embedding: 3, hidden: 6, layers: 2, layerNorm: true))
        var parameters = ParameterBuffer<Float>(layout: model.layout)
        var random = RandomSource(seed: 2)
        model.initialize(&parameters, random: &random)
        let lean = try model.lstm.withCheckpointInterval(2)
        #expect(lean.layers == model.lstm.layers && lean.checkpointInterval == 2)
        #expect(model.lstm.layers[0].weightIH.offset == 21)
        let x = (0..<(7 * 2 * 3)).map { _ in Float(random.uniform(-1, 1)) }
        let dy = (0..<(7 * 2 * 6)).map { _ in Float(random.uniform(-1, 1)) }
        var results: [[Float]] = []
        for lstm in [model.lstm, lean] {
            let stash = LSTMStash<Float>()
            let y = lstm.forward(x, steps: 7, batch: 2, parameters: parameters, stash: stash).output
            var g = ParameterBuffer<Float>(layout: model.layout)
            let d = lstm.backward(dOutput: dy, parameters: parameters, stash: stash, gradients: &g)
            results.append(y + g.storage + d.input)
        }
        #expect(results[0] == results[1])
        #expect(throws: LSTMKitError.self) { try model.lstm.withCheckpointInterval(-2) }
    }

    @Test func invalidIntervalsAreRejected() {
        var layout = ParameterLayout()
        #expect(throws: LSTMKitError.self) {
            try LSTM(LSTMConfiguration(inputSize: 2, hiddenSize: 3, bidirectional: true, checkpointInterval: 4), layout: &layout)
        }
        #expect(throws: LSTMKitError.self) {
            try LSTM(LSTMConfiguration(inputSize: 2, hiddenSize: 3, checkpointInterval: -1), layout: &layout)
        }
    }
}
