import _LSTMKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

/// Which update rule, with its hyperparameters (the learning rate comes per step from a schedule).
///
/// Each rule follows PyTorch's `torch.optim` single-tensor implementation operation for operation, so the first
/// steps match PyTorch's to rounding (tested against `Scripts/make_optimizer_reference.py`).
public enum OptimizerConfiguration: Sendable, Hashable, Codable {
    /// g ← g + λp; b ← g (first step) or μb + (1−d)g; g ← g + μb (Nesterov) or b; p ← p − lr·g.
    case sgd(momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false, weightDecay: Double = 0)
    /// g ← g + λp; m ← m + (1−β1)(g − m); v ← β2 v + (1−β2) g²;
    /// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
    case adam(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0)
    /// Adam with decoupled weight decay: p ← p(1 − lr·λ) first, then Adam's update without the λp term.
    case adamW(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01)
    /// g ← g + λp; v ← αv + (1−α)g²; (centered: a ← a + (1−α)(g − a), v̄ = v − a²); d = √v̄ + ε;
    /// b ← μb + g/d, p ← p − lr·b (momentum) or p ← p − lr·g/d.
    case rmsProp(alpha: Double = 0.99, epsilon: Double = 1e-8, momentum: Double = 0, centered: Bool = false,
                 weightDecay: Double = 0)
    /// g ← g + λp; s ← s + g²; p ← p − (lr / (1 + (t−1)·decay)) · g / (√s + ε).
    case adagrad(learningRateDecay: Double = 0, epsilon: Double = 1e-10, weightDecay: Double = 0,
                 initialAccumulator: Double = 0)

    /// The names of the per-parameter state buffers this rule keeps, in the order of `Optimizer.states`.
    public var stateNames: [String] {
        switch self {
        case .sgd(let momentum, _, _, _): return momentum != 0 ? ["momentum_buffer"] : []
        case .adam, .adamW: return ["exp_avg", "exp_avg_sq"]
        case .rmsProp(_, _, let momentum, let centered, _):
            return ["square_avg"] + (momentum > 0 ? ["momentum_buffer"] : []) + (centered ? ["grad_avg"] : [])
        case .adagrad: return ["sum"]
        }
    }

    /// The rule's lower-case name: `sgd`, `adam`, `adamw`, `rmsprop` or `adagrad`.
    public var name: String {
        switch self {
        case .sgd: return "sgd"
        case .adam: return "adam"
        case .adamW: return "adamw"
        case .rmsProp: return "rmsprop"
        case .adagrad: return "adagrad"
        }
    }
}

/// An optimizer over a model's flat parameter buffer: one loop over all scalars per step.
public struct Optimizer<Scalar: LSTMScalar>: Sendable {
    /// The update rule and its hyperparameters.
    public let configuration: OptimizerConfiguration
    /// Number of steps taken so far (PyTorch's `state['step']`).
    public var stepCount: Int = 0
    /// One buffer per name in `configuration.stateNames`, each laid out like the parameters.
    public var states: [[Scalar]]

    /// An optimizer that has taken no steps, its state buffers zero (Adagrad's sum at `initialAccumulator`).
    /// - Parameters:
    ///   - configuration: The update rule and its hyperparameters.
    ///   - parameterCount: The number of scalars in the parameter buffer it will update.
    public init(_ configuration: OptimizerConfiguration, parameterCount: Int) {
        self.configuration = configuration
        var states = configuration.stateNames.map { _ in [Scalar](repeating: 0, count: parameterCount) }
        if case .adagrad(_, _, _, let initial) = configuration, initial != 0 {
            states[0] = [Scalar](repeating: Scalar(initial), count: parameterCount)
        }
        self.states = states
    }

    /// Float Adam runs the C kernel's scalar path instead of its AVX2 one (tests: both give the same bits).
    var portableKernel = false

    /// Updates `parameters` in place from `gradients` with learning rate `learningRate`.
    ///
    /// `threads`: Adam and AdamW split the parameters into that many contiguous blocks updated at once (every
    /// parameter's update is its own, so any count gives the same bits); the other rules run on one thread. Float
    /// Adam and AdamW run vectorized in `_LSTMKernels` (`lstmk_adam`: the same operations in the same order).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public mutating func step(_ parameters: inout ParameterBuffer<Scalar>, gradients: ParameterBuffer<Scalar>,
                              learningRate: Double, threads: Int = 1) {
        require(parameters.storage.count == gradients.storage.count, "Optimizer.step: gradients do not match parameters")
        require(states.allSatisfy { $0.count == parameters.storage.count }, "Optimizer.step: state does not match parameters")
        stepCount += 1
        let t = Double(stepCount)
        let n = parameters.storage.count
        let lr = Scalar(learningRate)
        switch configuration {
        case let .sgd(momentum, dampening, nesterov, weightDecay):
            let mu = Scalar(momentum), wd = Scalar(weightDecay), keep = Scalar(1 - dampening)
            let first = stepCount == 1
            for k in 0..<n {
                let p = parameters.storage[k]
                var g = gradients.storage[k]
                if weightDecay != 0 { g = g + wd * p }
                if momentum != 0 {
                    let b = first ? g : states[0][k] * mu + keep * g
                    states[0][k] = b
                    g = nesterov ? g + mu * b : b
                }
                parameters.storage[k] = p - lr * g
            }
        case let .adam(beta1, beta2, epsilon, weightDecay), let .adamW(beta1, beta2, epsilon, weightDecay):
            let decoupled: Bool
            if case .adamW = configuration { decoupled = true } else { decoupled = false }
            let b1 = Scalar(1 - beta1), b2 = Scalar(beta2), b2c = Scalar(1 - beta2), wd = Scalar(weightDecay)
            let stepSize = Scalar(learningRate / (1 - pow(beta1, t)))
            let correction2Root = Scalar((1 - pow(beta2, t)).squareRoot())
            let eps = Scalar(epsilon)
            let shrink = Scalar(1 - learningRate * weightDecay)
            // Through buffer pointers: indexing the nested state arrays checked uniqueness at every element and
            // kept the loop from vectorizing (measured 5 % of a character-model step). Same operations, same bits.
            var (first, second) = (states[0], states[1])
            states = []
            parameters.storage.withUnsafeMutableBufferPointer { ps in
                gradients.storage.withUnsafeBufferPointer { gs in
                    first.withUnsafeMutableBufferPointer { ms in
                        second.withUnsafeMutableBufferPointer { vs in
                            nonisolated(unsafe) let (ps, gs, ms, vs) = (ps, gs, ms, vs)
                            let floatConstants: [Float] = [shrink, wd, b1, b2, b2c, correction2Root, eps, stepSize]
                                .map { Float($0) }
                            let mode: Int32 = decoupled ? 1 : weightDecay != 0 ? 2 : 0
                            func update(_ range: Range<Int>) {
                                if Scalar.self == Float.self {
                                    // The same operations vectorized in C (see lstmk_adam), the same bits.
                                    func float<T>(_ b: UnsafeMutableBufferPointer<T>) -> UnsafeMutablePointer<Float> {
                                        UnsafeMutableRawPointer(b.baseAddress! + range.lowerBound)
                                            .assumingMemoryBound(to: Float.self)
                                    }
                                    let g = UnsafeRawPointer(gs.baseAddress! + range.lowerBound)
                                        .assumingMemoryBound(to: Float.self)
                                    lstmk_adam(float(ps), g, float(ms), float(vs), range.count, floatConstants, mode,
                                               portableKernel ? 1 : 0)
                                    return
                                }
                                for k in range {
                                    var p = ps[k]
                                    var g = gs[k]
                                    if decoupled { p = p * shrink } else if weightDecay != 0 { g = g + wd * p }
                                    let m = ms[k] + b1 * (g - ms[k])
                                    let v = vs[k] * b2 + b2c * g * g
                                    ms[k] = m
                                    vs[k] = v
                                    let denom = Scalar.squareRoot(v) / correction2Root + eps
                                    ps[k] = p - stepSize * (m / denom)
                                }
                            }
                            // Blocks of at least 16 K parameters (256 KB of parameters, gradients and moments, ~10 µs;
                            // a dispatch to hot workers is under 1 µs). From 64 K, `small`'s 107 K parameters ran on
                            // one thread: its update 0.122 → 0.075 ms on two, faster in 195 of 200 alternated steps.
                            let parts = max(1, min(threads, n / (1 << 14)))
                            if parts == 1 { update(0..<n) } else {
                                WorkerPool.shared(threads: parts).run(parts: parts) { part in
                                    update((part * n / parts)..<((part + 1) * n / parts))
                                }
                            }
                        }
                    }
                }
            }
            states = [first, second]
        case let .rmsProp(alpha, epsilon, momentum, centered, weightDecay):
            let a = Scalar(alpha), a1 = Scalar(1 - alpha), eps = Scalar(epsilon), mu = Scalar(momentum)
            let wd = Scalar(weightDecay)
            let momentumIndex = 1
            let averageIndex = momentum > 0 ? 2 : 1
            for k in 0..<n {
                let p = parameters.storage[k]
                var g = gradients.storage[k]
                if weightDecay != 0 { g = g + wd * p }
                let v = states[0][k] * a + a1 * g * g
                states[0][k] = v
                var avg: Scalar
                if centered {
                    let ga = states[averageIndex][k] + a1 * (g - states[averageIndex][k])
                    states[averageIndex][k] = ga
                    avg = Scalar.squareRoot(v - ga * ga)
                } else {
                    avg = Scalar.squareRoot(v)
                }
                avg = avg + eps
                if momentum > 0 {
                    let b = states[momentumIndex][k] * mu + g / avg
                    states[momentumIndex][k] = b
                    parameters.storage[k] = p - lr * b
                } else {
                    parameters.storage[k] = p - lr * (g / avg)
                }
            }
        case let .adagrad(learningRateDecay, epsilon, weightDecay, _):
            let clr = Scalar(learningRate / (1 + (t - 1) * learningRateDecay))
            let eps = Scalar(epsilon), wd = Scalar(weightDecay)
            for k in 0..<n {
                let p = parameters.storage[k]
                var g = gradients.storage[k]
                if weightDecay != 0 { g = g + wd * p }
                let s = states[0][k] + g * g
                states[0][k] = s
                parameters.storage[k] = p - clr * (g / (Scalar.squareRoot(s) + eps))
            }
        }
    }
}

/// Gradient clipping over the whole flat gradient buffer.
public enum GradientClipping {
    /// PyTorch's `clip_grad_norm_`: total = ‖g‖₂ over every tensor; g ← g · min(1, maxNorm / (total + 1e-6)).
    /// Returns the norm before clipping (summed in Double).
    @discardableResult
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func clipNorm<S: LSTMScalar>(_ gradients: inout ParameterBuffer<S>, maxNorm: Double) -> Double {
        let total = norm(gradients)
        clipNorm(&gradients, maxNorm: maxNorm, norm: total)
        return total
    }

    /// The same clipping with the norm already computed (a training loop that checks the norm first sums once).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func clipNorm<S: LSTMScalar>(_ gradients: inout ParameterBuffer<S>, maxNorm: Double, norm total: Double) {
        let coefficient = S(min(1, maxNorm / (total + 1e-6)))
        if coefficient < 1 {
            for k in gradients.storage.indices { gradients.storage[k] *= coefficient }
        }
    }

    /// ‖g‖₂ over every tensor, summed in Double in eight lanes (component k in lane k mod 8, then a fixed order):
    /// one chain's add latency made this serial pass over every parameter several times longer.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public static func norm<S: LSTMScalar>(_ gradients: ParameterBuffer<S>) -> Double {
        var sum = SquareSum()
        gradients.storage.withUnsafeBufferPointer { g in
            if let base = g.baseAddress { sum.add(0..<g.count) { Double(base[$0]) } }
        }
        return sum.total.squareRoot()
    }

    /// PyTorch's `clip_grad_value_`: each component clamped to [−limit, limit].
    public static func clipValue<S: LSTMScalar>(_ gradients: inout ParameterBuffer<S>, limit: Double) {
        let c = S(limit)
        for k in gradients.storage.indices { gradients.storage[k] = min(max(gradients.storage[k], -c), c) }
    }
}

/// The learning rate as a function of the step index (0 for the first step).
public enum LearningRateSchedule: Sendable, Hashable, Codable {
    /// The base rate at every step.
    case constant
    /// Multiplied by `factor` every `every` steps (PyTorch's StepLR).
    case step(every: Int, factor: Double)
    /// Linear warm-up from lr/warmup to lr over `warmup` steps, then cosine decay to `minimum` at `total` steps,
    /// constant after.
    case cosine(warmup: Int, total: Int, minimum: Double)

    /// The learning rate at step `n` for the base rate `base`.
    /// - Parameters:
    ///   - base: The base learning rate.
    ///   - n: The step index, 0 for the first step.
    /// - Returns: The rate for step `n`.
    public func learningRate(base: Double, step n: Int) -> Double {
        switch self {
        case .constant:
            return base
        case let .step(every, factor):
            return base * pow(factor, Double(n / max(every, 1)))
        case let .cosine(warmup, total, minimum):
            if n < warmup { return base * Double(n + 1) / Double(warmup) }
            let progress = min(1, Double(n - warmup) / Double(max(total - warmup, 1)))
            return minimum + (base - minimum) * (1 + cos(Double.pi * progress)) / 2
        }
    }
}
