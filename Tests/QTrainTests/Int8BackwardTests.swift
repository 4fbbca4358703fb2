import Foundation
import QKernels
import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainDist
@testable import QTrainModel
@testable import QTrainTraining
@testable import QTrainWeights

/// `quant.compute: int8-int8` and `int8-int8bf16`: the incoming gradient rounded to int8 per
/// row, dX in oneDNN's int8 GEMM; checked against Float64 with the bound of that rounding,
/// unbiased over seeds, and in training beside the FP32 backward.
final class Int8BackwardTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(ProductArithmetic.int8.isAvailable, ProductArithmetic.int8.unavailableReason ?? "")
    }

    /// The rounding kernel: integers in [-127, 127] next to the scaled value (stochastic) or
    /// nearest to it; unbiased; independent of how rows are split; NaN maps to a bound.
    func testRoundingToInt8() {
        let n = 4096
        let x = (0..<n).map { Float(sin(Double($0) * 0.37)) * 3 }
        let inv: [Float] = [127 / 3]
        var stochastic = [Int8](repeating: 0, count: n), nearest = stochastic
        qk_round_i8(&stochastic, Int64(n), x, Int64(n), 1, Int64(n), inv, 5, 0, Int64(n), 1)
        qk_round_i8(&nearest, Int64(n), x, Int64(n), 1, Int64(n), inv, 5, 0, Int64(n), 0)
        var ups = 0
        for i in 0..<n {
            let v = x[i] * inv[0]
            XCTAssertEqual(Float(nearest[i]), v.rounded(), accuracy: 0, "element \(i)")
            XCTAssertTrue(Float(stochastic[i]) == v.rounded(.down) || Float(stochastic[i]) == v.rounded(.up))
            if Float(stochastic[i]) > v { ups += 1 }
        }
        XCTAssertGreaterThan(ups, n / 4)
        XCTAssertLessThan(ups, 3 * n / 4)
        // In halves, rows 0 and 1 as two calls: the same draws (counter r · stride + c).
        var whole = [Int8](repeating: 0, count: 2 * 64), halves = whole
        let two = (0..<128).map { Float($0 % 13) * 0.77 - 4 }, invs: [Float] = [1.3, 2.1]
        qk_round_i8(&whole, 64, two, 64, 2, 64, invs, 9, 0, 64, 1)
        qk_round_i8(&halves, 64, two, 64, 1, 64, invs, 9, 0, 64, 1)
        two.withUnsafeBufferPointer { t in
            halves.withUnsafeMutableBufferPointer { h in
                qk_round_i8(h.baseAddress! + 64, 64, t.baseAddress! + 64, 64, 1, 64, [invs[1]], 9, 64, 64, 1)
            }
        }
        XCTAssertEqual(whole, halves)
        // Unbiased: the mean of many draws of one value converges on it.
        let draws = 20_000, v: Float = 0.3
        let xs = [Float](repeating: v, count: draws)
        var out = [Int8](repeating: 0, count: draws)
        qk_round_i8(&out, Int64(draws), xs, Int64(draws), 1, Int64(draws), [1], 3, 0, Int64(draws), 1)
        let mean = Double(out.reduce(0) { $0 + Int($1) }) / Double(draws)
        XCTAssertEqual(mean, Double(v), accuracy: 4 * 0.5 / Double(draws).squareRoot())
        // Bounds: at most ±127 also where FP32 rounding lands a hair above 127; NaN to a bound.
        var edge = [Int8](repeating: 0, count: 3)
        qk_round_i8(&edge, 3, [1.0000001, -1.0000001, .nan], 3, 1, 3, [127], 1, 0, 3, 1)
        XCTAssertEqual(edge[0], 127)
        XCTAssertEqual(edge[1], -127)
        XCTAssertTrue(abs(Int(edge[2])) == 127)
    }

    /// In real backward passes (tiny and small shapes; ternary and 8-bit DQT, BitNet; nearest
    /// and stochastic; dW in FP32 and in BF16), every element of dX is within
    /// Σ_parts s_part · Σ_n |W[n, k]| of the Float64 product (half that to nearest), s_part the
    /// row's int8 step of dY over the part's columns, and dW within its arithmetic's bound; the
    /// dX bound is used (the path does round).
    func testBackwardGradientsWithinInt8Bound() throws {
        for file in ["configs/tiny.yaml", "configs/small.yaml"] {
            var config = try RunConfig.load(path: repositoryFile(file)).model
            config.seqLen = min(config.seqLen, 32)
            for (mode, bits) in [(QuantMode.dqt, nil), (.dqt, 8.0), (.bitnet, nil)] as [(QuantMode, Double?)] {
                for weightGradient in [ProductArithmetic.fp32, .bf16] where weightGradient.isAvailable {
                    for rounding in BackwardRounding.allCases {
                        let label = "\(file) \(mode) \(bits ?? 1.58) dW \(weightGradient) \(rounding)"
                        var quant = Int8ComputeTests.quant(
                            mode, bits: bits, compute: weightGradient == .bf16 ? .int8Int8BF16 : .int8Int8)
                        quant.backwardRounding = rounding
                        let tested = Int8Matmul(
                            maxRows: config.seqLen, maxInner: max(config.dim, config.hiddenDim), inputGradient: .int8,
                            weightGradient: weightGradient, rounding: rounding, ledger: nil)
                        let u = weightGradient == .fp32 ? 0 : rounding == .nearest ? 0x1p-8 : 0x1p-7
                        let probe = BackwardProbe(tested, u: u, int8InputGradient: rounding)
                        let model = Model(config: config, quant: quant, batch: 1, ledger: nil, backend: probe)
                        model.weights.initialize(seed: 5, std: Float(config.initStd))
                        let tokens = (0..<config.seqLen).map { Int32(($0 * 31 + 3) % config.vocabSize) }
                        model.backwardSeed = 99
                        _ = try model.forwardBackward(
                            tokens: tokens, targets: tokens.reversed(), batch: 1, length: tokens.count)
                        XCTAssertEqual(probe.calls, 4 * config.nLayers + 1, label)
                        XCTAssertLessThanOrEqual(probe.worst, 1, label)
                        XCTAssertGreaterThan(probe.worstUse, 0.05, "\(label): the gradient was rounded to int8")
                    }
                }
            }
        }
    }

    /// Stochastic rounding makes the int8 dX unbiased: the mean of the whole model's gradients
    /// over 32 seeds is several times closer to the FP32 backward's than one seed's are.
    func testInputGradientIsUnbiased() throws {
        var config = try RunConfig.load(path: repositoryFile("configs/tiny.yaml")).model
        config.seqLen = 32
        func model(_ compute: ComputePath) -> Model {
            let m = Model(
                config: config, quant: Int8ComputeTests.quant(.dqt, bits: 8, compute: compute), batch: 1, ledger: nil)
            m.weights.initialize(seed: 3, std: Float(config.initStd))
            return m
        }
        let tokens = (0..<config.seqLen).map { Int32(($0 * 17 + 1) % config.vocabSize) }
        func gradients(_ m: Model, seed: UInt64) throws -> [Double] {
            m.zeroGradients()
            m.backwardSeed = seed
            _ = try m.forwardBackward(tokens: tokens, targets: tokens.reversed(), batch: 1, length: tokens.count)
            return UnsafeBufferPointer(start: m.gradients.pointer, count: m.layout.count).map(Double.init)
        }
        let exact = try gradients(model(.int8), seed: 0)
        let fast = model(.int8Int8)
        XCTAssertEqual(fast.backend.needs.inputGradient, .int8)
        let seeds = 32
        var mean = [Double](repeating: 0, count: exact.count), single = 0.0
        for s in 0..<seeds {
            let g = try gradients(fast, seed: UInt64(s + 1))
            for i in g.indices { mean[i] += g[i] / Double(seeds) }
            single += zip(g, exact).map { abs($0 - $1) }.reduce(0, +) / Double(seeds)
        }
        let averaged = zip(mean, exact).map { abs($0 - $1) }.reduce(0, +)
        XCTAssertGreaterThan(single, 0, "the int8 dX rounds")
        XCTAssertLessThan(averaged, 0.35 * single, "1/sqrt(32) = 0.18 for an unbiased rounding")
    }

    /// Training tiny ternary and 8-bit DQT with int8-int8 (and int8-int8bf16) follows the FP32
    /// backward, and two runs with the same seed are bit-identical.
    func testInt8BackwardTrainingFollowsFP32() throws {
        for (bits, compute) in [(nil, ComputePath.int8Int8), (8.0, .int8Int8), (nil, .int8Int8BF16)]
            as [(Double?, ComputePath)]
        where compute == .int8Int8 || ProductArithmetic.bf16.isAvailable {
            let fast = try assertTrainingFollows(
                self, mode: .dqt, bits: bits, reference: .int8, tested: compute, tolerance: 1e-2)
            XCTAssertEqual(fast.model.backend.needs.inputGradient, .int8)
            XCTAssertTrue(fast.model.backend.name.contains("int8 (oneDNN int8 GEMM"), fast.model.backend.name)
        }
    }

    /// Each path resolves to what it names here, its memory plan counts the int8 scratch, and
    /// without oneDNN it says it computes in fp32.
    func testResolutionAndFallback() throws {
        XCTAssertEqual(
            ComputePath.int8Int8.resolved().kind, .int8(inputGradient: .int8, weightGradient: .fp32))
        if ProductArithmetic.bf16.isAvailable {
            XCTAssertEqual(
                ComputePath.int8Int8BF16.resolved().kind, .int8(inputGradient: .int8, weightGradient: .bf16))
        }
        let plain = Int8Matmul.scratchBytes(maxRows: 256, maxInner: 512, inputGradient: .fp32, weightGradient: .fp32)
        let int8 = Int8Matmul.scratchBytes(maxRows: 256, maxInner: 512, inputGradient: .int8, weightGradient: .fp32)
        XCTAssertEqual(int8 - plain, 4 * 256 * 512 + 8 * 256)
        let ledger = MemoryLedger()
        let backend = Int8Matmul(
            maxRows: 256, maxInner: 512, inputGradient: .int8, weightGradient: .fp32, ledger: ledger)
        XCTAssertEqual(Double(ledger.bytes(.scratch)), int8, accuracy: 64 * 8)
        withExtendedLifetime(backend) {}
        try assertFallbackAnnounced("int8-int8")
    }
}
