/// Moving `nn.LSTM` weights between PyTorch and LSTMKit.
///
/// The tensors are PyTorch's state_dict entries with the same names, shapes, gate order (i, f, g, o) and row-major
/// layout, so no conversion happens: loading copies each tensor into its view of the flat buffer, and saving copies
/// it back out byte for byte.
extension LSTM {
    /// Builds an LSTM from `prefix + "weight_ih_l0"`, … in `file`, inferring input size, hidden size, number of
    /// layers, directions (`_reverse` tensors: `bidirectional=True`) and projection (`weight_hr_l0` (P, H):
    /// `proj_size=P`) from the names and shapes, and LSTMKit's own peepholes (`weight_peephole_l0`) and layer
    /// normalization (`layer_norm_gates_l0`) from their tensors (σ gates and tanh, no clipping: what the names cannot
    /// tell). F32, F64, F16 and BF16 tensors are accepted.
    ///
    /// A state_dict from `nn.LSTM(bias=False)` loads with zero biases (the same function).
    public static func load<S: LSTMScalar>(
        from file: SafeTensors.File, prefix: String = "", as _: S.Type = Float.self
    ) throws(LSTMKitError) -> (lstm: LSTM, parameters: ParameterBuffer<S>) {
        let structure = try structure(in: file, prefix: prefix)
        let (I, H, L, projection) = (structure.inputSize, structure.hiddenSize, structure.layers, structure.projectionSize)
        let bidirectional = structure.bidirectional
        let names = Set(file.tensors.map(\.name))
        var layout = ParameterLayout()
        let lstm = try LSTM(structure, layout: &layout, prefix: prefix)
        // Every tensor of the file under this prefix must be one of ours: a stray one (weight_ih_l3 with no l2, a
        // reverse tensor in a unidirectional set) means the file is not what the shapes suggest.
        let known = Set(layout.specs.map(\.name))
        let stray = names.sorted().first { name in
            guard name.hasPrefix(prefix), !known.contains(name) else { return false }
            let rest = name.dropFirst(prefix.count)
            return !rest.contains(".") && (rest.hasPrefix("weight_") || rest.hasPrefix("bias_") || rest.hasPrefix("layer_norm_"))
        }
        if let stray {
            throw .invalidInput("\(stray) does not belong to an nn.LSTM with \(L) layers\(bidirectional ? ", bidirectional" : "")\(projection > 0 ? ", proj_size \(projection)" : "") (layers must be numbered 0..<\(L) with all their tensors)")
        }
        var parameters = ParameterBuffer<S>(layout: layout)
        for (layer, specs) in zip(lstm.layers, lstm.tensors) {
            for spec in specs {
                guard let tensor = file[spec.name] else {
                    if spec == layer.biasIH || spec == layer.biasHH {
                        let otherBias = spec == layer.biasIH ? layer.biasHH.name : layer.biasIH.name
                        guard !names.contains(otherBias) else { throw .invalidInput("\(spec.name) is missing but \(otherBias) is present") }
                        continue  // bias=False: zero, as the buffer already is
                    }
                    throw .invalidInput("\(spec.name) is missing (layers must be numbered 0..<\(L) with all their tensors)")
                }
                guard tensor.shape == spec.shape else {
                    throw .shapeMismatch("\(spec.name) has shape \(tensor.shape), but \(prefix)weight_ih_l0 implies \(spec.shape) (input \(I), hidden \(H)\(projection > 0 ? ", proj_size \(projection)" : ""))")
                }
                guard let values = tensor.doubles() else {
                    throw .invalidInput("\(spec.name) has dtype \(tensor.dtype.rawValue); expected a floating-point tensor")
                }
                for (k, v) in values.enumerated() { parameters.storage[spec.offset + k] = S(v) }
            }
        }
        return (lstm, parameters)
    }

    /// What the names and shapes of `prefix + "weight_ih_l0"`, … in `file` say about an LSTM: input size, hidden
    /// size, number of layers, directions (`_reverse` tensors), projection (`weight_hr_l0` (P, H)), and LSTMKit's
    /// own peepholes (`weight_peephole_l0`) and layer normalization (`layer_norm_gates_l0`). `load` and the
    /// character-model reader both build from it; neither the tensors' presence nor their shapes are checked
    /// beyond that here.
    static func structure(in file: SafeTensors.File, prefix: String) throws(LSTMKitError) -> LSTMConfiguration {
        let names = Set(file.tensors.map(\.name))
        guard let ih0 = file[prefix + "weight_ih_l0"] else {
            throw .invalidInput("no tensor \(prefix)weight_ih_l0: not an nn.LSTM state_dict" + (prefix.isEmpty ? " (are the names prefixed, e.g. lstm.?)" : ""))
        }
        guard ih0.shape.count == 2, ih0.shape[0] % 4 == 0, ih0.shape[0] > 0, ih0.shape[1] > 0 else {
            throw .shapeMismatch("\(prefix)weight_ih_l0 has shape \(ih0.shape); expected (4·hidden, input)")
        }
        let H = ih0.shape[0] / 4
        var projection = 0
        if let hr0 = file[prefix + "weight_hr_l0"] {
            guard hr0.shape.count == 2, hr0.shape[1] == H, hr0.shape[0] > 0, hr0.shape[0] < H else {
                throw .shapeMismatch("\(prefix)weight_hr_l0 has shape \(hr0.shape); expected (proj_size, \(H)) with proj_size < \(H)")
            }
            projection = hr0.shape[0]
        }
        var L = 0
        while names.contains(prefix + "weight_ih_l\(L)") { L += 1 }
        let activations = LSTMActivations(peepholes: names.contains(prefix + "weight_peephole_l0"),
                                          layerNorm: names.contains(prefix + "layer_norm_gates_l0"))
        return LSTMConfiguration(inputSize: ih0.shape[1], hiddenSize: H, layers: L, activations: [activations],
                                 bidirectional: names.contains(prefix + "weight_ih_l0_reverse"), projectionSize: projection)
    }

    /// The state_dict tensors of this LSTM, in PyTorch's order (per layer and direction: weight_ih, weight_hh,
    /// bias_ih, bias_hh, weight_hr), for `safetensors.torch.load_file` + `nn.LSTM.load_state_dict`.
    public func stateDict<S: LSTMScalar>(_ parameters: ParameterBuffer<S>) -> [(name: String, tensor: SafeTensors.Tensor)] {
        // Peephole weights have no nn.LSTM counterpart; they are written under their own name, so PyTorch's
        // load_state_dict(strict=True) refuses them rather than silently dropping them.
        tensors.flatMap { $0 }.map { spec in
            let values = Array(parameters[spec])
            if S.self == Double.self {
                return (spec.name, SafeTensors.Tensor(values.map { Double($0) }, shape: spec.shape))
            }
            return (spec.name, SafeTensors.Tensor(values.map { Float($0) }, shape: spec.shape))
        }
    }
}
