import XCTest

@testable import QTrainBench
@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainDist
@testable import QTrainModel
@testable import QTrainTraining
@testable import QTrainWeights

/// The seams of the architecture are real: a second matmul backend trains through them, bench
/// times the step that training runs, and every storage kind serialises, slices and
/// fingerprints itself.
final class SeamTests: XCTestCase {
    func tinyConfig(_ dir: URL, _ quant: QuantConfig = QuantConfig()) throws -> RunConfig {
        var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
        c.data.dir = try makeSyntheticData(in: dir).path
        c.train.outDir = dir.appendingPathComponent("run").path
        c.model.seqLen = 16
        c.train.steps = 6
        c.train.evalEvery = 0
        c.log.progress = .lines
        c.quant = quant
        return c
    }

    // The FP32 path: these tests compare backends against OpenBLAS's.
    static var dqtTernary: QuantConfig {
        var q = QuantConfig()
        q.mode = .dqt
        q.compute = .fp32
        return q
    }

    static var bitnet: QuantConfig {
        var q = QuantConfig()
        q.mode = .bitnet
        q.compute = .fp32
        return q
    }

    /// `quant.compute: reference` routes every linear layer through the textbook GEMM; its
    /// training losses match OpenBLAS's to 1e-5 under fp32 and 1e-4 under ternary DQT (whose
    /// stochastic rounding turns an FP32-rounding difference of the gradient into a code that
    /// lands one step away now and then, and that difference carries on).
    func testReferenceBackendTrainsLikeOpenBLAS() throws {
        for quant in [QuantConfig(), Self.dqtTernary] {
            let dir = temporaryDirectory(self)
            var c = try tinyConfig(dir, quant)
            let blas = try Trainer(config: c)
            c.quant.compute = .reference
            let reference = try Trainer(config: c)
            XCTAssertTrue(reference.model.backend is FP32Matmul<ReferenceGemm>)
            XCTAssertTrue(blas.model.backend is FP32Matmul<Gemm>)
            for s in 0..<5 {
                let a = try blas.trainStep().loss, b = try reference.trainStep().loss
                XCTAssertEqual(a, b, accuracy: (quant.mode == .dqt ? 1e-4 : 1e-5) * abs(a), "\(quant.label) step \(s)")
            }
        }
    }

    /// A checkpoint does not depend on the backend that computed it: a run resumes under another.
    func testComputePathDoesNotBindTheCheckpoint() throws {
        let dir = temporaryDirectory(self)
        var c = try tinyConfig(dir, Self.dqtTernary)
        c.train.steps = 2
        _ = try Trainer(config: c).run()
        c.quant.compute = .reference
        c.train.steps = 3
        c.checkpoint.resume = true
        let t = try Trainer(config: c)
        XCTAssertTrue(try t.resume())
        XCTAssertEqual(t.step, 2)
    }

    /// bench times exactly the step train runs: on the same batches, the same losses, bit for
    /// bit, with and without gradient accumulation.
    func testBenchRunsTheTrainingStep() throws {
        for accum in [1, 2] {
            let dir = temporaryDirectory(self)
            var c = try tinyConfig(dir, Self.dqtTernary)
            c.train.gradAccum = accum
            let trainer = try Trainer(config: c)
            let batches = DatasetBatches(
                trainer.trainData, sampler: BatchSampler(seed: UInt64(c.train.seed)), rank: 0, world: 1)
            let bench = try BenchSession(config: c, comm: SingleProcessCommunicator(), batches: batches)
            for s in 0..<4 {
                let trained = try trainer.trainStep().loss
                let benched = try bench.step().1
                XCTAssertEqual(trained, benched, "grad_accum \(accum), step \(s)")
            }
            XCTAssertEqual(
                ReplicaCheck.fingerprint(trainer.model.weights), ReplicaCheck.fingerprint(bench.model.weights))
        }
    }

    /// `bench --set train.grad_accum=2` times steps of twice the tokens.
    func testBenchCountsAccumulatedTokens() throws {
        var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
        let one = try Benchmark.run(config: c, steps: 1, warmup: 0, log: { _ in })
        c.train.gradAccum = 2
        let two = try Benchmark.run(config: c, steps: 1, warmup: 0, log: { _ in })
        XCTAssertEqual(two.tokensPerStep, 2 * one.tokensPerStep)
        XCTAssertEqual(two.gradAccum, 2)
    }

    /// A backend that asks for the activation codes gets them, exact: values == codes × row scale.
    func testActivationCodesReachABackendThatAsks() throws {
        for quant in [Self.dqtTernary, Self.bitnet] {
            let config = try RunConfig.load(path: repositoryFile("configs/tiny.yaml")).model
            let probe = CodeProbe()
            let model = Model(config: config, quant: quant, batch: 2, ledger: nil, backend: probe)
            model.weights.initialize(seed: 3, std: 0.05)
            let plain = Model(config: config, quant: quant, batch: 2, ledger: nil)
            plain.weights.initialize(seed: 3, std: 0.05)
            let T = config.seqLen
            let tokens = (0..<(2 * T)).map { Int32($0 * 7 % config.vocabSize) }
            let a = try model.forwardBackward(tokens: tokens, targets: tokens, batch: 2, length: T)
            let b = try plain.forwardBackward(tokens: tokens, targets: tokens, batch: 2, length: T)
            XCTAssertEqual(a, b, "the probe computes what the default backend computes")
            XCTAssertEqual(probe.forwards, 4 * config.nLayers + 1, "q|k|v, o, gate|up, down per block, and the head")
            XCTAssertEqual(probe.mismatches, 0)
            XCTAssertGreaterThan(probe.nonZeroCodes, 0)
        }
    }

    /// Every storage kind: values, safetensors round trip, slices of its bytes, fingerprints.
    func testEveryStorageKindSerialisesSlicesAndFingerprintsItself() throws {
        let spec = ParameterSpec(name: "w", shape: [7, 30], role: .mlp, layer: 0, offset: 0, index: 3)
        let f32 = AlignedBuffer<Float>(count: spec.count, category: .weights, ledger: nil)
        let b16 = AlignedBuffer<UInt16>(count: spec.count, category: .weights, ledger: nil)
        let kinds: [TensorStorage] = [
            FP32Storage(pointer: f32.pointer, count: spec.count), BF16Storage(pointer: b16.pointer, count: spec.count),
            QuantizedTensor(grid: .ternary, count: spec.count, ledger: nil),
            QuantizedTensor(grid: try QuantGrid(bits: 4), count: spec.count, ledger: nil)
        ]
        let dir = temporaryDirectory(self)
        for s in kinds {
            s.initializeNormal(RandomStream(seed: 5, purpose: .initialisation, tensor: 3, step: 0), std: 0.1)
            var values = [Float](repeating: 0, count: spec.count)
            s.readValues(from: 0, count: spec.count, into: &values)
            XCTAssertEqual(s.absSum(), values.reduce(0.0) { $0 + Double(abs($1)) }, accuracy: 1e-4)
            XCTAssertGreaterThan(Set(values).count, 2)
            // Round trip through a file.
            var writer = SafetensorsWriter()
            s.write(spec, to: &writer)
            let url = dir.appendingPathComponent("t.safetensors")
            try writer.write(to: url)
            let before = s.fingerprint(seed: 1)
            s.perturb()
            XCTAssertNotEqual(s.fingerprint(seed: 1), before, "\(type(of: s)) perturb")
            try s.read(spec, from: SafetensorsFile(url: url))
            XCTAssertEqual(s.fingerprint(seed: 1), before, "\(type(of: s)) round trip")
            // Slices at multiples of 40 tile the payload.
            let parts = [0..<80, 80..<200, 200..<210]
            let counts = s.payloadByteCounts(of: parts)
            XCTAssertEqual(counts.reduce(0, +), s.payload.count, "\(type(of: s))")
            XCTAssertEqual(s.payloadBytes(of: 80..<200).lowerBound, counts[0])
        }
    }
}

/// A test backend that computes as the default one and checks the activation codes it asks for.
final class CodeProbe: MatmulBackend {
    let inner = FP32Matmul<Gemm>(name: "probe")
    var name: String { "code probe" }
    var needs: BackendNeeds {
        var n = FP32Matmul<Gemm>.needs
        n.activationCodes = true
        return n
    }
    var forwards = 0, mismatches = 0, nonZeroCodes = 0

    func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) {
        forwards += 1
        if let codes = input.codes, let scales = input.rowScales {
            for r in 0..<M {
                for c in 0..<weights.cols {
                    let i = r * weights.cols + c
                    if Float(codes[i]) * scales[r] != input.values[i] { mismatches += 1 }
                    if codes[i] != 0 { nonZeroCodes += 1 }
                }
            }
        } else {
            mismatches += 1
        }
        inner.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate)
    }

    func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        try inner.backward(
            dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights,
            accumulate: accumulate)
    }
}
