import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainOptim
@testable import QTrainTraining
@testable import QTrainWeights

/// The weight policies inside the model: BitLinear's straight-through gradients, the
/// quantised-weight GEMM path, training that keeps codes on the grid, and memory.
final class QuantTrainingTests: XCTestCase {
    override func setUp() { Threads.configure(2) }

    func quant(_ mode: QuantMode, bits: Double? = nil) -> QuantConfig {
        var q = QuantConfig()
        q.mode = mode
        q.bits = bits
        return q
    }

    /// BitLinear: y = Q8(x) · Wᵀ with W = codes/scale; dW = dYᵀ · Q8(x) and, through the
    /// straight-through estimator, dX = dY · W. Checked against finite differences.
    func testBitLinearGradientWithActivationSTE() throws {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim, c.seqLen) = (20, 12, 1, 2, 24, 4)
        var q = quant(.dqt, bits: 8)
        q.compute = .fp32  // the FP32 path; BF16BackwardTests bounds int8-bf16 against it
        let model = Model(config: c, quant: q, batch: 1, ledger: nil)
        model.weights.initialize(seed: 2, std: 0.3)
        let blk = model.layout.blocks[0]
        let matrix = StackedMatrix([blk.gate, blk.up], layout: model.layout)
        let M = 6, K = c.dim, N = matrix.rows
        var rng = TestRandom(31)
        let x = rng.values(M * K).map { Double(Float($0)) }, r = rng.values(M * N)
        // FP32 values of the coded weights, as the forward pass sees them.
        var w = [Float](repeating: 0, count: N * K)
        w.withUnsafeMutableBufferPointer { model.weights.materialize(matrix, rows: 0..<N, into: $0.baseAddress!) }
        let wd = w.map(Double.init)
        // Reference int8 absmax fake-quantisation of each row of x.
        func q8(_ x: [Double]) -> [Double] {
            var out = x
            for i in 0..<M {
                let amax = (0..<K).map { abs(x[i * K + $0]) }.max()!
                for k in 0..<K {
                    out[i * K + k] =
                        min(max((x[i * K + k] * 127 / amax).rounded(.toNearestOrEven), -128), 127) * amax / 127
                }
            }
            return out
        }
        let xb = aligned(x)
        model.quantizesActivations = true
        ActivationQuantizer.apply(xb.pointer, rows: M, cols: K)
        let xq = q8(x)
        XCTAssertLessThan(relativeError(doubles(xb.pointer, M * K), xq), 1e-6)
        let out = aligned([Double](repeating: 0, count: M * N))
        Linear.forward(
            out: out.pointer, input: LinearInput(values: xb.pointer), rows: M, weights: model.linearWeights(matrix),
            backend: model.backend)
        XCTAssertLessThan(relativeError(doubles(out.pointer, M * N), Ref.linear(xq, wd[...], M: M, K: K, N: N)), 1e-6)
        model.zeroGradients()
        let dx = aligned([Double](repeating: 0, count: M * K)), rb = aligned(r)
        try Linear.backward(
            dInput: dx.pointer, gradients: model.gradients, dOut: rb.pointer, input: LinearInput(values: xb.pointer),
            rows: M,
            weights: model.linearWeights(matrix), backend: model.backend)
        func dot(_ y: [Double]) -> Double { zip(y, r).reduce(0) { $0 + $1.0 * $1.1 } }
        // dW: the quantised input does not depend on W, so this is the true gradient.
        let fdW = finiteDifferences(wd, at: Array(0..<wd.count)) { dot(Ref.linear(xq, $0[...], M: M, K: K, N: N)) }
        let off = model.layout.specs[blk.gate].offset
        XCTAssertLessThan(relativeError(doubles(model.gradients.pointer + off, N * K), fdW), 1e-4, "weight gradient")
        // dX: the STE treats the quantiser as the identity.
        let fdX = finiteDifferences(x, at: Array(0..<x.count)) { dot(Ref.linear($0, wd[...], M: M, K: K, N: N)) }
        XCTAssertLessThan(relativeError(doubles(dx.pointer, M * K), fdX), 1e-4, "input gradient (STE)")
    }

    /// With activation quantisation off, a DQT model computes exactly what an FP32 model holding
    /// the dequantised weights computes: the block-wise dequantisation (the LM head here spans
    /// several blocks) changes nothing in loss or gradients.
    func testQuantisedWeightPathMatchesDenseModel() throws {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim, c.seqLen) = (300, 16, 2, 2, 32, 6)
        for q in [quant(.dqt, bits: 1.58), quant(.dqt, bits: 5), quant(.bitnet)] {
            let qm = Model(config: c, quant: q, batch: 2, ledger: nil)
            qm.weights.initialize(seed: 4, std: 0.1)
            qm.quantizesActivations = false
            XCTAssertGreaterThan(c.vocabSize * c.dim, qm.scratch.weights.count, "the head must need several blocks")
            let dense = Model(config: c, quant: QuantConfig(), batch: 2, ledger: nil)
            for spec in qm.layout.specs {
                qm.weights.writeValues(
                    of: spec.index, from: 0, count: spec.count, into: dense.weights.densePointer(spec.index))
            }
            var rng = TestRandom(32)
            let tokens = rng.tokens(12, below: 300), targets = rng.tokens(12, below: 300)
            func run(_ m: Model) throws -> Double {
                m.zeroGradients()
                return try tokens.withUnsafeBufferPointer { t in
                    try targets.withUnsafeBufferPointer { g in
                        try m.forwardBackward(tokens: t.baseAddress!, targets: g.baseAddress!, batch: 2, length: 6)
                    }
                }
            }
            XCTAssertEqual(try run(qm), try run(dense), accuracy: 1e-6)
            XCTAssertLessThan(
                relativeError(
                    doubles(qm.gradients.pointer, qm.layout.count),
                    doubles(dense.gradients.pointer, dense.layout.count)), 1e-6, q.label)
        }
    }

    func makeTrainer(_ dir: URL, _ q: QuantConfig, steps: Int) throws -> Trainer {
        var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
        c.data.dir = try makeSyntheticData(in: dir).path
        c.train.outDir = dir.appendingPathComponent("run").path
        c.model.seqLen = 16
        c.train.steps = steps
        c.train.evalEvery = 0
        c.log.progress = .lines
        c.quant = q
        return try Trainer(config: c)
    }

    /// A ternary DQT run learns, changes codes, and its codes never leave {-1, 0, 1}.
    func testTernaryTrainingStaysOnTheGrid() throws {
        let dir = temporaryDirectory(self)
        let trainer = try makeTrainer(dir, quant(.dqt, bits: 1.58), steps: 40)
        let before = trainer.model.layout.specs.compactMap { trainer.model.weights.codes($0.index)?.codes() }
        let summary = try trainer.run()
        XCTAssertLessThan(summary.finalValLoss!, summary.firstValLoss! - 0.5)
        let after = trainer.model.layout.specs.compactMap { trainer.model.weights.codes($0.index)?.codes() }
        XCTAssertEqual(after.count, trainer.model.layout.specs.filter { $0.role.isMatrix }.count)
        XCTAssertTrue(after.allSatisfy { $0.allSatisfy { $0 >= -1 && $0 <= 1 } })
        XCTAssertNotEqual(before, after)
        let metrics = try String(
            contentsOf: trainer.runDirectory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let last =
            try JSONSerialization.jsonObject(with: Data(metrics.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertNotNil(last["code_change"] as? Double)
        let byRole = try XCTUnwrap(last["code_change_by_role"] as? [String: Double])
        XCTAssertEqual(Set(byRole.keys), ["embedding", "attention", "mlp", "head"])
    }

    /// The authors' rescale rule keeps the scale while the largest code is qp and raises it
    /// (shrinks the range) otherwise; bitnet with BF16 latent weights trains.
    func testRescaleRuleAndBF16Latent() throws {
        var q = quant(.dqt, bits: 4)
        q.scale = .rescale
        let dir = temporaryDirectory(self)
        let trainer = try makeTrainer(dir, q, steps: 3)
        let w = trainer.model.weights, p = trainer.model.layout.blocks[0].o
        let t = w.codes(p)!
        t.setCodes { Int8($0 % 5 - 2) }  // largest code 2 < qp = 7
        let s0 = t.scale
        _ = try trainer.trainStep()
        XCTAssertEqual(t.scale, s0 * 7 / 2, accuracy: s0 * 1e-5)
        XCTAssertTrue(t.codes().allSatisfy { $0 >= -8 && $0 <= 7 })

        var b = quant(.bitnet)
        b.latentDtype = .bf16
        let bt = try makeTrainer(temporaryDirectory(self), b, steps: 30)
        XCTAssertEqual(
            bt.ledger.bytes(.weights),
            2 * bt.model.layout.specs.filter { $0.role.isMatrix }.reduce(0) { $0 + $1.count }
                + 4 * bt.model.layout.specs.filter { !$0.role.isMatrix }.reduce(0) { $0 + $1.count })
        let summary = try bt.run()
        XCTAssertLessThan(summary.finalValLoss!, summary.firstValLoss! - 0.5)
    }

    func testModeSpecificOptionsAreRejected() {
        for (yaml, key) in [
            ("quant:\n  mode: bitnet\n  bits: 8\n", "quant.bits"),
            ("quant:\n  mode: fp32\n  scale: rescale\n", "quant.scale"),
            ("quant:\n  mode: dqt\n  latent_dtype: bf16\n", "quant.latent_dtype"),
            ("quant:\n  mode: dqt\n  bits: 9\n", "quant.bits"),
            ("quant:\n  mode: dqt\n  scope: everything\n", "quant.scope"),
            ("quant:\n  mode: dqt\n  scale: absmax\n", "quant.scale"), ("quant:\n  mode: DQT\n", "quant.mode")
        ] {
            let url = temporaryDirectory(self).appendingPathComponent("c.yaml")
            try! yaml.write(to: url, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try RunConfig.load(path: url.path), yaml) {
                XCTAssertTrue("\($0)".contains(key), "\($0)")
                XCTAssertEqual(($0 as? QTrainError)?.kind, .config)
            }
        }
    }

    /// DESIGN.md's table, from the real allocations of the 130M model (per rank, before
    /// activations): dqt ternary ≤ 12.5 B/param, bitnet ≥ 16, and the difference is exactly
    /// the latent weights minus the codes.
    func testMemoryPerParameterAt130M() throws {
        var c = try RunConfig.load(path: repositoryFile("configs/130m.yaml")).model
        c.seqLen = 8  // activations are not part of this comparison
        func bytesPerParam(_ q: QuantConfig) -> (Double, Int) {
            let ledger = MemoryLedger()
            let m = Model(config: c, quant: q, batch: 1, ledger: ledger)
            let o = Optimizer(config: OptimConfig(), layout: m.layout, ledger: ledger)
            return withExtendedLifetime(o) {
                (MemoryReport.bytesPerParameter(ledger, parameters: m.layout.count), m.layout.count)
            }
        }
        let (ternary, n) = bytesPerParam(quant(.dqt, bits: 1.58))
        let (bitnet, _) = bytesPerParam(quant(.bitnet))
        let (eight, _) = bytesPerParam(quant(.dqt, bits: 8))
        XCTAssertLessThanOrEqual(ternary, 12.5)
        XCTAssertGreaterThanOrEqual(bitnet, 16)
        let gains = 2 * c.nLayers * c.dim + c.dim
        let matrices = Double(n - gains)
        // Latent FP32 (4 B) minus ternary codes (1.6 bits) over the matrices.
        let expected = matrices * (4 - 0.2) / Double(n)
        XCTAssertEqual(bitnet - ternary, expected, accuracy: 0.01 * expected)
        XCTAssertEqual(bitnet - eight, matrices * 3 / Double(n), accuracy: 0.01 * matrices * 3 / Double(n))
    }
}
