import Dispatch
import _LSTMKernels

/// Dense matrix products on row-major buffers: C (M, N) = op(A) · op(B), or C += op(A) · op(B).
///
/// `op(A)` is A (M, K) with row stride `lda`, or, when `transposeA`, Aᵀ where A is stored (K, M). The same for B:
/// B (K, N), or Bᵀ with B stored (N, K). These are the four products an LSTM needs:
///
/// ```
/// Z  (T·B, 4H)  = X  (T·B, I) · W_ihᵀ        (A, Bᵀ)   input projection for all steps at once
/// Z_t  (B, 4H) += h_{t-1} (B, H) · W_hhᵀ     (A, Bᵀ)   the recurrent product, per step
/// δh_{t-1} (B, H) = δZ_t (B, 4H) · W_hh      (A, B)    per step
/// δW (4H, I)   += δZᵀ (4H, T·B) · X          (Aᵀ, B)   after the loop, over all rows
/// ```
///
/// Every element of C is one chain of fused multiply-adds, acc ← fma(a_k, b_k, acc) for k ascending, starting from
/// C or 0, whatever M and N are: a row of C does not depend on which other rows are computed in the same call (one
/// step at a time and the whole sequence at once give the same bits), nor on how the columns are split over threads,
/// nor on the CPU (the AVX2 kernel and the portable one round identically, since fma is correctly rounded).
/// `gemmReference` is the plain triple loop every faster kernel is tested against, bit for bit.
public enum GEMM {
    /// The plain definition: C[i, j] (+)= Σ_k op(A)[i, k] · op(B)[k, j], k ascending, each step one fma.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func gemmReference<S: LSTMScalar>(
        transposeA: Bool, transposeB: Bool, M: Int, N: Int, K: Int,
        _ A: UnsafePointer<S>, lda: Int, _ B: UnsafePointer<S>, ldb: Int,
        _ C: UnsafeMutablePointer<S>, ldc: Int, accumulate: Bool
    ) {
        for i in 0..<M {
            for j in 0..<N {
                var sum: S = accumulate ? C[i * ldc + j] : 0
                for k in 0..<K {
                    let a = transposeA ? A[k * lda + i] : A[i * lda + k]
                    let b = transposeB ? B[j * ldb + k] : B[k * ldb + j]
                    sum = sum.addingProduct(a, b)
                }
                C[i * ldc + j] = sum
            }
        }
    }

    /// Same result as `gemmReference`, bit for bit, with loop orders that read memory contiguously; with
    /// `threads` > 1 and enough work, C is split into contiguous blocks of columns (or, for a Float product with
    /// more rows than columns, of rows) computed concurrently. Each element is still computed by the same
    /// operations in the same order, so any thread count gives the same bits.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func gemm<S: LSTMScalar>(
        transposeA: Bool, transposeB: Bool, M: Int, N: Int, K: Int,
        _ A: UnsafePointer<S>, lda: Int, _ B: UnsafePointer<S>, ldb: Int,
        _ C: UnsafeMutablePointer<S>, ldc: Int, accumulate: Bool, threads: Int = 1
    ) {
        // Below ~64k multiply-adds a dispatch (several µs when a core has idled) costs more than it saves.
        let parts = M * N * K >= 1 << 16 ? max(1, min(threads, max(N / 16, M / 6))) : 1
        // The concurrent closure must be concrete: a closure formed inside this generic function stays unspecialized
        // (every + and * through a witness table, measured 5× slower), so each scalar type has its own entry.
        func raw(_ p: UnsafePointer<S>) -> UnsafeRawPointer { UnsafeRawPointer(p) }
        if S.self == Float.self {
            sgemm(transposeA, transposeB, M, N, K, raw(A), lda, raw(B), ldb, UnsafeMutableRawPointer(C), ldc,
                  accumulate, parts)
        } else if S.self == Double.self {
            splitColumns(Double.self, transposeA, transposeB, M, N, K, raw(A), lda, raw(B), ldb,
                         UnsafeMutableRawPointer(C), ldc, accumulate, parts)
        } else {
            gemmSerial(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, A, lda: lda, B, ldb: ldb,
                       C, ldc: ldc, accumulate: accumulate)
        }
    }

    /// Float products run in the C kernel (`_LSTMKernels`), the columns split into `parts` blocks of whole 16-column
    /// panels.
    @inline(never)
    private static func sgemm(
        _ transposeA: Bool, _ transposeB: Bool, _ M: Int, _ N: Int, _ K: Int,
        _ A: UnsafeRawPointer, _ lda: Int, _ B: UnsafeRawPointer, _ ldb: Int,
        _ C: UnsafeMutableRawPointer, _ ldc: Int, _ accumulate: Bool, _ parts: Int
    ) {
        // op(A)[i, k] = A[i·rsa + k·csa], op(B)[k, j] = B[k·rsb + j·csb].
        let (rsa, csa) = transposeA ? (1, lda) : (lda, 1)
        let (rsb, csb) = transposeB ? (1, ldb) : (ldb, 1)
        nonisolated(unsafe) let a = A.assumingMemoryBound(to: Float.self)
        nonisolated(unsafe) let b = B.assumingMemoryBound(to: Float.self)
        nonisolated(unsafe) let c = C.assumingMemoryBound(to: Float.self)
        if parts == 1 {
            lstmk_sgemm(M, N, K, a, rsa, csa, b, rsb, csb, c, ldc, accumulate ? 1 : 0)
            return
        }
        // Every part packs its own copy of the operand it shares, so share the smaller one: with more rows than
        // columns (δW = δZᵀ·X, δX = δZ·W_ih) split the rows, each part packing only its rows of A.
        splitOverPool(M: M, N: N, parts: parts, byRows: M > N && M >= 12) { i0, i1, j0, j1 in
            lstmk_sgemm(i1 - i0, j1 - j0, K, a + i0 * rsa, rsa, csa, b + j0 * csb, rsb, csb, c + i0 * ldc + j0, ldc,
                        accumulate ? 1 : 0)
        }
    }

    /// C1 (M, N1) += Aᵀ·B1 and C2 (M, N2) += Aᵀ·B2, A stored K × M with row stride `lda` and B1, B2 K × N1 and
    /// K × N2 with row strides `ldb1`, `ldb2` (negative strides run the rows last to first): the bits of the two
    /// `gemm(transposeA: true, transposeB: false, …, accumulate: true)` calls. In Float every block of A is packed
    /// once for both (`lstmk_sgemm_pair`), blocks of rows over the threads (sized by `split` when given). With
    /// `sums` (M values), also sums[i] += A[k, i] for k = 0, 1, … in turn: each one chain of adds, as a column-sum
    /// pass over A's rows would add them (Float only: in the packing, while each row of A is in L1).
    static func accumulateTransposedPair<S: LSTMScalar>(
        M: Int, K: Int, _ A: UnsafePointer<S>, lda: Int,
        N1: Int, _ B1: UnsafePointer<S>, ldb1: Int, _ C1: UnsafeMutablePointer<S>, ldc1: Int,
        N2: Int, _ B2: UnsafePointer<S>, ldb2: Int, _ C2: UnsafeMutablePointer<S>, ldc2: Int, threads: Int,
        split: AdaptiveSplit? = nil, sums: UnsafeMutablePointer<Float>? = nil
    ) {
        precondition(sums == nil || S.self == Float.self, "accumulateTransposedPair: sums are for Float")
        guard S.self == Float.self else {
            gemm(transposeA: true, transposeB: false, M: M, N: N1, K: K, A, lda: lda, B1, ldb: ldb1, C1, ldc: ldc1,
                 accumulate: true, threads: threads)
            gemm(transposeA: true, transposeB: false, M: M, N: N2, K: K, A, lda: lda, B2, ldb: ldb2, C2, ldc: ldc2,
                 accumulate: true, threads: threads)
            return
        }
        func float(_ p: UnsafePointer<S>) -> UnsafePointer<Float> {
            UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
        }
        func float(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
            UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
        }
        let parts = M * (N1 + N2) * K >= 1 << 16 && M >= 12 ? max(1, min(threads, M / 6)) : 1
        nonisolated(unsafe) let (a, b1, b2, c1, c2) = (float(A), float(B1), float(B2), float(C1), float(C2))
        nonisolated(unsafe) let sums = sums
        func part(_ i0: Int, _ i1: Int) {
            lstmk_sgemm_pair(i1 - i0, K, a + i0, 1, lda, N1, b1, ldb1, 1, c1 + i0 * ldc1, ldc1,
                             N2, b2, ldb2, 1, c2 + i0 * ldc2, ldc2, 1, sums.map { $0 + i0 })
        }
        if let split, parts > 1 {
            // Blocks sized by how fast each thread ran its block last time (`AdaptiveSplit`): this VM's cores often
            // run a third apart while both are busy. Small's forward + backward, alternated in one process against
            // even halves: faster in 37 of 60, 88 of 100 and 60 of 100 pairs; the main job's LSTM even (15 and 17 of
            // 30). Whole 8-row tiles per block; each element's chain is the same in any block.
            split.run(M, parts: parts, granule: 8) { i0, i1 in part(i0, i1) }
        } else {
            rowBlocks(M, parts: parts) { i0, i1 in part(i0, i1) }
        }
    }

    /// Runs `body(i0, i1, j0, j1)` on the worker pool for `parts` blocks of C: row blocks of whole 4-row groups, or
    /// column blocks of whole 16-column panels. Each element's chain is the same either way.
    private static func splitOverPool(M: Int, N: Int, parts: Int, byRows: Bool,
                                      _ body: (Int, Int, Int, Int) -> Void) {
        if byRows {
            rowBlocks(M, parts: parts) { i0, i1 in body(i0, i1, 0, N) }
        } else {
            WorkerPool.blocks(N, parts: parts, granule: 16) { j0, j1 in body(0, M, j0, j1) }
        }
    }

    /// Runs `body(i0, i1)` on the worker pool for `parts` blocks of rows 0..<M, as even as whole groups of 4 rows
    /// allow (the last takes what is left; a part with no rows does not run). Every kernel covers a multiple of 4
    /// rows without padding (12-, 8- and 4-row AVX-512 tiles; 6- and 4-row AVX2 ones): B = 32 on two threads is
    /// 16 + 16 rows, where blocks of whole 6-row tiles made it 18 + 14 and the larger part a quarter longer (20 rows
    /// of 12- and 8-row tiles against 16).
    static func rowBlocks(_ M: Int, parts: Int, threads: Int? = nil, _ body: (Int, Int) -> Void) {
        WorkerPool.blocks(M, parts: parts, granule: 4, threads: threads, body)
    }

    /// The Float product with the C kernel's portable path whatever the CPU (for tests of the dispatch).
    public static func portableFloatGEMM(
        transposeA: Bool, transposeB: Bool, M: Int, N: Int, K: Int,
        _ A: UnsafePointer<Float>, lda: Int, _ B: UnsafePointer<Float>, ldb: Int,
        _ C: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let (rsa, csa) = transposeA ? (1, lda) : (lda, 1)
        let (rsb, csb) = transposeB ? (1, ldb) : (ldb, 1)
        lstmk_sgemm_portable(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate ? 1 : 0)
    }

    /// FLOPs done by `iterations` rounds of the FMA peak loop (see `lstmk_fma_peak_run`).
    public static func fmaPeakRun(iterations: Int) -> Double {
        var sink: Float = 0
        return lstmk_fma_peak_run(iterations, &sink)
    }

    /// Which Float kernel this CPU runs: "avx512", "avx2+fma", "neon" or "portable".
    public static var floatKernel: String {
        switch lstmk_sgemm_level() {
        case 3: return "avx512"
        case 2: return "avx2+fma"
        case 1: return "neon"
        default: return "portable"
        }
    }

    /// The Float kernels a test can ask for on this CPU (`floatGEMM(level:…)`): 0 portable, 1 NEON (AArch64),
    /// 2 AVX2, 3 AVX-512.
    public static var floatKernelLevels: [Int] {
        let best = Int(lstmk_sgemm_level())
        return best == 1 ? [0, 1] : [0, 2, 3].filter { $0 <= best }
    }

    /// The Float product with the kernels of `level` (for tests of the dispatch; every level gives the same bits).
    public static func floatGEMM(
        level: Int, transposeA: Bool, transposeB: Bool, M: Int, N: Int, K: Int,
        _ A: UnsafePointer<Float>, lda: Int, _ B: UnsafePointer<Float>, ldb: Int,
        _ C: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let (rsa, csa) = transposeA ? (1, lda) : (lda, 1)
        let (rsb, csb) = transposeB ? (1, ldb) : (ldb, 1)
        lstmk_sgemm_at_level(Int32(level), M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate ? 1 : 0)
    }

    /// The prepared Float product with the kernels of `level` (tests).
    public static func floatGEMM(level: Int, transposeA: Bool, M: Int, _ A: UnsafePointer<Float>, lda: Int,
                                 _ B: PreparedOperand<Float>, _ C: UnsafeMutablePointer<Float>, ldc: Int,
                                 accumulate: Bool, bias: UnsafePointer<Float>? = nil) {
        let (rsa, csa) = transposeA ? (1, lda) : (lda, 1)
        lstmk_sgemm_prepacked_at_level(Int32(level), M, 0, B.N, B.N, B.K, A, rsa, csa, B.packed!, C, ldc,
                                       accumulate ? 1 : 0, bias)
    }

    @inline(never)
    private static func splitColumns(
        _: Double.Type, _ transposeA: Bool, _ transposeB: Bool, _ M: Int, _ N: Int, _ K: Int,
        _ A: UnsafeRawPointer, _ lda: Int, _ B: UnsafeRawPointer, _ ldb: Int,
        _ C: UnsafeMutableRawPointer, _ ldc: Int, _ accumulate: Bool, _ parts: Int
    ) {
        let chunk = ((N + parts - 1) / parts + 15) / 16 * 16
        nonisolated(unsafe) let a = A.assumingMemoryBound(to: Double.self)
        nonisolated(unsafe) let b = B.assumingMemoryBound(to: Double.self)
        nonisolated(unsafe) let c = C.assumingMemoryBound(to: Double.self)
        if parts == 1 {
            gemmSerial(transposeA: transposeA, transposeB: transposeB, M: M, N: N, K: K, a, lda: lda, b, ldb: ldb,
                       c, ldc: ldc, accumulate: accumulate)
            return
        }
        WorkerPool.shared(threads: parts).run(parts: parts) { part in
            let j0 = part * chunk, j1 = min(N, j0 + chunk)
            guard j0 < j1 else { return }
            gemmSerial(transposeA: transposeA, transposeB: transposeB, M: M, N: j1 - j0, K: K, a, lda: lda,
                       transposeB ? b + j0 * ldb : b + j0, ldb: ldb, c + j0, ldc: ldc, accumulate: accumulate)
        }
    }

    static func gemmSerial<S: LSTMScalar>(
        transposeA: Bool, transposeB: Bool, M: Int, N: Int, K: Int,
        _ A: UnsafePointer<S>, lda: Int, _ B: UnsafePointer<S>, ldb: Int,
        _ C: UnsafeMutablePointer<S>, ldc: Int, accumulate: Bool
    ) {
        if M == 0 || N == 0 { return }
        if !accumulate {
            for i in 0..<M { (C + i * ldc).update(repeating: 0, count: N) }
        }
        if K == 0 { return }
        switch (transposeA, transposeB) {
        case (false, true):
            // Dot products of a row of A with a row of B.
            for i in 0..<M {
                let a = A + i * lda
                let c = C + i * ldc
                for j in 0..<N {
                    let b = B + j * ldb
                    var sum = c[j]
                    for k in 0..<K { sum = sum.addingProduct(a[k], b[k]) }
                    c[j] = sum
                }
            }
        case (false, false):
            // Row i of C accumulates a[i, k] · row k of B, k ascending.
            for i in 0..<M {
                let a = A + i * lda
                let c = C + i * ldc
                for k in 0..<K {
                    let aik = a[k]
                    let b = B + k * ldb
                    for j in 0..<N { c[j] = c[j].addingProduct(aik, b[j]) }
                }
            }
        case (true, false):
            for k in 0..<K {
                let a = A + k * lda
                let b = B + k * ldb
                for i in 0..<M {
                    let aki = a[i]
                    let c = C + i * ldc
                    for j in 0..<N { c[j] = c[j].addingProduct(aki, b[j]) }
                }
            }
        case (true, true):
            gemmReference(transposeA: true, transposeB: true, M: M, N: N, K: K,
                          A, lda: lda, B, ldb: ldb, C, ldc: ldc, accumulate: true)
        }
    }

    /// destination (cols, rows) = sourceᵀ, source (rows, cols) with row stride `ld`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func transpose<S: LSTMScalar>(_ source: UnsafePointer<S>, rows: Int, cols: Int, ld: Int,
                                                into destination: UnsafeMutablePointer<S>) {
        for r in 0..<rows {
            let row = source + r * ld
            for c in 0..<cols { destination[c * rows + r] = row[c] }
        }
    }

    /// A right-hand operand op(B) (K, N) prepared once for many products: for Float it is packed into the kernel's
    /// panels (the recurrent weights, packed once per pass and reused at every time step); for Double it is the
    /// plain matrix.
    public struct PreparedOperand<S: LSTMScalar> {
        let source: UnsafePointer<S>
        let transposed: Bool
        let ld: Int
        let K: Int
        let N: Int
        let packed: UnsafePointer<Float>?

        /// A packed Float operand that no longer refers to its source (only the packed panels are read).
        var detached: PreparedOperand {
            precondition(packed != nil, "only a packed Float operand can be detached from its source")
            return PreparedOperand(source: UnsafeRawPointer(packed!).assumingMemoryBound(to: S.self), transposed: false,
                                   ld: N, K: K, N: N, packed: packed)
        }
    }

    /// Prepares op(B) (K, N) once for many products: B (K, N) with row stride `ldb`, or, when `transposeB`,
    /// Bᵀ with B stored (N, K).
    ///
    /// For Float, B is packed into `buffer` (grown as needed) and the result reads only that buffer, so keep the
    /// buffer unchanged while the operand is in use. For Double the result refers to B itself.
    /// - Returns: The operand for `gemm(transposeA:M:_:lda:_:_:ldc:accumulate:threads:)`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func prepare<S: LSTMScalar>(transposeB: Bool, K: Int, N: Int, _ B: UnsafePointer<S>, ldb: Int,
                                              buffer: AlignedBuffer<S>, threads: Int = 1) -> PreparedOperand<S> {
        guard S.self == Float.self else {
            return PreparedOperand(source: B, transposed: transposeB, ld: ldb, K: K, N: N, packed: nil)
        }
        buffer.reserve(lstmk_sgemm_packed_size(N, K))
        let packed = UnsafeMutableRawPointer(buffer.pointer).assumingMemoryBound(to: Float.self)
        let (rsb, csb) = transposeB ? (1, ldb) : (ldb, 1)
        let source = UnsafeRawPointer(B).assumingMemoryBound(to: Float.self)
        // Column blocks of whole panels over the threads from 32 K floats on (a training step repacks every weight
        // matrix after the update: 4 MB for a charrnn W_hh, serial while the other cores waited; small's 64 K-float
        // W_hh and W_hhᵀ twice per step, 1.5 % of its step).
        let parts = N * K >= 1 << 15 ? max(1, min(threads, N / 16)) : 1
        WorkerPool.blocks(N, parts: parts, granule: 16) { j0, j1 in
            lstmk_sgemm_pack_b_columns(N, K, source, rsb, csb, packed, j0, j1)
        }
        return PreparedOperand(source: B, transposed: transposeB, ld: ldb, K: K, N: N, packed: UnsafePointer(packed))
    }

    /// C (M, N) = op(A)·B or C += op(A)·B with a prepared B: the same bits as `gemm` with the plain B. With `bias`
    /// (N values) the product starts from C + b (accumulating; rounded once, as a pass C += b before it would) or
    /// from b — for Float on AVX-512 the tiles add it as they load C (a pass of its own was 1.6 % of small's
    /// training step).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func gemm<S: LSTMScalar>(
        transposeA: Bool, M: Int, _ A: UnsafePointer<S>, lda: Int, _ B: PreparedOperand<S>,
        _ C: UnsafeMutablePointer<S>, ldc: Int, accumulate: Bool, threads: Int = 1, bias: UnsafePointer<S>? = nil
    ) {
        if let bias, !accumulate {
            for i in 0..<M { (C + i * ldc).update(from: bias, count: B.N) }
            gemm(transposeA: transposeA, M: M, A, lda: lda, B, C, ldc: ldc, accumulate: true, threads: threads)
            return
        }
        guard let packed = B.packed else {
            if let bias {
                for i in 0..<M {
                    let row = C + i * ldc
                    for j in 0..<B.N { row[j] += bias[j] }
                }
            }
            gemm(transposeA: transposeA, transposeB: B.transposed, M: M, N: B.N, K: B.K, A, lda: lda, B.source,
                 ldb: B.ld, C, ldc: ldc, accumulate: accumulate, threads: threads)
            return
        }
        let parts = M * B.N * B.K >= 1 << 16 ? max(1, min(threads, max(B.N / 16, M / 6))) : 1
        sgemmPrepacked(transposeA, M, B.N, B.K, UnsafeRawPointer(A), lda, packed, UnsafeMutableRawPointer(C), ldc,
                       accumulate, parts, bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) })
    }

    /// The prepared Float product with the portable kernels whatever the CPU (for tests of the dispatch).
    public static func portableFloatGEMM(transposeA: Bool, M: Int, _ A: UnsafePointer<Float>, lda: Int,
                                         _ B: PreparedOperand<Float>, _ C: UnsafeMutablePointer<Float>, ldc: Int,
                                         accumulate: Bool) {
        let (rsa, csa) = transposeA ? (1, lda) : (lda, 1)
        lstmk_sgemm_prepacked_portable(M, 0, B.N, B.N, B.K, A, rsa, csa, B.packed!, C, ldc, accumulate ? 1 : 0, nil)
    }

    @inline(never)
    private static func sgemmPrepacked(
        _ transposeA: Bool, _ M: Int, _ N: Int, _ K: Int, _ A: UnsafeRawPointer, _ lda: Int,
        _ packed: UnsafePointer<Float>, _ C: UnsafeMutableRawPointer, _ ldc: Int, _ accumulate: Bool, _ parts: Int,
        _ bias: UnsafePointer<Float>? = nil
    ) {
        let (rsa, csa) = transposeA ? (1, lda) : (lda, 1)
        nonisolated(unsafe) let a = A.assumingMemoryBound(to: Float.self)
        nonisolated(unsafe) let c = C.assumingMemoryBound(to: Float.self)
        nonisolated(unsafe) let b = packed
        nonisolated(unsafe) let bias = bias
        if parts == 1 {
            lstmk_sgemm_prepacked(M, 0, N, N, K, a, rsa, csa, b, c, ldc, accumulate ? 1 : 0, bias)
            return
        }
        // Column blocks would each pack all of A: split the rows when the blocks would be narrow (δh = δZ_t·W_hh
        // with a small H) or A has at least as many rows as B has columns (the input product over a window's rows,
        // X·W_ihᵀ: each part then packs half of A and runs whole 48-column tiles across all of N; 1600×512×64 in
        // 0.386 instead of 0.419 ms, 6400×2048×65 8.44 instead of 8.77, faster in 78 of 100 and 26 of 30 pairs
        // alternated on the pool).
        let byRows = (N / parts < 128 || M >= N) && M >= 6 * parts
        splitOverPool(M: M, N: N, parts: parts, byRows: byRows) { i0, i1, j0, j1 in
            lstmk_sgemm_prepacked(i1 - i0, j0, j1, N, K, a + i0 * rsa, rsa, csa, b, c + i0 * ldc, ldc,
                                  accumulate ? 1 : 0, bias)
        }
    }
}
