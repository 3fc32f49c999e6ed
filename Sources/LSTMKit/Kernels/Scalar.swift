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
    static func exponential(_ x: Self) -> Self
    static func hyperbolicTangent(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
    static func squareRoot(_ x: Self) -> Self
}

extension Float: LSTMScalar {
    @inlinable public static func exponential(_ x: Float) -> Float { expf(x) }
    @inlinable public static func hyperbolicTangent(_ x: Float) -> Float { tanhf(x) }
    @inlinable public static func logarithm(_ x: Float) -> Float { logf(x) }
    @inlinable public static func squareRoot(_ x: Float) -> Float { x.squareRoot() }
}

extension Double: LSTMScalar {
    @inlinable public static func exponential(_ x: Double) -> Double { exp(x) }
    @inlinable public static func hyperbolicTangent(_ x: Double) -> Double { tanh(x) }
    @inlinable public static func logarithm(_ x: Double) -> Double { log(x) }
    @inlinable public static func squareRoot(_ x: Double) -> Double { x.squareRoot() }
}
