/// A 64-byte aligned scratch allocation that grows on demand and never shrinks, so that a layer called again with
/// the same or smaller shapes allocates nothing. Contents are unspecified after growing.
///
/// This handle is the only owner of the memory; layers reach it through `pointer` while they run and never keep it.
public final class AlignedBuffer<Scalar: LSTMScalar> {
    /// How many scalars `pointer` has room for (at least 1).
    public private(set) var capacity: Int = 0
    /// The 64-byte aligned storage; `reserve(_:)` may replace it, so read it again after growing.
    public private(set) var pointer: UnsafeMutablePointer<Scalar>

    /// Allocates zero-filled room for `capacity` scalars (at least 1).
    /// - Parameter capacity: The number of scalars to make room for.
    public init(capacity: Int = 0) {
        pointer = AlignedBuffer.allocate(max(capacity, 1))
        self.capacity = max(capacity, 1)
    }

    deinit {
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    /// Makes room for at least `count` scalars.
    public func reserve(_ count: Int) {
        guard count > capacity else { return }
        UnsafeMutableRawPointer(pointer).deallocate()
        pointer = AlignedBuffer.allocate(count)
        capacity = count
    }

    /// Sets the first `count` scalars to zero; `count` must not exceed `capacity`.
    public func zero(_ count: Int) {
        precondition(count <= capacity)
        pointer.update(repeating: 0, count: count)
    }

    /// A copy of the scalars in `range`, which must end within `capacity`.
    public func array(_ range: Range<Int>) -> [Scalar] {
        precondition(range.upperBound <= capacity)
        return Array(UnsafeBufferPointer(start: pointer + range.lowerBound, count: range.count))
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Scalar> {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: count * MemoryLayout<Scalar>.stride, alignment: 64)
        let typed = raw.bindMemory(to: Scalar.self, capacity: count)
        typed.initialize(repeating: 0, count: count)
        return typed
    }
}
