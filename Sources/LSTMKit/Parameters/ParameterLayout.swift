/// Where one named tensor lives in a model's flat parameter buffer.
///
/// Names and shapes are PyTorch's state_dict names and shapes (`weight_ih_l0`, (4H, I)), so that weights move
/// between the two without conversion; the layout inside the buffer is LSTMKit's own.
public struct ParameterSpec: Sendable, Hashable {
    /// The tensor's PyTorch state_dict name, such as `weight_ih_l0`.
    public let name: String
    /// The tensor's PyTorch shape, such as (4H, I), stored row-major.
    public let shape: [Int]
    /// First element in the flat buffer.
    public let offset: Int
    /// Number of elements, the product of `shape`.
    public let count: Int

    /// The tensor's elements in the flat buffer: `offset ..< offset + count`.
    public var range: Range<Int> { offset..<(offset + count) }
}

/// The ordered list of a model's tensors. Parameters, gradients and every optimizer state share one layout, so
/// zeroing gradients is one fill and an optimizer step is one flat loop (as in llm.c).
public struct ParameterLayout: Sendable, Hashable {
    /// The tensors in the order they were added, each placed right after the one before.
    public private(set) var specs: [ParameterSpec] = []
    /// Total number of scalars.
    public private(set) var count: Int = 0

    /// An empty layout.
    public init() {}

    /// Appends a tensor and returns where it lives. Names must be unique.
    public mutating func add(_ name: String, shape: [Int]) -> ParameterSpec {
        require(!specs.contains { $0.name == name }, "duplicate parameter name \(name)")
        require(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(name)")
        let n = shape.reduce(1, *)
        let spec = ParameterSpec(name: name, shape: shape, offset: count, count: n)
        specs.append(spec)
        count += n
        return spec
    }

    /// The tensor called `name`, or nil if the layout has none.
    public func spec(named name: String) -> ParameterSpec? {
        specs.first { $0.name == name }
    }
}

/// A flat buffer of scalars laid out by a `ParameterLayout`: a model's parameters, its gradients, or one optimizer
/// state.
public struct ParameterBuffer<Scalar: LSTMScalar>: Sendable {
    /// Where each tensor lives in `storage`.
    public let layout: ParameterLayout
    /// The scalars of every tensor, back to back: `layout.count` of them.
    public var storage: [Scalar]

    /// A zero-filled buffer.
    public init(layout: ParameterLayout) {
        self.layout = layout
        self.storage = [Scalar](repeating: 0, count: layout.count)
    }

    /// A buffer over given scalars, which must number exactly `layout.count` (otherwise the call traps).
    /// - Parameters:
    ///   - layout: Where each tensor lives.
    ///   - storage: The scalars, laid out by `layout`.
    public init(layout: ParameterLayout, storage: [Scalar]) {
        require(storage.count == layout.count, "storage has \(storage.count) scalars, layout needs \(layout.count)")
        self.layout = layout
        self.storage = storage
    }

    /// The same values in another precision.
    public init<Other: LSTMScalar>(converting other: ParameterBuffer<Other>) {
        self.layout = other.layout
        self.storage = other.storage.map { Scalar($0) }
    }

    /// The elements of tensor `spec`; a new value must have exactly `spec.count` elements (otherwise it traps).
    public subscript(spec: ParameterSpec) -> ArraySlice<Scalar> {
        get { storage[spec.range] }
        set {
            require(newValue.count == spec.count, "ParameterBuffer: got \(newValue.count) values for \(spec.name), expected \(spec.count)")
            storage.replaceSubrange(spec.range, with: newValue)
        }
    }

    /// The tensor called `name`, or nil.
    public subscript(name: String) -> ArraySlice<Scalar>? {
        guard let spec = layout.spec(named: name) else { return nil }
        return storage[spec.range]
    }

    /// Sets every scalar to zero.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public mutating func zero() {
        storage.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}
