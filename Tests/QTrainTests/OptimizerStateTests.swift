import QKernels
import XCTest

@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainWeights

/// `optim.state_dtype: bf16`: AdamW's moments in two bytes each, widened for the FP32 update
/// and rounded back stochastically with seeded Philox.
final class OptimizerStateTests: XCTestCase {
    override func setUp() { Threads.configure(2) }

    func roundToBF16(_ x: [Float], start: Int, _ stream: RandomStream) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: x.count)
        let key = [stream.key.0, stream.key.1]
        qk_f32_to_bf16_stochastic(&out, x, Int64(start), Int64(x.count), key, stream.c2, stream.c3)
        return out
    }

    func widen(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Each value becomes one of its two BF16 neighbours, the mean over many draws is the value
    /// (within 4 standard errors), exact values and specials pass through, and the result
    /// does not depend on where a chunk starts.
    func testStochasticBF16RoundingIsUnbiasedAndChunkIndependent() {
        let stream = RandomStream(seed: 9, purpose: .secondMoment, tensor: 4, step: 17)
        let n = 40_000
        for x: Float in [1 + 0.3 / 128, -3.7e-5, 1e-30, 123.456, 0.999 * 0.02, -7.99] {
            let r = roundToBF16([Float](repeating: x, count: n), start: 0, stream)
            let down = UInt16(x.bitPattern >> 16), up = down + 1  // toward zero, away from zero
            XCTAssertTrue(r.allSatisfy { $0 == down || $0 == up }, "\(x)")
            let lo = Double(widen(down)), hi = Double(widen(up))
            let p = (Double(x) - lo) / (hi - lo)
            let mean = r.reduce(0.0) { $0 + Double(widen($1)) } / Double(n)
            let stderr = abs(hi - lo) * (p * (1 - p) / Double(n)).squareRoot()
            XCTAssertEqual(mean, Double(x), accuracy: 4 * stderr + 1e-9 * abs(Double(x)), "\(x)")
        }
        let exact: [Float] = [0, 1, -2, 0.5, 1.5e-20, .infinity, -.infinity]
        XCTAssertEqual(
            roundToBF16(exact.map { widen(UInt16($0.bitPattern >> 16)) }, start: 3, stream).map(widen),
            exact.map { widen(UInt16($0.bitPattern >> 16)) })
        XCTAssertTrue(widen(roundToBF16([.nan], start: 0, stream)[0]).isNaN)

        var rng = TestRandom(5)
        let xs = rng.values(1000).map(Float.init)
        let whole = roundToBF16(xs, start: 101, stream)
        let parts =
            roundToBF16(Array(xs[0..<37]), start: 101, stream) + roundToBF16(Array(xs[37...]), start: 138, stream)
        XCTAssertEqual(whole, parts)
        // Another step draws other numbers.
        XCTAssertNotEqual(
            whole, roundToBF16(xs, start: 101, RandomStream(seed: 9, purpose: .secondMoment, tensor: 4, step: 18)))
    }

    /// With zero gradients v shrinks by β2 = 0.999 a step, a change below BF16's resolution
    /// (round-to-nearest returns 0.999 · 1 as 1), so only unbiased rounding lets it decay.
    func testSecondMomentDecaysInBF16AsInFP32() {
        var nearest: UInt16 = 0
        var x: Float = 0.999
        qk_f32_to_bf16_array(&nearest, &x, 1)
        XCTAssertEqual(widen(nearest), 1)

        let m = optimizerTestModel()
        let o = optimizerForTests(m, .bf16)
        for i in 0..<o.v.count { o.v[i] = 1 }
        let steps = 200
        for _ in 0..<steps {
            o.update(weights: m.weights, gradients: m.gradients.pointer, gradScale: 1, lr: 1e-3, seed: 1)
        }
        let mean = o.v.values.reduce(0.0) { $0 + Double($1) } / Double(o.v.count)
        XCTAssertEqual(mean, pow(0.999, Double(steps)), accuracy: 1e-3)
    }

    /// BF16 state halves the optimizer's bytes; its first step takes the same codes as FP32
    /// state (both start from zero moments) and stores moments within one BF16 step of
    /// FP32's; later steps do not depend on how ZeRO-1 splits the elements.
    func testBF16StateHalvesMemoryAndIsIndependentOfTheSplit() {
        var quant = QuantConfig()
        quant.mode = .dqt
        quant.bits = 4
        let reference = optimizerTestModel(quant), whole = optimizerTestModel(quant), split = optimizerTestModel(quant)
        var rng = TestRandom(23)
        let g = rng.values(whole.layout.count, scale: 1).map(Float.init)
        for mm in [reference, whole, split] { mm.gradients.pointer.update(from: g, count: g.count) }
        let ledger = MemoryLedger()
        let full = optimizerForTests(whole, .bf16, ledger: ledger)
        XCTAssertEqual(ledger.bytes(.optimizer), 4 * whole.layout.count)
        let fp32 = optimizerForTests(reference, .fp32)

        let codes = { (m: Model) in m.layout.specs.compactMap { m.weights.codes($0.index)?.codes() }.flatMap { $0 } }
        full.update(weights: whole.weights, gradients: whole.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
        fp32.update(
            weights: reference.weights, gradients: reference.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
        XCTAssertEqual(codes(whole), codes(reference))
        for (a, b) in zip(full.m.values + full.v.values, fp32.m.values + fp32.v.values) {
            XCTAssertLessThanOrEqual(abs(a - b), abs(b) / 128, "\(a) vs \(b)")
        }

        let parts = ShardPlan(layout: split.layout, world: 3).ranges.map { optimizerForTests(split, .bf16, range: $0) }
        for p in parts {
            p.update(weights: split.weights, gradients: split.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
        }
        for _ in 0..<3 {
            full.update(weights: whole.weights, gradients: whole.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
            for p in parts {
                p.update(weights: split.weights, gradients: split.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
            }
        }
        func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int? {
            a.count != b.count ? -1 : zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        }
        XCTAssertNil(firstDifference(codes(split), codes(whole)), "codes")
        XCTAssertNil(firstDifference(parts.flatMap { $0.m.values }, full.m.values), "m")
        XCTAssertNil(firstDifference(parts.flatMap { $0.v.values }, full.v.values), "v")
    }
}
