#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

/// The element types LSTMKit computes in: `Float` for training and inference, `Double` for gradient checks.
///
/// The elementary functions are the C library's (`expf`/`exp`, `tanhf`/`tanh`), correctly rounded to within an ulp
/// or two, so that the plain reference kernels are obviously right; vectorized approximations belong to the fast
/// kernels and are tested against these.
public protocol LSTMScalar: BinaryFloatingPoint, Sendable where Self.RawSignificand: FixedWidthInteger {
    /// The exponential eˣ.
    static func exponential(_ x: Self) -> Self
    /// The hyperbolic tangent tanh x.
    static func hyperbolicTangent(_ x: Self) -> Self
    /// The natural logarithm ln x.
    static func logarithm(_ x: Self) -> Self
    /// The square root √x.
    static func squareRoot(_ x: Self) -> Self
}

extension Float: LSTMScalar {
    /// eˣ by the C library's `expf`.
    @inlinable public static func exponential(_ x: Float) -> Float { expf(x) }
    /// tanh x by the C library's `tanhf`.
    @inlinable public static func hyperbolicTangent(_ x: Float) -> Float { tanhf(x) }
    /// ln x by the C library's `logf`.
    @inlinable public static func logarithm(_ x: Float) -> Float { logf(x) }
    /// √x, correctly rounded (IEEE 754 square root).
    @inlinable public static func squareRoot(_ x: Float) -> Float { x.squareRoot() }
}

extension Double: LSTMScalar {
    /// eˣ by the C library's `exp`.
    @inlinable public static func exponential(_ x: Double) -> Double { exp(x) }
    /// tanh x by the C library's `tanh`.
    @inlinable public static func hyperbolicTangent(_ x: Double) -> Double { tanh(x) }
    /// ln x by the C library's `log`.
    @inlinable public static func logarithm(_ x: Double) -> Double { log(x) }
    /// √x, correctly rounded (IEEE 754 square root).
    @inlinable public static func squareRoot(_ x: Double) -> Double { x.squareRoot() }
}

extension Array where Element: LSTMScalar {
    /// An array of `count` elements that the caller writes in full before anyone reads it: in release builds no
    /// zero fill (a training step's outputs are megabytes, written again right away by a product or a copy); in
    /// debug builds, and so in the tests, every element starts as NaN, so one left unwritten shows.
    @inline(__always)
    static func unfilled(_ count: Int) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            #if DEBUG
            buffer.initialize(repeating: .nan)
            #endif
            initialized = count
        }
    }
}
