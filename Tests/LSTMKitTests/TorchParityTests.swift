import Foundation
import Testing
@testable import LSTMKit

/// LSTMKit against PyTorch: fixtures written by `Scripts/make_fixtures.py` (float64 torch.nn.LSTM, see the script).
///
/// Tolerances, per tensor, relative to the tensor's largest reference magnitude (max|a − r| / max|r|), printed per
/// tensor like llm.c's test_gpt2.c: Float ≤ 1e-5 (Float's unit roundoff 6e-8 times the few dozen operations on each
/// path; see PrecisionTests), Double ≤ 1e-12 (the same math in a different summation order).
struct TorchParityTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func fixture(_ name: String) throws -> SafeTensors.File {
        try SafeTensors.read(path: fixtures.appendingPathComponent(name).path)
    }

    static func values(_ file: SafeTensors.File, _ name: String) -> [Double] {
        file[name]!.doubles()!
    }

    /// Max difference relative to the reference's scale, printed.
    @discardableResult
    static func compare(_ label: String, _ ours: [Double], _ reference: [Double], tolerance: Double,
                        sourceLocation: SourceLocation = #_sourceLocation) -> Double {
        #expect(ours.count == reference.count, "\(label): \(ours.count) values, reference has \(reference.count)", sourceLocation: sourceLocation)
        let scale = reference.map(abs).max() ?? 0
        let diff = zip(ours, reference).map { abs($0 - $1) }.max() ?? 0
        let relative = diff / max(scale, 1e-300)
        print("\(label.padding(toLength: 34, withPad: " ", startingAt: 0)) maxdiff \(diff)  rel \(relative)")
        #expect(relative <= tolerance, "\(label): relative difference \(relative) > \(tolerance)", sourceLocation: sourceLocation)
        return relative
    }

    static func run<S: LSTMScalar>(_ file: SafeTensors.File, _: S.Type, tolerance: Double) throws {
        let config = try JSONValue.parse(Array(file.metadata["config"]!.utf8))
        let (T, B) = (config["steps"]!.exactInteger!, config["batch"]!.exactInteger!)
        let (lstm, parameters) = try LSTM.load(from: file, as: S.self)
        let (U, H, P) = (lstm.stateCount, lstm.hiddenSize, lstm.outputSize)
        #expect(lstm.layerCount == config["layers"]!.exactInteger! && H == config["hidden"]!.exactInteger!
                && lstm.inputSize == config["input"]!.exactInteger!)
        #expect(lstm.bidirectional == (config["bidirectional"]?.boolean ?? false))
        #expect(lstm.projectionSize == (config["proj"]?.exactInteger ?? 0))
        let lengths = file["input.lengths"].map { $0.doubles()!.map { Int($0) } }
        let s = { (name: String) in values(file, name).map { S($0) } }
        let initial = LSTMState(hidden: s("input.h0"), cell: s("input.c0"), layers: U, batch: B, hiddenSize: P, cellSize: H)
        let stash = LSTMStash<S>()
        let out = lstm.forward(s("input.x"), steps: T, batch: B, lengths: lengths, initial: initial,
                               parameters: parameters, stash: stash)
        let d = { (a: [S]) in a.map { Double($0) } }
        let tag = "\(S.self) L=\(lstm.layerCount)\(lstm.bidirectional ? " bi" : "")\(P != H ? " P=\(P)" : "")\(lengths == nil ? "" : " packed")"
        compare("\(tag) output", d(out.output), values(file, "expected.output"), tolerance: tolerance)
        compare("\(tag) h_n", d(out.final.hidden), values(file, "expected.h_n"), tolerance: tolerance)
        compare("\(tag) c_n", d(out.final.cell), values(file, "expected.c_n"), tolerance: tolerance)
        var gradients = ParameterBuffer<S>(layout: parameters.layout)
        let dFinal = LSTMState(hidden: s("upstream.h_n"), cell: s("upstream.c_n"), layers: U, batch: B, hiddenSize: P,
                               cellSize: H)
        let dInput = lstm.backward(dOutput: s("upstream.output"), dFinal: dFinal, parameters: parameters, stash: stash,
                                   gradients: &gradients)
        for spec in parameters.layout.specs {
            compare("\(tag) grad.\(spec.name)", d(Array(gradients[spec])), values(file, "grad.\(spec.name)"), tolerance: tolerance)
        }
        compare("\(tag) grad.x", d(dInput.input), values(file, "grad.x"), tolerance: tolerance)
        compare("\(tag) grad.h0", d(dInput.initial.hidden), values(file, "grad.h0"), tolerance: tolerance)
        compare("\(tag) grad.c0", d(dInput.initial.cell), values(file, "grad.c0"), tolerance: tolerance)
        if let lengths {
            // Padding exactly ignored: zero outputs and zero δx there (not just small).
            let (I, W) = (lstm.inputSize, lstm.outputWidth)
            for t in 0..<T {
                for b in 0..<B where t >= lengths[b] {
                    #expect(out.output[((t * B + b) * W)..<((t * B + b + 1) * W)].allSatisfy { $0 == 0 })
                    #expect(dInput.input[((t * B + b) * I)..<((t * B + b + 1) * I)].allSatisfy { $0 == 0 })
                }
            }
        }
    }

    /// Bidirectional, projected (LSTMP) and packed variable-length LSTMs against PyTorch (fixtures from
    /// `Scripts/make_fixtures.py`: nn.LSTM(bidirectional=, proj_size=) and pack_padded_sequence(enforce_sorted=False)).
    @Test(arguments: ["bi_l2", "proj_l2", "bi_proj_l2", "packed_l2", "packed_bi_proj_l2", "packed_bi_l1"])
    func variantsMatchPyTorch(name: String) throws {
        let file = try Self.fixture("torch_variant_\(name).safetensors")
        try Self.run(file, Double.self, tolerance: 1e-12)
        try Self.run(file, Float.self, tolerance: 1e-5)
    }

    /// A bidirectional projected state_dict loads with its names and saves back with the same names and bytes.
    @Test func variantStateDictRoundTrip() throws {
        let file = try Self.fixture("torch_variant_packed_bi_proj_l2.safetensors")
        let (lstm, parameters) = try LSTM.load(from: file, as: Double.self)
        let saved = lstm.stateDict(parameters)
        let weights = file.tensors.filter { !$0.name.contains(".") }
        #expect(Set(saved.map(\.name)) == Set(weights.map(\.name)))
        for (name, tensor) in saved { #expect(file[name] == tensor, "\(name) differs after the round trip") }
    }

    @Test(arguments: ["torch_lstm_l1.safetensors", "torch_lstm_l2.safetensors", "torch_lstm_l3.safetensors"])
    func forwardAndBackwardMatchPyTorch(name: String) throws {
        let file = try Self.fixture(name)
        try Self.run(file, Double.self, tolerance: 1e-12)
        try Self.run(file, Float.self, tolerance: 1e-5)
    }

    /// Three optimizer steps on the fixture's loss, each with freshly computed gradients, against torch.optim (Double).
    @Test(arguments: ["torch_lstm_l1.safetensors", "torch_lstm_l2.safetensors", "torch_lstm_l3.safetensors"])
    func adamAndSGDStepsMatchPyTorch(name: String) throws {
        let file = try Self.fixture(name)
        let config = try JSONValue.parse(Array(file.metadata["config"]!.utf8))
        let (T, B) = (config["steps"]!.exactInteger!, config["batch"]!.exactInteger!)
        for (kind, configuration, lr) in [("adam", OptimizerConfiguration.adam(), 1e-2),
                                          ("sgd", OptimizerConfiguration.sgd(momentum: 0.9), 0.1)] {
            var (lstm, parameters) = try LSTM.load(from: file, as: Double.self)
            let (L, H) = (lstm.layerCount, lstm.hiddenSize)
            var optimizer = Optimizer<Double>(configuration, parameterCount: parameters.storage.count)
            let initial = LSTMState(hidden: Self.values(file, "input.h0"), cell: Self.values(file, "input.c0"),
                                    layers: L, batch: B, hiddenSize: H)
            let dFinal = LSTMState(hidden: Self.values(file, "upstream.h_n"), cell: Self.values(file, "upstream.c_n"),
                                   layers: L, batch: B, hiddenSize: H)
            let stash = LSTMStash<Double>()
            for _ in 0..<3 {
                _ = lstm.forward(Self.values(file, "input.x"), steps: T, batch: B, initial: initial,
                                 parameters: parameters, stash: stash)
                var gradients = ParameterBuffer<Double>(layout: parameters.layout)
                _ = lstm.backward(dOutput: Self.values(file, "upstream.output"), dFinal: dFinal,
                                  parameters: parameters, stash: stash, gradients: &gradients)
                optimizer.step(&parameters, gradients: gradients, learningRate: lr)
            }
            for spec in parameters.layout.specs {
                Self.compare("\(kind) step 3 \(spec.name)", Array(parameters[spec]), Self.values(file, "\(kind).step3.\(spec.name)"),
                             tolerance: 1e-12)
            }
            lstm = try LSTM.load(from: file, as: Double.self).lstm
        }
    }

    /// A state_dict saved by `safetensors.torch.save_file` loads, and saving it again gives the same tensor bytes.
    @Test func stateDictRoundTripIsByteIdentical() throws {
        let original = try Self.fixture("torch_lstm_state_dict.safetensors")
        let (lstm, parameters) = try LSTM.load(from: original, as: Float.self)
        #expect(lstm.inputSize == 6 && lstm.hiddenSize == 5 && lstm.layerCount == 2)
        let saved = try SafeTensors.decode(SafeTensors.encode(SafeTensors.File(tensors: lstm.stateDict(parameters))))
        #expect(Set(saved.tensors.map(\.name)) == Set(original.tensors.map(\.name)))
        for (name, tensor) in original.tensors {
            #expect(saved[name] == tensor, "\(name) differs after the round trip")
        }
    }

    /// A character model trained in PyTorch (`embedding`, `lstm`, `head`, vocabulary in metadata) gives PyTorch's
    /// logits under LSTMKit.
    @Test func pytorchCharacterModelRuns() throws {
        let file = try Self.fixture("torch_charmodel.safetensors")
        let loaded = try CharacterModelFile.load(file, source: "torch_charmodel.safetensors")
        let tokens = file["probe.tokens"]!
        #expect(tokens.dtype == .i64)
        let ids = (0..<tokens.elementCount).map { k in
            Int32((0..<8).reduce(UInt64(0)) { $0 | UInt64(tokens.bytes[8 * k + $1]) << (8 * UInt64($1)) })
        }
        let model = try SequenceModel(loaded.model.sequenceConfiguration(), parameters: loaded.parameters)
        let logits = try model.predict(SequenceBatch(tokens: ids, steps: ids.count, batch: 1)).outputs
        Self.compare("char model logits", logits.map(Double.init), Self.values(file, "probe.logits"), tolerance: 1e-5)
        #expect(String(String.UnicodeScalarView(ids.map { loaded.vocabulary.scalars[Int($0)] })) == "the lstm")
    }

    @Test func inconsistentStateDictsAreRejected() throws {
        var file = try Self.fixture("torch_lstm_state_dict.safetensors")
        let k = file.tensors.firstIndex { $0.name == "weight_hh_l1" }!
        file.tensors[k].tensor = SafeTensors.Tensor([Float](repeating: 0, count: 20 * 4), shape: [20, 4])
        #expect(throws: LSTMKitError.self) { try LSTM.load(from: file, as: Float.self) }
        var reversed = try Self.fixture("torch_lstm_state_dict.safetensors")
        reversed.tensors.append(("weight_ih_l0_reverse", reversed["weight_ih_l0"]!))
        do {
            _ = try LSTM.load(from: reversed, as: Float.self)
            Issue.record("a bidirectional state_dict with only one reverse tensor loaded")
        } catch {
            #expect(error.description.contains("weight_hh_l0_reverse is missing"), "\(error)")
        }
        var gap = try Self.fixture("torch_lstm_state_dict.safetensors")
        gap.tensors.append(("weight_ih_l3", gap["weight_ih_l0"]!))
        do {
            _ = try LSTM.load(from: gap, as: Float.self)
            Issue.record("a state_dict with a layer missing loaded")
        } catch {
            #expect(error.description.contains("weight_ih_l3 does not belong"), "\(error)")
        }
        #expect(throws: LSTMKitError.self) { try LSTM.load(from: SafeTensors.File(), as: Float.self) }
    }
}
