import QKernels
import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainTraining
@testable import QTrainWeights

/// `quant.compute: int8`: oneDNN's integer GEMM is exact, the int8 forward agrees with the FP32
/// path to FP32 rounding, training follows the FP32 path, and a machine that cannot run it
/// falls back with a notice.
final class Int8ComputeTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(
            ProductArithmetic.int8.isAvailable,
            "int8 GEMM unavailable here: \(ProductArithmetic.int8.unavailableReason ?? "")")
    }

    /// Each int32 result equals the integer product summed exactly (Int64), extremes included.
    func testInt8GemmIsExact() throws {
        var rng = SystemRandomNumberGenerator()
        for (M, N, K) in [(1, 1, 1), (7, 13, 40), (33, 65, 127), (64, 96, 768), (5, 1040, 2048)] {
            var a = (0..<(M * K)).map { _ in Int8.random(in: -128...127, using: &rng) }
            let b = (0..<(N * K)).map { _ in Int8.random(in: -128...127, using: &rng) }
            a[0] = -128  // the most negative code, and a row of extremes
            var c = [Int32](repeating: 0, count: M * N)
            XCTAssertEqual(qk_int8_gemm_nt(Int64(M), Int64(N), Int64(K), a, Int64(K), b, Int64(K), &c, Int64(N)), 0)
            var wrong = 0
            for i in 0..<M {
                for j in 0..<N {
                    var s: Int64 = 0
                    for k in 0..<K { s += Int64(a[i * K + k]) * Int64(b[j * K + k]) }
                    if Int64(c[i * N + j]) != s { wrong += 1 }
                }
            }
            XCTAssertEqual(wrong, 0, "M \(M) N \(N) K \(K)")
        }
    }

    /// The decoder's int8 matrix-vector product (VNNI with row sums, and the portable loop) is
    /// exact for every row count and any K, tails included.
    func testInt8GemvIsExact() throws {
        var rng = SystemRandomNumberGenerator()
        for (rows, K) in [(1, 1), (3, 63), (4, 64), (7, 65), (13, 200), (96, 768)] {
            var w = (0..<(rows * K)).map { _ in Int8.random(in: -128...127, using: &rng) }
            var x = (0..<K).map { _ in Int8.random(in: -128...127, using: &rng) }
            w[0] = -128
            x[0] = -128
            var sums = [Int32](repeating: 0, count: rows)
            qk_int8_row_sums(&sums, w, Int64(K), Int64(rows), Int64(K))
            var fast = [Int32](repeating: 0, count: rows), portable = fast
            qk_int8_gemv(&fast, w, Int64(K), x, Int64(rows), Int64(K), sums)
            qk_int8_gemv(&portable, w, Int64(K), x, Int64(rows), Int64(K), nil)
            var exact = [Int32](repeating: 0, count: rows)
            for r in 0..<rows {
                for k in 0..<K { exact[r] += Int32(w[r * K + k]) * Int32(x[k]) }
            }
            XCTAssertEqual(fast, exact, "rows \(rows) K \(K)")
            XCTAssertEqual(portable, exact, "rows \(rows) K \(K)")
        }
    }

    /// The decoder's 2-bit ternary matrix-vector product is exact, padding and tails included.
    func testTernaryGemvIsExact() throws {
        var rng = SystemRandomNumberGenerator()
        for (rows, K) in [(1, 1), (3, 63), (4, 64), (7, 65), (13, 200), (96, 768), (5, 2048)] {
            let blocks = (K + 63) / 64, rowBytes = 16 * blocks
            let codes = (0..<(rows * K)).map { _ in Int8.random(in: -1...1, using: &rng) }
            var x = (0..<(blocks * 64)).map { $0 < K ? Int8.random(in: -128...127, using: &rng) : 0 }
            x[0] = -128
            var packed = [UInt8](repeating: 0xFF, count: rows * rowBytes)
            packed.withUnsafeMutableBufferPointer { out in
                codes.withUnsafeBufferPointer { c in
                    for r in 0..<rows {
                        qk_ternary_pack2(out.baseAddress! + r * rowBytes, c.baseAddress! + r * K, Int64(K))
                    }
                }
            }
            var y = [Int32](repeating: 0, count: rows)
            qk_ternary_gemv2(&y, packed, Int64(rowBytes), x, Int64(rows), Int64(K))
            var exact = [Int32](repeating: 0, count: rows)
            for r in 0..<rows {
                for k in 0..<K { exact[r] += Int32(codes[r * K + k]) * Int32(x[k]) }
            }
            XCTAssertEqual(y, exact, "rows \(rows) K \(K)")
        }
    }

    static func quant(_ mode: QuantMode, bits: Double? = nil, compute: ComputePath = .fp32) -> QuantConfig {
        var q = QuantConfig()
        q.mode = mode
        q.bits = bits
        q.compute = compute
        return q
    }

    /// Every quantised layer's int8 product against the FP32 path's on the same inputs, in a
    /// real forward pass (tiny and small shapes; ternary and 8-bit DQT, BitNet): max |Δ| /
    /// max |out| < 1e-5 per layer. End to end, tiny's logits agree to 1e-4 relative; small's loss
    /// to 1e-3 (at d = 256 an FP32-rounding difference can move an activation across an int8
    /// rounding boundary, which changes that code by one step: both paths are right).
    func testInt8ForwardMatchesFP32() throws {
        for file in ["configs/tiny.yaml", "configs/small.yaml"] {
            var config = try RunConfig.load(path: repositoryFile(file)).model
            config.seqLen = min(config.seqLen, 64)
            for (mode, bits) in [(QuantMode.dqt, nil), (.dqt, 8.0), (.bitnet, nil)] as [(QuantMode, Double?)] {
                let label = "\(file) \(mode) \(bits ?? 1.58)"
                let quant = Self.quant(mode, bits: bits, compute: .int8)
                let probe = ComparingBackend(
                    Int8Matmul(maxRows: config.seqLen, maxInner: max(config.dim, config.hiddenDim), ledger: nil))
                let compared = Model(config: config, quant: quant, batch: 1, ledger: nil, backend: probe)
                let fast = Model(config: config, quant: quant, batch: 1, ledger: nil)
                let plain = Model(config: config, quant: Self.quant(mode, bits: bits), batch: 1, ledger: nil)
                XCTAssertTrue(fast.backend is Int8Matmul)
                for m in [compared, fast, plain] { m.weights.initialize(seed: 11, std: Float(config.initStd)) }
                let tokens = (0..<config.seqLen).map { Int32(($0 * 37 + 5) % config.vocabSize) }
                _ = try compared.logits(tokens: tokens)
                XCTAssertEqual(probe.calls, 4 * config.nLayers + 1, label)
                XCTAssertLessThan(probe.worst, 1e-5, label)
                XCTAssertGreaterThan(probe.worst, 0, "\(label): the int8 path ran (its rounding differs from FP32's)")
                if file.contains("tiny") {
                    let a = try fast.logits(tokens: tokens), b = try plain.logits(tokens: tokens)
                    XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()! / b.map { abs($0) }.max()!, 1e-4, label)
                } else {
                    let a = try fast.loss(tokens: tokens, targets: tokens, batch: 1, length: tokens.count)
                    let b = try plain.loss(tokens: tokens, targets: tokens, batch: 1, length: tokens.count)
                    XCTAssertEqual(a, b, accuracy: 1e-3 * b, label)
                }
            }
        }
    }

    /// Training tiny ternary and 8-bit DQT with int8 forward follows the FP32 path.
    func testInt8TrainingFollowsFP32() throws {
        for bits in [nil, 8.0] as [Double?] {
            let dir = temporaryDirectory(self)
            var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
            c.data.dir = try makeSyntheticData(in: dir).path
            c.train.outDir = dir.appendingPathComponent("run").path
            c.model.seqLen = 16
            c.quant = Self.quant(.dqt, bits: bits)
            let plain = try Trainer(config: c)
            c.quant.compute = .int8
            let fast = try Trainer(config: c)
            for s in 0..<8 {
                let a = try plain.trainStep().loss, b = try fast.trainStep().loss
                XCTAssertEqual(a, b, accuracy: 2e-3 * a, "bits \(bits ?? 1.58) step \(s)")
            }
        }
    }

    /// With the library forced off, int8 runs as fp32 and says so in one line.
    func testFallbackToFP32IsAnnounced() throws {
        let r = try assertFallbackAnnounced("int8")
        XCTAssertTrue(r.stdout.contains("compute fp32 (OpenBLAS)"), r.stdout)
    }
}

/// Runs a backend's forward and the FP32 path's on the same operands and records the worst
/// relative difference of their outputs (the backend's result is the one kept).
final class ComparingBackend: MatmulBackend {
    let tested: MatmulBackend
    let fp32 = FP32Matmul<Gemm>(name: "fp32")
    var name: String { "comparing " + tested.name }
    var needs: BackendNeeds { tested.needs }
    var worst = 0.0, calls = 0

    init(_ tested: MatmulBackend) { self.tested = tested }

    func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) {
        let n = M * weights.rows
        let reference = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { reference.deallocate() }
        reference.update(from: out, count: n)
        fp32.forward(out: reference, input: input, rows: M, weights: weights, accumulate: accumulate)
        tested.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate)
        var diff: Float = 0, scale: Float = 0
        for i in 0..<n {
            diff = max(diff, abs(out[i] - reference[i]))
            scale = max(scale, abs(reference[i]))
        }
        worst = max(worst, Double(diff / scale))
        calls += 1
    }

    func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        try tested.backward(
            dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights,
            accumulate: accumulate)
    }
}
