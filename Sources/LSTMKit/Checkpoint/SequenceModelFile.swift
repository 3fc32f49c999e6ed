import Foundation

/// A `SequenceModel` as one safetensors file: every tensor under its PyTorch module name (`embedding.weight`,
/// `lstm.weight_ih_l0`, …, `head.weight`, `head.bias`; F32 for a Float model, F64 for a Double one) and in the
/// metadata `format` = `lstmkit.sequence-model`, `format_version` and `model` (the configuration as JSON), plus any
/// keys the caller adds (a vocabulary, the scaling of a forecaster's series).
extension SequenceModel {
    /// The metadata `format` value that marks a saved model file: `lstmkit.sequence-model`.
    public static var fileFormat: String { "lstmkit.sequence-model" }
    /// The metadata `format_version` this LSTMKit writes; reading refuses files with a higher version.
    public static var fileVersion: Int { 1 }

    /// The model's tensors, in layout order, and its metadata.
    public func file(metadata: [String: String] = [:]) -> SafeTensors.File {
        var file = SafeTensors.File(metadata: metadata)
        for spec in layout.specs {
            let values = Array(parameters[spec])
            let tensor = Scalar.self == Double.self
                ? SafeTensors.Tensor(values.map { Double($0) }, shape: spec.shape)
                : SafeTensors.Tensor(values.map { Float($0) }, shape: spec.shape)
            file.tensors.append((spec.name, tensor))
        }
        file.metadata["format"] = Self.fileFormat
        file.metadata["format_version"] = String(Self.fileVersion)
        file.metadata["model"] = jsonString(configuration)
        return file
    }

    /// Writes the model atomically (a reader never sees half a file). A non-finite parameter is refused.
    public func save(to path: String, metadata: [String: String] = [:]) throws(LSTMKitError) {
        if let tensor = firstNonFinite(parameters) {
            throw .nonFinite("\(tensor) is not finite; not saving the model to \(path)")
        }
        do { try SafeTensors.write(file(metadata: metadata), path: path) } catch {
            throw .invalidInput("cannot write \(path): \(error.description)")
        }
    }

    /// Reads a model written by `save(to:)`; every tensor's name, shape, dtype and values are checked, and the
    /// first that is wrong is named.
    public convenience init(contentsOf path: String) throws(LSTMKitError) {
        let file: SafeTensors.File
        do { file = try SafeTensors.read(path: path) } catch { throw .invalidInput("\(path): \(error.description)") }
        try self.init(file: file, source: path)
    }

    /// The model in `file` (`source` names it in errors).
    public convenience init(file: SafeTensors.File, source: String) throws(LSTMKitError) {
        guard let format = file.metadata["format"] else {
            throw .invalidInput("\(source) has no format in its metadata, so it is not an LSTMKit model file")
        }
        guard format == Self.fileFormat else {
            throw .invalidInput("\(source) is a \(format) file, not a \(Self.fileFormat)")
        }
        guard let version = file.metadata["format_version"].flatMap({ Int($0) }), version >= 1 else {
            throw .invalidInput("\(source) has a missing or unreadable format_version")
        }
        guard version <= Self.fileVersion else {
            throw .invalidInput("\(source) has model format version \(version), newer than this LSTMKit understands (\(Self.fileVersion)); upgrade LSTMKit")
        }
        guard let json = file.metadata["model"],
              let configuration = try? JSONDecoder().decode(SequenceModelConfiguration.self, from: Data(json.utf8)) else {
            throw .invalidInput("\(source) has no readable model description (metadata key model)")
        }
        // The description is checked against the tensors before anything is allocated, so a small file that
        // claims a huge model is an error, not an allocation of what it claims.
        let lstm = configuration.lstm
        let available = file.tensors.reduce(0) { $0 + $1.tensor.elementCount }
        var sizes = [lstm.hiddenSize, lstm.projectionSize, configuration.input.width, configuration.headWidth]
        if case .tokens(let V, _) = configuration.input { sizes.append(V) }
        guard lstm.layers <= file.tensors.count, sizes.allSatisfy({ $0 <= available }) else {
            throw .invalidInput("\(source) describes a model larger than the tensors it holds; the file is damaged")
        }
        let structure: (configuration: SequenceModelConfiguration, layout: ParameterLayout, embedding: Embedding?, lstm: LSTM, head: Linear)
        do { structure = try Self.structure(configuration) } catch { throw .invalidInput("\(source): \(error.description)") }
        // Every tensor present with its shape before anything of the layout's size is allocated.
        for spec in structure.layout.specs {
            guard let tensor = file[spec.name] else {
                throw .invalidInput("\(source) has no tensor \(spec.name), which the model it describes needs")
            }
            guard tensor.shape == spec.shape else {
                throw .shapeMismatch("\(source): tensor \(spec.name) has shape \(tensor.shape), expected \(spec.shape)")
            }
        }
        var parameters = [Scalar]()
        parameters.reserveCapacity(structure.layout.count)
        for spec in structure.layout.specs {
            let tensor = file[spec.name]!
            guard let values = tensor.doubles() else {
                throw .invalidInput("\(source): tensor \(spec.name) has dtype \(tensor.dtype.rawValue); expected a floating-point tensor")
            }
            guard values.allSatisfy(\.isFinite) else { throw .invalidInput("\(source): tensor \(spec.name) contains NaN or infinity") }
            parameters += values.map { Scalar($0) }
        }
        try self.init(configuration, parameters: ParameterBuffer(layout: structure.layout, storage: parameters))
        let layout = structure.layout
        // A model tensor the description does not have would be silently ignored: refuse it.
        let known = Set(layout.specs.map(\.name))
        let modules: Set<Substring> = ["embedding", "lstm", "head"]
        if let stray = file.tensors.map(\.name).sorted().first(where: {
            !known.contains($0) && modules.contains($0.split(separator: ".").first ?? "")
        }) {
            throw .invalidInput("\(source): tensor \(stray) does not belong to the model its metadata describes")
        }
    }
}

/// The name of the first tensor holding a NaN or an infinity, if any.
func firstNonFinite<S: LSTMScalar>(_ buffer: ParameterBuffer<S>) -> String? {
    if let floats = buffer as? ParameterBuffer<Float> { return CharacterTrainer.firstNonFinite(floats) }
    guard buffer.storage.contains(where: { !$0.isFinite }) else { return nil }
    return buffer.layout.specs.first { spec in buffer[spec].contains { !$0.isFinite } }?.name ?? "a parameter"
}
