import Testing
@testable import LSTMKit

/// Bidirectional layers, projection and variable-length batches beyond the gradient checks and PyTorch parity: what
/// "padding exactly ignored" and "rows independent" mean bit for bit, streaming with a projection, and refused
/// configurations.
struct StructuralVariantTests {
    static func model(bidirectional: Bool, projection: Int, layers: Int = 2, hidden: Int = 24,
                      input: Int = 5) throws -> (LSTM, ParameterBuffer<Float>) {
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: input, hiddenSize: hidden, layers: layers, bidirectional: bidirectional,
                            projectionSize: projection, layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        var random = RandomSource(seed: 12)
        lstm.initialize(&parameters, random: &random)
        return (lstm, parameters)
    }

    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var random = RandomSource(seed: seed)
        return (0..<n).map { _ in Float(random.uniform(-1, 1)) }
    }

    /// A batch with unsorted lengths gives, for every row, bitwise the output, final state, δx and δ(h0, c0) of that
    /// row run alone over its own length (every row of every product is the same fma chain whatever the other rows;
    /// see `GEMM`), on 1 and 2 threads. Parameter gradients are sums over rows in another order: equal to rounding.
    @Test(arguments: [(false, 0), (true, 0), (false, 7), (true, 7)])
    func rowsOfAPaddedBatchEqualEachRowAlone(bidirectional: Bool, projection: Int) throws {
        let (lstm, parameters) = try Self.model(bidirectional: bidirectional, projection: projection)
        let (T, B, I) = (9, 5, 5)
        let lengths = [4, 9, 1, 6, 9]
        let (U, P, H, W) = (lstm.stateCount, lstm.outputSize, lstm.hiddenSize, lstm.outputWidth)
        let x = Self.values(T * B * I, seed: 1)
        let h0 = Self.values(U * B * P, seed: 2), c0 = Self.values(U * B * H, seed: 3)
        let dOutput = Self.values(T * B * W, seed: 4)
        let dh = Self.values(U * B * P, seed: 5), dc = Self.values(U * B * H, seed: 6)
        for threads in [1, 2] {
            let stash = LSTMStash<Float>(threads: threads)
            let batch = lstm.forward(x, steps: T, batch: B, lengths: lengths,
                                     initial: LSTMState(hidden: h0, cell: c0, layers: U, batch: B, hiddenSize: P, cellSize: H),
                                     parameters: parameters, stash: stash)
            var gradients = ParameterBuffer<Float>(layout: parameters.layout)
            let dBatch = lstm.backward(dOutput: dOutput,
                                       dFinal: LSTMState(hidden: dh, cell: dc, layers: U, batch: B, hiddenSize: P, cellSize: H),
                                       parameters: parameters, stash: stash, gradients: &gradients)
            var summed = ParameterBuffer<Float>(layout: parameters.layout)
            for b in 0..<B {
                let n = lengths[b]
                func row(_ a: [Float], _ width: Int, steps: Int) -> [Float] {
                    var out: [Float] = []
                    for t in 0..<steps { out += a[((t * B + b) * width)..<((t * B + b + 1) * width)] }
                    return out
                }
                func unit(_ a: [Float], _ width: Int) -> [Float] {
                    var out: [Float] = []
                    for u in 0..<U { out += a[((u * B + b) * width)..<((u * B + b + 1) * width)] }
                    return out
                }
                let alone = LSTMStash<Float>(threads: threads)
                let single = lstm.forward(row(x, I, steps: n), steps: n, batch: 1,
                                          initial: LSTMState(hidden: unit(h0, P), cell: unit(c0, H), layers: U, batch: 1,
                                                             hiddenSize: P, cellSize: H),
                                          parameters: parameters, stash: alone)
                #expect(row(batch.output, W, steps: n) == single.output, "row \(b): outputs")
                #expect(row(batch.output, W, steps: T).dropFirst(n * W).allSatisfy { $0 == 0 }, "row \(b): padding")
                #expect(unit(batch.final.hidden, P) == single.final.hidden && unit(batch.final.cell, H) == single.final.cell,
                        "row \(b): final state")
                let dSingle = lstm.backward(dOutput: row(dOutput, W, steps: n),
                                            dFinal: LSTMState(hidden: unit(dh, P), cell: unit(dc, H), layers: U, batch: 1,
                                                              hiddenSize: P, cellSize: H),
                                            parameters: parameters, stash: alone, gradients: &summed)
                #expect(row(dBatch.input, I, steps: n) == dSingle.input, "row \(b): δx")
                #expect(row(dBatch.input, I, steps: T).dropFirst(n * I).allSatisfy { $0 == 0 }, "row \(b): δx at padding")
                #expect(unit(dBatch.initial.hidden, P) == dSingle.initial.hidden
                        && unit(dBatch.initial.cell, H) == dSingle.initial.cell, "row \(b): δ(h0, c0)")
            }
            let scale = gradients.storage.map { abs($0) }.max()!
            let diff = zip(gradients.storage, summed.storage).map { abs($0 - $1) }.max()!
            #expect(diff <= 1e-5 * scale, "parameter gradients: \(diff) against scale \(scale)")
        }
    }

    /// The two directions of a bidirectional layer run at once on 2 or more threads: the same bits as on 1 thread,
    /// forward and backward, with projection, layer norm and recurrent dropout, without padding (the caller's δ read
    /// in place, each direction copying its half on its own thread) and with variable lengths.
    @Test func bidirectionalIsThreadIndependent() throws {
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: 5, hiddenSize: 24, layers: 2, activations: [LSTMActivations(layerNorm: true)],
                            recurrentDropout: 0.2, bidirectional: true, projectionSize: 7, layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        var random = RandomSource(seed: 13)
        lstm.initialize(&parameters, random: &random)
        let (T, B) = (9, 5)
        let x = Self.values(T * B * 5, seed: 1), dy = Self.values(T * B * lstm.outputWidth, seed: 2)
        for lengths in [nil, [4, 9, 1, 6, 9]] {
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                let stash = LSTMStash<Float>(threads: threads)
                let out = lstm.forward(x, steps: T, batch: B, lengths: lengths, parameters: parameters, stash: stash,
                                       dropoutSeed: 5)
                var g = ParameterBuffer<Float>(layout: layout)
                let d = lstm.backward(dOutput: dy, parameters: parameters, stash: stash, gradients: &g)
                results.append(out.output + out.final.hidden + out.final.cell + g.storage + d.input + d.initial.hidden)
                // Without δx: none returned, and the same parameter gradients and δh0.
                _ = lstm.forward(x, steps: T, batch: B, lengths: lengths, parameters: parameters, stash: stash,
                                 dropoutSeed: 5)
                var g2 = ParameterBuffer<Float>(layout: layout)
                let d2 = lstm.backward(dOutput: dy, parameters: parameters, stash: stash, gradients: &g2, inputGradient: false)
                #expect(d2.input.isEmpty && g2.storage == g.storage && d2.initial.hidden == d.initial.hidden,
                        "threads \(threads): without δx")
            }
            #expect(results[0] == results[1] && results[0] == results[2], "lengths \(String(describing: lengths))")
        }
    }

    /// Training and inference split a uniform batch by rows up to W_hh of 1 MB (H = 256) and by units above it: both
    /// on 2 threads give the bits of 1 thread, forward, backward and `infer` (H = 160 now by rows, 272 by units; 24 as
    /// before).
    @Test(arguments: [24, 160, 272])
    func rowSplitBoundKeepsTheBits(hidden: Int) throws {
        let (lstm, parameters) = try Self.model(bidirectional: false, projection: 0, layers: 1, hidden: hidden)
        #expect(lstm.splitsStepsByRows(Float.self, rows: 12, threads: 2) == (hidden <= 256))
        #expect(lstm.splitsSequenceByRows(batch: 12, uniform: true, threads: 2) == (hidden <= 256))
        #expect(lstm.splitsSequenceByRows(batch: 12, uniform: false, threads: 2) == (hidden <= 128))
        let (T, B) = (3, 12)
        let x = Self.values(T * B * 5, seed: 21), dy = Self.values(T * B * hidden, seed: 22)
        var results: [[Float]] = []
        for threads in [1, 2] {
            let stash = LSTMStash<Float>(threads: threads)
            let out = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: stash)
            var g = ParameterBuffer<Float>(layout: parameters.layout)
            let d = lstm.backward(dOutput: dy, parameters: parameters, stash: stash, gradients: &g)
            results.append(out.output + out.final.hidden + out.final.cell + g.storage + d.input + d.initial.hidden)
            let inferred = lstm.infer(x, steps: T, batch: B, parameters: parameters, stash: LSTMStash(threads: threads))
            #expect(inferred.output == out.output && inferred.final == out.final, "infer, threads \(threads)")
        }
        #expect(results[0] == results[1])
    }

    /// Lengths all equal to T are the plain batch, bit for bit; cost follows the real tokens: the stash holds N rows.
    @Test func fullLengthsArePlainAndStashHoldsRealTokens() throws {
        let (lstm, parameters) = try Self.model(bidirectional: true, projection: 0)
        let (T, B) = (6, 4)
        let x = Self.values(T * B * 5, seed: 8)
        let plain = lstm.forward(x, steps: T, batch: B, parameters: parameters, stash: LSTMStash())
        let stash = LSTMStash<Float>()
        let full = lstm.forward(x, steps: T, batch: B, lengths: [T, T, T, T], parameters: parameters, stash: stash)
        #expect(plain.output == full.output && plain.final == full.final)
        _ = lstm.forward(x, steps: T, batch: B, lengths: [2, 6, 1, 3], parameters: parameters, stash: stash)
        #expect(stash.schedule.rows == 12)
        #expect(stash.schedule.batchSizes == [4, 3, 2, 1, 1, 1])
    }

    /// A projected (and a layer-normalized projected) LSTM streamed one step at a time gives the bits of the
    /// whole-sequence forward pass.
    @Test(arguments: [false, true])
    func streamWithProjectionEqualsForward(layerNorm: Bool) throws {
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: 5, hiddenSize: 20, layers: 2,
                            activations: [LSTMActivations(peepholes: layerNorm, layerNorm: layerNorm)],
                            projectionSize: 9, layout: &layout)
        var parameters = ParameterBuffer<Float>(layout: layout)
        var random = RandomSource(seed: 12)
        lstm.initialize(&parameters, random: &random)
        // γ, β away from their starting 1 and 0, so the normalization's parameters are really used.
        for spec in layout.specs where spec.name.hasPrefix("layer_norm") {
            for e in spec.range { parameters.storage[e] += Float(random.uniform(-0.5, 0.5)) }
        }
        let T = 7
        let x = Self.values(T * 5, seed: 10)
        let whole = lstm.forward(x, steps: T, batch: 1, parameters: parameters, stash: LSTMStash())
        let stream = LSTMStream(lstm: lstm, parameters: parameters)
        #expect(stream.feed(x, steps: T) == whole.output)
        #expect(stream.state == whole.final)
    }

    /// A layer-normalized peephole LSTM's state_dict (LSTMKit's own tensor names beside PyTorch's) loads back as the
    /// same LSTM: nothing is dropped, the output is the same bits.
    @Test func layerNormAndPeepholeStateDictLoadsBack() throws {
        var layout = ParameterLayout()
        let lstm = try LSTM(inputSize: 3, hiddenSize: 5, layers: 2,
                            activations: [LSTMActivations(peepholes: true, layerNorm: true)], projectionSize: 2,
                            layout: &layout, prefix: "lstm.")
        var parameters = ParameterBuffer<Float>(layout: layout)
        var random = RandomSource(seed: 9)
        for e in 0..<layout.count { parameters.storage[e] = Float(random.uniform(-1, 1)) }
        let file = try SafeTensors.decode(SafeTensors.encode(SafeTensors.File(tensors: lstm.stateDict(parameters))))
        let (loaded, loadedParameters) = try LSTM.load(from: file, prefix: "lstm.", as: Float.self)
        #expect(loaded.layers.allSatisfy { $0.activations.layerNorm && $0.activations.peepholes })
        #expect(loaded.layers.map { [$0.weightHR, $0.peephole, $0.layerNormGates, $0.layerNormCell] }
                == lstm.layers.map { [$0.weightHR, $0.peephole, $0.layerNormGates, $0.layerNormCell] })
        #expect(loadedParameters.storage == parameters.storage)
        let x = Self.values(4 * 2 * 3, seed: 3)
        #expect(loaded.forward(x, steps: 4, batch: 2, parameters: loadedParameters, stash: LSTMStash()).output
                == lstm.forward(x, steps: 4, batch: 2, parameters: parameters, stash: LSTMStash()).output)
        // A stray tensor of the same family is refused, not ignored.
        var stray = file
        stray.tensors.append(("lstm.layer_norm_gates_l2", file["lstm.layer_norm_gates_l0"]!))
        #expect(throws: LSTMKitError.self) { try LSTM.load(from: stray, prefix: "lstm.", as: Float.self) }
    }

    @Test func invalidStructuralConfigurationsAreRejected() {
        for (projection, message) in [(-1, "projection size"), (24, "projection size"), (30, "projection size")] {
            var layout = ParameterLayout()
            do {
                _ = try LSTM(LSTMConfiguration(inputSize: 3, hiddenSize: 24, projectionSize: projection), layout: &layout)
                Issue.record("projection \(projection) accepted")
            } catch {
                #expect(error.description.contains(message), "\(error)")
            }
        }
        var layout = ParameterLayout()
        let configuration = LSTMConfiguration(inputSize: 3, hiddenSize: 8, layers: 2, dropout: 0.2, bidirectional: true,
                                              projectionSize: 5)
        let lstm = try? LSTM(configuration, layout: &layout)
        #expect(lstm?.configuration == configuration)
        #expect(lstm?.outputWidth == 10 && lstm?.layers[2].inputSize == 10)
        #expect(layout.specs.map(\.name).contains("weight_hr_l1_reverse"))
    }
}
