/// LSTMKit's own seeded random number generator: xoshiro256** seeded through SplitMix64.
///
/// Every random choice in the library (initialisation, data order, sampling) draws from a value of this type that
/// the caller owns and passes in, so a seed fixes the result and there is no global mutable state. The algorithm is
/// fixed: the same seed gives the same stream on every platform and in every version of LSTMKit.
public struct RandomSource: RandomNumberGenerator, Sendable, Hashable {
    /// The four 64-bit words of xoshiro256** state; pass them to `init(state:)` to continue this exact stream.
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    /// Creates a generator whose state is four successive SplitMix64 outputs started from `seed`.
    ///
    /// - Parameter seed: Any value; the same seed always gives the same stream.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// Restores a generator from a saved state (for exact resume).
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        self.state = state
    }

    /// Returns the next 64 random bits (xoshiro256**) and advances the state.
    ///
    /// - Returns: A uniformly distributed `UInt64`.
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * nextUnit()
    }

    /// Standard normal by Box–Muller (one value per call; the second is discarded to keep the stream simple).
    public mutating func normal() -> Double {
        var u1 = nextUnit()
        while u1 <= 0 { u1 = nextUnit() }
        let u2 = nextUnit()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// Uniform integer in 0..<n.
    public mutating func index(below n: Int) -> Int {
        require(n > 0, "RandomSource.index(below:): got \(n), expected a positive bound")
        return Int(next(upperBound: UInt64(n)))
    }

    /// Whether two generators have the same state, and so will produce the same stream from here on.
    public static func == (a: RandomSource, b: RandomSource) -> Bool {
        a.state.0 == b.state.0 && a.state.1 == b.state.1 && a.state.2 == b.state.2 && a.state.3 == b.state.3
    }

    /// Hashes the four state words.
    ///
    /// - Parameter hasher: The hasher to feed.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(state.0); hasher.combine(state.1); hasher.combine(state.2); hasher.combine(state.3)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif
@inline(__always) private func _log(_ x: Double) -> Double { log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { cos(x) }
