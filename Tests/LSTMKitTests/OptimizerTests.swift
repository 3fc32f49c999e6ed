import Foundation
import Testing
@testable import LSTMKit

/// Optimizers against torch.optim trajectories in float64 (`Scripts/make_optimizer_reference.py`, committed output
/// in Fixtures/optimizers.json). Both sides compute in Double with the same operation order, so the only differences
/// are from `pow` and rounding of a handful of operations: 1e-12 relative.
struct OptimizerTests {
    struct Reference: Decodable {
        struct Case: Decodable {
            var name: String
            var configuration: [String: JSONValue]
            var learningRate: Double
            var parameters: [[Double]]
        }
        struct Clip: Decodable { var maxNorm: Double; var totalNorm: Double; var clipped: [Double] }
        var initial: [Double]
        var gradients: [[Double]]
        var cases: [Case]
        var clipNorm: [Clip]
    }

    enum JSONValue: Decodable {
        case number(Double), bool(Bool), string(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else { self = .string(try c.decode(String.self)) }
        }
        var number: Double? { if case .number(let d) = self { return d } else { return nil } }
        var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
        var string: String? { if case .string(let s) = self { return s } else { return nil } }
    }

    static let reference: Reference = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/optimizers.json")
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }()

    static func configuration(_ c: [String: JSONValue]) -> OptimizerConfiguration {
        func n(_ key: String, _ fallback: Double) -> Double { c[key]?.number ?? fallback }
        func b(_ key: String) -> Bool { c[key]?.bool ?? false }
        switch c["kind"]!.string! {
        case "sgd": return .sgd(momentum: n("momentum", 0), dampening: n("dampening", 0), nesterov: b("nesterov"),
                                weightDecay: n("weightDecay", 0))
        case "adam": return .adam(beta1: n("beta1", 0.9), beta2: n("beta2", 0.999), epsilon: n("epsilon", 1e-8),
                                  weightDecay: n("weightDecay", 0))
        case "adamw": return .adamW(beta1: n("beta1", 0.9), beta2: n("beta2", 0.999), epsilon: n("epsilon", 1e-8),
                                    weightDecay: n("weightDecay", 0.01))
        case "rmsprop": return .rmsProp(alpha: n("alpha", 0.99), epsilon: n("epsilon", 1e-8), momentum: n("momentum", 0),
                                        centered: b("centered"), weightDecay: n("weightDecay", 0))
        case "adagrad": return .adagrad(learningRateDecay: n("learningRateDecay", 0), epsilon: n("epsilon", 1e-10),
                                        weightDecay: n("weightDecay", 0), initialAccumulator: n("initialAccumulator", 0))
        default: fatalError("unknown optimizer in fixture")
        }
    }

    static var caseNames: [String] { reference.cases.map(\.name) }

    @Test(arguments: caseNames)
    func matchesTorchOptim(name: String) {
        let reference = Self.reference
        let c = reference.cases.first { $0.name == name }!
        var layout = ParameterLayout()
        _ = layout.add("a", shape: [3, 4])
        _ = layout.add("b", shape: [5])
        var parameters = ParameterBuffer(layout: layout, storage: reference.initial)
        var optimizer = Optimizer<Double>(Self.configuration(c.configuration), parameterCount: layout.count)
        for (step, expected) in c.parameters.enumerated() {
            let gradients = ParameterBuffer(layout: layout, storage: reference.gradients[step])
            optimizer.step(&parameters, gradients: gradients, learningRate: c.learningRate)
            let worst = zip(parameters.storage, expected).map { abs($0 - $1) / max(abs($1), 1e-300) }.max()!
            #expect(worst <= 1e-12, "\(name) step \(step + 1): max relative difference \(worst)")
        }
        // The trajectory moved: a no-op optimizer cannot pass.
        #expect(parameters.storage != reference.initial)
    }

    /// Adam and AdamW over blocks of parameters on 1, 2 and 3 threads: the same bits (300,001 parameters, so every
    /// count splits them, and unevenly), three steps with weight decay.
    @Test func adamIsThreadIndependent() {
        var layout = ParameterLayout()
        _ = layout.add("w", shape: [300_001])
        var random = RandomSource(seed: 8)
        var start = ParameterBuffer<Float>(layout: layout), gradients = ParameterBuffer<Float>(layout: layout)
        for k in 0..<layout.count {
            start.storage[k] = Float(random.uniform(-1, 1))
            gradients.storage[k] = Float(random.uniform(-1, 1))
        }
        for configuration in [OptimizerConfiguration.adam(weightDecay: 0.01), .adamW()] {
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                var optimizer = Optimizer<Float>(configuration, parameterCount: layout.count)
                var parameters = start
                for _ in 0..<3 { optimizer.step(&parameters, gradients: gradients, learningRate: 1e-2, threads: threads) }
                results.append(parameters.storage + optimizer.states.joined())
            }
            #expect(results[0] != start.storage + [Float](repeating: 0, count: 2 * layout.count))
            #expect(results[1] == results[0] && results[2] == results[0], "\(configuration.name)")
        }
    }

    /// Float Adam and AdamW run in C (AVX2 and its portable path): bit for bit the Swift loop written out here (the
    /// operations of `Optimizer.step`), over 1,003 values (a tail after the 8-wide blocks) with zero, tiny (squares
    /// below the normal range) and huge gradients, three steps.
    @Test func floatAdamKernelMatchesTheLoop() {
        let n = 1003
        var layout = ParameterLayout()
        _ = layout.add("w", shape: [n])
        var random = RandomSource(seed: 5)
        var start = ParameterBuffer<Float>(layout: layout), gradients = ParameterBuffer<Float>(layout: layout)
        for k in 0..<n {
            start.storage[k] = Float(random.uniform(-2, 2))
            let scale: Float = k % 7 == 0 ? 1e-20 : k % 11 == 0 ? 1e15 : 1
            gradients.storage[k] = k % 13 == 0 ? 0 : Float(random.uniform(-1, 1)) * scale
        }
        let lr = 1e-2
        for configuration in [OptimizerConfiguration.adam(), .adam(weightDecay: 0.1), .adamW(weightDecay: 0.05)] {
            let (beta1, beta2, epsilon, weightDecay, decoupled): (Double, Double, Double, Double, Bool)
            switch configuration {
            case let .adam(b1, b2, e, w): (beta1, beta2, epsilon, weightDecay, decoupled) = (b1, b2, e, w, false)
            case let .adamW(b1, b2, e, w): (beta1, beta2, epsilon, weightDecay, decoupled) = (b1, b2, e, w, true)
            default: Issue.record("not Adam"); return
            }
            var p = start.storage, m = [Float](repeating: 0, count: n), v = m
            for t in 1...3 {
                let b1 = Float(1 - beta1), b2 = Float(beta2), b2c = Float(1 - beta2), wd = Float(weightDecay)
                let stepSize = Float(lr / (1 - pow(beta1, Double(t))))
                let correction2Root = Float((1 - pow(beta2, Double(t))).squareRoot())
                let eps = Float(epsilon), shrink = Float(1 - lr * weightDecay)
                for k in 0..<n {
                    var pk = p[k], g = gradients.storage[k]
                    if decoupled { pk = pk * shrink } else if weightDecay != 0 { g = g + wd * pk }
                    m[k] = m[k] + b1 * (g - m[k])
                    v[k] = v[k] * b2 + b2c * g * g
                    p[k] = pk - stepSize * (m[k] / (v[k].squareRoot() / correction2Root + eps))
                }
            }
            #expect(p != start.storage)
            for portable in [false, true] {
                var optimizer = Optimizer<Float>(configuration, parameterCount: n)
                optimizer.portableKernel = portable
                var parameters = start
                for _ in 0..<3 { optimizer.step(&parameters, gradients: gradients, learningRate: lr, threads: 2) }
                #expect(parameters.storage == p && optimizer.states[0] == m && optimizer.states[1] == v,
                        "\(configuration.name), portable: \(portable)")
            }
        }
    }

    @Test func clipNormMatchesTorch() {
        var layout = ParameterLayout()
        _ = layout.add("a", shape: [3, 4])
        _ = layout.add("b", shape: [5])
        for clip in Self.reference.clipNorm {
            var g = ParameterBuffer(layout: layout, storage: Self.reference.gradients[0])
            let total = GradientClipping.clipNorm(&g, maxNorm: clip.maxNorm)
            #expect(abs(total - clip.totalNorm) <= 1e-14 * clip.totalNorm)
            #expect(zip(g.storage, clip.clipped).allSatisfy { abs($0 - $1) <= 1e-14 * max(1, abs($1)) })
        }
    }

    /// The norm sums in eight lanes: within rounding of the in-order Double sum at every length (lanes and tail).
    @Test func normInLanesIsTheSum() {
        var random = RandomSource(seed: 17)
        for count in [1, 7, 8, 9, 15, 1000, 100_003] {
            var layout = ParameterLayout()
            _ = layout.add("g", shape: [count])
            let g = ParameterBuffer<Float>(layout: layout, storage: (0..<count).map { _ in Float(random.uniform(-2, 2)) })
            var sum = 0.0
            for x in g.storage { sum += Double(x) * Double(x) }
            // Either sum of n positive terms is within n·u of the exact one (u = 2⁻⁵³), so the norms within n·u.
            let tolerance = Double(count + 8) * 1.2e-16 * sum.squareRoot()
            #expect(abs(GradientClipping.norm(g) - sum.squareRoot()) <= tolerance, "\(count)")
            // The lanes to the bit (the Float path loads eight values per vector): lane k mod 8 sums Double(x)² in
            // order, then ((0+1)+(2+3))+((4+5)+(6+7)); the Double buffer's closure path the same.
            var l = [Double](repeating: 0, count: 8)
            for (k, x) in g.storage.enumerated() { l[k % 8] += Double(x) * Double(x) }
            let lanes = (((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))).squareRoot()
            #expect(GradientClipping.norm(g) == lanes, "\(count)")
            let d = ParameterBuffer<Double>(layout: layout, storage: g.storage.map { Double($0) })
            #expect(GradientClipping.norm(d) == lanes, "\(count)")
        }
    }

    @Test func clipValueClamps() {
        var layout = ParameterLayout()
        _ = layout.add("a", shape: [4])
        var g = ParameterBuffer<Float>(layout: layout, storage: [-3, -0.5, 0.25, 2])
        GradientClipping.clipValue(&g, limit: 1)
        #expect(g.storage == [-1, -0.5, 0.25, 1])
    }

    /// Values worked out by hand from the definitions in `LearningRateSchedule`.
    @Test func schedules() {
        #expect(LearningRateSchedule.constant.learningRate(base: 0.1, step: 1000) == 0.1)
        let step = LearningRateSchedule.step(every: 10, factor: 0.5)
        #expect(step.learningRate(base: 0.1, step: 9) == 0.1)
        #expect(step.learningRate(base: 0.1, step: 10) == 0.05)
        #expect(step.learningRate(base: 0.1, step: 25) == 0.025)
        let cosine = LearningRateSchedule.cosine(warmup: 4, total: 14, minimum: 0.01)
        #expect(cosine.learningRate(base: 0.1, step: 0) == 0.025)
        #expect(cosine.learningRate(base: 0.1, step: 3) == 0.1)
        #expect(abs(cosine.learningRate(base: 0.1, step: 4) - 0.1) < 1e-15)
        #expect(abs(cosine.learningRate(base: 0.1, step: 9) - 0.055) < 1e-15)  // halfway: (0.1 + 0.01) / 2
        #expect(abs(cosine.learningRate(base: 0.1, step: 14) - 0.01) < 1e-15)
        #expect(abs(cosine.learningRate(base: 0.1, step: 100) - 0.01) < 1e-15)
    }
}
