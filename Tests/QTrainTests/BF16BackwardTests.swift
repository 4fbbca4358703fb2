import QKernels
import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainDist
@testable import QTrainModel
@testable import QTrainTraining
@testable import QTrainWeights

/// `quant.compute: int8-bf16`: oneDNN's BF16 matmul against Float64, the gradient rounding
/// kernel, each layer's gradients within the bound the BF16 rounding of dY allows, training
/// that follows the FP32 path, and the fallback when the path cannot run.
final class BF16BackwardTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(
            ProductArithmetic.bf16.isAvailable,
            "bf16 matmul unavailable here: \(ProductArithmetic.bf16.unavailableReason ?? "")")
    }

    static func bf16(_ x: Float) -> UInt16 { UInt16(x.bitPattern >> 16) }
    static func float(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// C = A·B (+ C) for plain and transposed views: products of BF16 values are exact in
    /// FP32, so the only error is FP32 accumulation, ≤ (K + 1) · 2⁻²⁴ · (|C| + Σ|a·b|).
    func testBF16MatmulMatchesFloat64() throws {
        var rng = SystemRandomNumberGenerator()
        for (M, N, K) in [(1, 1, 1), (7, 13, 40), (64, 96, 768), (33, 1040, 200)] {
            for transposedA in [false, true] {
                for accumulate in [false, true] {
                    let a = (0..<(M * K)).map { _ in Self.bf16(Float.random(in: -2...2, using: &rng)) }
                    let b = (0..<(K * N)).map { _ in Self.bf16(Float(Int.random(in: -127...127, using: &rng))) }
                    let c0 = (0..<(M * N)).map { _ in Float.random(in: -1...1, using: &rng) }
                    var c = c0
                    // A is (M, K); stored transposed it is (K, M) row-major: element (i, k) at k·M + i.
                    let aStored: [UInt16], ars: Int64, acs: Int64
                    if transposedA {
                        var t = [UInt16](repeating: 0, count: M * K)
                        for i in 0..<M { for k in 0..<K { t[k * M + i] = a[i * K + k] } }
                        (aStored, ars, acs) = (t, 1, Int64(M))
                    } else {
                        (aStored, ars, acs) = (a, Int64(K), 1)
                    }
                    XCTAssertEqual(
                        qk_bf16_matmul(
                            Int64(M), Int64(N), Int64(K), aStored, ars, acs, b, Int64(N), 1, &c,
                            Int64(N), accumulate ? 1 : 0), 0)
                    var worst = 0.0
                    for i in 0..<M {
                        for j in 0..<N {
                            var s = accumulate ? Double(c0[i * N + j]) : 0,
                                abs = accumulate ? Swift.abs(Double(c0[i * N + j])) : 0
                            for k in 0..<K {
                                let p = Double(Self.float(a[i * K + k])) * Double(Self.float(b[k * N + j]))
                                s += p
                                abs += Swift.abs(p)
                            }
                            let bound = Double(K + 1) * 0x1p-24 * abs + 1e-30
                            worst = max(worst, Swift.abs(Double(c[i * N + j]) - s) / bound)
                        }
                    }
                    XCTAssertLessThanOrEqual(
                        worst, 1, "M \(M) N \(N) K \(K) transposedA \(transposedA) accumulate \(accumulate)")
                }
            }
        }
    }

    /// Nearest rounding is IEEE's (ties to even); stochastic rounding picks one of the two
    /// neighbours, is unbiased, repeats under the same seed, and does not depend on the split.
    func testGradientRounding() throws {
        let n = 4096
        let x = (0..<n).map { i in Float(i - n / 2) * 1.000_123e-3 + 1e-7 * Float(i % 7) }
        var near = [UInt16](repeating: 0, count: n), stoch = near, again = near, split = near
        qk_round_bf16(&near, Int64(n), x, Int64(n), 1, Int64(n), nil, 1, 0, 0, Int64(n), 0)
        var ieee = [UInt16](repeating: 0, count: n)
        qk_f32_to_bf16_array(&ieee, x, Int64(n))
        XCTAssertEqual(near, ieee)
        qk_round_bf16(&stoch, Int64(n), x, Int64(n), 1, Int64(n), nil, 1, 42, 0, Int64(n), 1)
        qk_round_bf16(&again, Int64(n), x, Int64(n), 1, Int64(n), nil, 1, 42, 0, Int64(n), 1)
        XCTAssertEqual(stoch, again)
        // The same elements as 64 rows of 64, rounded row range by row range.
        for r0 in stride(from: 0, to: 64, by: 24) {
            let rows = min(24, 64 - r0)
            split.withUnsafeMutableBufferPointer { out in
                x.withUnsafeBufferPointer { xs in
                    qk_round_bf16(
                        out.baseAddress! + r0 * 64, 64, xs.baseAddress! + r0 * 64, 64, Int64(rows), 64, nil, 1, 42,
                        UInt64(r0 * 64), 64, 1)
                }
            }
        }
        XCTAssertEqual(split, stoch)
        var ups = 0
        for i in 0..<n {
            let lo = x[i].bitPattern >> 16, v = UInt32(stoch[i])
            XCTAssertTrue(v == lo || v == lo + 1, "element \(i)")
            if v != lo { ups += 1 }
        }
        XCTAssertGreaterThan(ups, n / 4)
        XCTAssertLessThan(ups, 3 * n / 4)
        // Unbiased: the mean of many draws of one value converges on it (and not on the nearest).
        let v: Float = 1 + 0x1p-9 * 0.3  // 30% of the way from 1 to the next BF16
        var sum = 0.0
        let draws = 20_000
        let xs = [Float](repeating: v, count: draws)
        var out = [UInt16](repeating: 0, count: draws)
        qk_round_bf16(&out, Int64(draws), xs, Int64(draws), 1, Int64(draws), nil, 1, 7, 0, Int64(draws), 1)
        for o in out { sum += Double(Self.float(o)) }
        XCTAssertEqual(sum / Double(draws), Double(v), accuracy: 0x1p-7 * 4 / Double(draws).squareRoot())
        // Scales multiply first; NaN stays NaN.
        var scaled: UInt16 = 0, nan: UInt16 = 0
        let two: [Float] = [3], rs: [Float] = [0.5]
        qk_round_bf16(&scaled, 1, two, 1, 1, 1, rs, 4, 0, 0, 1, 0)
        XCTAssertEqual(Self.float(scaled), 6)
        qk_round_bf16(&nan, 1, [Float.nan], 1, 1, 1, nil, 1, 0, 0, 1, 1)
        XCTAssertTrue(Self.float(nan).isNaN)
    }

    /// In real backward passes (tiny and small shapes; ternary and 8-bit DQT, BitNet; nearest
    /// and stochastic), every element of dX and dW is within u · (|dY|·|W|) resp.
    /// u · (|dY|ᵀ·|X|) of the Float64 product of the same operands, where u bounds the
    /// relative error of rounding dY to BF16 (2⁻⁸ to nearest, 2⁻⁷ stochastically) — plus the
    /// FP32 accumulation's share — and the bound is used (the path does round).
    func testBackwardGradientsWithinBF16Bound() throws {
        for file in ["configs/tiny.yaml", "configs/small.yaml"] {
            var config = try RunConfig.load(path: repositoryFile(file)).model
            config.seqLen = min(config.seqLen, 32)
            for (mode, bits) in [(QuantMode.dqt, nil), (.dqt, 8.0), (.bitnet, nil)] as [(QuantMode, Double?)] {
                for rounding in BackwardRounding.allCases {
                    let label = "\(file) \(mode) \(bits ?? 1.58) \(rounding)"
                    var quant = Int8ComputeTests.quant(mode, bits: bits, compute: .int8BF16)
                    quant.backwardRounding = rounding
                    let tested = Int8Matmul(
                        maxRows: config.seqLen, maxInner: max(config.dim, config.hiddenDim),
                        inputGradient: .bf16, weightGradient: .bf16, rounding: rounding, ledger: nil)
                    let probe = BackwardProbe(tested, u: rounding == .nearest ? 0x1p-8 : 0x1p-7)
                    let model = Model(config: config, quant: quant, batch: 1, ledger: nil, backend: probe)
                    model.weights.initialize(seed: 5, std: Float(config.initStd))
                    let tokens = (0..<config.seqLen).map { Int32(($0 * 31 + 3) % config.vocabSize) }
                    model.backwardSeed = 99
                    _ = try model.forwardBackward(
                        tokens: tokens, targets: tokens.reversed(), batch: 1, length: tokens.count)
                    XCTAssertEqual(probe.calls, 4 * config.nLayers + 1, label)
                    XCTAssertLessThanOrEqual(probe.worst, 1, label)
                    XCTAssertGreaterThan(probe.worstUse, 1e-3, "\(label): the gradient was rounded to BF16")
                }
            }
        }
    }

    /// Training tiny ternary and 8-bit DQT with int8-bf16 follows the FP32 path, and two runs
    /// with the same seed are bit-identical.
    func testInt8BF16TrainingFollowsFP32() throws {
        for bits in [nil, 8.0] as [Double?] {
            let fast = try assertTrainingFollows(
                self, mode: .dqt, bits: bits, reference: .fp32, tested: .int8BF16, tolerance: 5e-3)
            XCTAssertEqual(fast.model.backend.needs.inputGradient, .bf16)
            XCTAssertEqual(fast.model.backend.needs.weightGradient, .bf16)
        }
    }

    /// With the library forced off, int8-bf16 runs as fp32 and says so in one line; `auto` says what it chose.
    func testFallbackIsAnnounced() throws {
        try assertFallbackAnnounced("int8-bf16")
        let auto = try QTrainBinary.run([
            "bench", "--config", repositoryFile("configs/tiny.yaml"), "--set", "quant.mode=dqt",
            "--set", "quant.compute=auto", "--steps", "1", "--warmup", "0"
        ])
        XCTAssertEqual(auto.status, 0, auto.stderr)
        if ProductArithmetic.bf16OutpacesFP32 {
            XCTAssertTrue(auto.stdout.contains("compute auto: int8 forward, bf16 backward"), auto.stdout)
            XCTAssertTrue(auto.stdout.contains("bf16 peak"), auto.stdout)
        } else {
            XCTAssertTrue(
                auto.stdout.contains(
                    "compute auto: int8 forward, fp32 backward (AVX-512 VNNI through oneDNN; bf16 products are no faster than fp32 on this CPU)"
                ), auto.stdout)
        }
    }
}

/// Runs a backend's backward and checks every gradient element against the Float64 product
/// of the same operands: |Δ| ≤ (u + 2⁻²⁰) · Σ|terms|, or for dX with `int8InputGradient` the
/// bound of rounding dY to int8 per row and stacked part, Σ_parts share · s_part · Σ_n |W[n, k]|
/// (share 1 stochastically, ½ to nearest; s the row's int8 step over the part's columns) plus
/// 2⁻²⁰ · Σ|terms|. `worst` is the largest |Δ| / bound; `worstUse` the largest |Δ| / the
/// rounding's share of the bound (of dX when int8, else of both), which shows the rounding happened.
final class BackwardProbe: MatmulBackend {
    let tested: MatmulBackend
    let u: Double
    let int8InputGradient: BackwardRounding?
    var name: String { "probing " + tested.name }
    var needs: BackendNeeds { tested.needs }
    var worst = 0.0, worstUse = 0.0, calls = 0

    init(_ tested: MatmulBackend, u: Double, int8InputGradient: BackwardRounding? = nil) {
        self.tested = tested
        self.u = u
        self.int8InputGradient = int8InputGradient
    }

    func beginBackward(seed: UInt64) { tested.beginBackward(seed: seed) }

    func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) {
        tested.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate)
    }

    func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        guard let dWeight = dWeight.directPointer else { fatalError("the probe reads FP32 gradients written in place") }
        let N = weights.rows, K = weights.cols
        var w = [Float](repeating: 0, count: N * K)
        weights.forEachRowBlock { r0, n, rows in
            for i in 0..<(n * K) { w[r0 * K + i] = rows[i] }
        }
        let dW0 = Array(UnsafeBufferPointer(start: dWeight, count: N * K))
        let dX0 = Array(UnsafeBufferPointer(start: dInput, count: M * K))
        tested.backward(
            dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights,
            accumulate: accumulate)
        let x = input.values
        let slack = 0x1p-20
        // |Δ| against the rounding's share of the bound and the FP32 slack on Σ|terms|.
        func note(_ diff: Double, rounding: Double, terms a: Double, counts: Bool = true) {
            worst = max(worst, diff / (rounding * (1 + 1e-5) + slack * a + 1e-30))
            if counts && rounding > 0 { worstUse = max(worstUse, diff / rounding) }
        }
        let parts = weights.parts.map(\.rows), share = int8InputGradient == .nearest ? 0.5 : 1.0
        for t in 0..<M {
            let steps = parts.map { p in p.map { Double(abs(dOut[t * N + $0])) }.max()! / 127 }
            for i in 0..<K {
                var s = accumulate ? Double(dX0[t * K + i]) : 0, a = 0.0, int8Bound = 0.0
                for (j, p) in parts.enumerated() {
                    var column = 0.0
                    for o in p {
                        let term = Double(dOut[t * N + o]) * Double(w[o * K + i])
                        s += term
                        a += abs(term)
                        column += abs(Double(w[o * K + i]))
                    }
                    int8Bound += share * steps[j] * column
                }
                let diff = abs(Double(dInput[t * K + i]) - s)
                note(diff, rounding: int8InputGradient != nil ? int8Bound : u * a, terms: a)
            }
        }
        for o in 0..<N {
            for i in 0..<K {
                var s = Double(dW0[o * K + i]), a = 0.0
                for t in 0..<M {
                    let p = Double(dOut[t * N + o]) * Double(x[t * K + i])
                    s += p
                    a += abs(p)
                }
                note(abs(Double(dWeight[o * K + i]) - s), rounding: u * a, terms: a, counts: int8InputGradient == nil)
            }
        }
        calls += 1
    }
}
