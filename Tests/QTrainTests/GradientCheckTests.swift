import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainWeights

/// Hand-written backward passes against central finite differences of an independent Float64
/// forward (Support/ReferenceModel.swift): relative error below 1e-4 on every parameter
/// tensor and on the input.
final class GradientCheckTests: XCTestCase {
    override func setUp() { Threads.configure(2) }

    /// Values already rounded to Float32, so both sides see the same inputs.
    func floatRounded(_ v: [Double]) -> [Double] { v.map { Double(Float($0)) } }

    func testRMSNorm() {
        var rng = TestRandom(1)
        let rows = 70, C = 12, eps = 1e-5
        let x = floatRounded(rng.values(rows * C)), w = floatRounded(rng.values(C).map { 1 + 0.3 * $0 })
        let r = rng.values(rows * C)
        let xb = aligned(x), wb = aligned(w), rb = aligned(r)
        let out = aligned([Double](repeating: 0, count: rows * C)), rstd = aligned([Double](repeating: 0, count: rows))
        RMSNorm.forward(
            out: out.pointer, rstd: rstd.pointer, input: xb.pointer, weight: wb.pointer, rows: rows, C: C,
            eps: Float(eps))
        XCTAssertLessThan(
            relativeError(doubles(out.pointer, rows * C), Ref.rmsnorm(x, w[...], rows: rows, C: C, eps: eps)), 1e-6)
        let dx = aligned([Double](repeating: 0, count: rows * C)), dw = aligned([Double](repeating: 0, count: C))
        let partials = aligned([Double](repeating: 0, count: RMSNorm.partialCount(rows: rows) * C))
        RMSNorm.backward(
            dInput: dx.pointer, dWeight: dw.pointer, dOut: rb.pointer, input: xb.pointer, weight: wb.pointer,
            rstd: rstd.pointer, rows: rows, C: C, partials: partials.pointer)
        func f(_ x: [Double], _ w: [Double]) -> Double {
            zip(Ref.rmsnorm(x, w[...], rows: rows, C: C, eps: eps), r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let fdX = finiteDifferences(x, at: Array(0..<x.count)) { f($0, w) }
        let fdW = finiteDifferences(w, at: Array(0..<C)) { f(x, $0) }
        XCTAssertLessThan(relativeError(doubles(dx.pointer, rows * C), fdX), 1e-4, "RMSNorm input gradient")
        XCTAssertLessThan(relativeError(doubles(dw.pointer, C), fdW), 1e-4, "RMSNorm weight gradient")
    }

    func testAttentionWithRoPE() {
        // One block of queries, and several blocks with a partial last one; multi-head, then
        // grouped-query attention (2 query heads per key/value head), then one shared head.
        for (blockRows, G) in [(64, 4), (3, 4), (64, 2), (3, 2), (3, 1)] {
            var rng = TestRandom(2)
            let B = 2, T = 7, C = 16, H = 4, N = B * T, theta = 10_000.0, W = C + 2 * G * (C / H)
            let qkv = floatRounded(rng.values(N * W)), r = rng.values(N * C)
            let rope = RoPE(T: T, headDim: C / H, theta: theta, ledger: nil)
            let buf = aligned(qkv), out = aligned([Double](repeating: 0, count: N * C))
            let probs = aligned([Double](repeating: 0, count: B * H * T * T))
            rope.apply(buf.pointer, ld: W, rows: N, seqLen: T, heads: H + G, inverse: false)
            Attention.forward(
                out: out.pointer, probs: probs.pointer, qkv: buf.pointer, B: B, T: T, C: C, H: H, G: G,
                blockRows: blockRows)
            XCTAssertLessThan(
                relativeError(
                    doubles(out.pointer, N * C), Ref.attention(qkv, B: B, T: T, C: C, H: H, G: G, theta: theta)),
                1e-5)
            // Scratch that holds garbage, as it does between layers.
            let dqkv = aligned([Double](repeating: 7, count: N * W)), rb = aligned(r)
            let slots = 2
            let dScores = aligned([Double](repeating: 5, count: slots * T * T))
            Attention.backward(
                dqkv: dqkv.pointer, dOut: rb.pointer, qkv: buf.pointer, probs: probs.pointer, B: B, T: T, C: C, H: H,
                G: G, dScores: dScores.pointer, slots: slots, blockRows: blockRows)
            rope.apply(dqkv.pointer, ld: W, rows: N, seqLen: T, heads: H + G, inverse: true)
            let fd = finiteDifferences(qkv, at: Array(0..<qkv.count)) { x in
                zip(Ref.attention(x, B: B, T: T, C: C, H: H, G: G, theta: theta), r).reduce(0) { $0 + $1.0 * $1.1 }
            }
            XCTAssertLessThan(
                relativeError(doubles(dqkv.pointer, N * W), fd), 1e-4,
                "attention q/k/v gradient, blocks of \(blockRows), \(G) key/value heads")
        }
    }

    func testSwiGLU() {
        var rng = TestRandom(3)
        let rows = 9, F = 20
        let h = floatRounded(rng.values(rows * 2 * F, scale: 3)), r = rng.values(rows * F)
        let hb = aligned(h), out = aligned([Double](repeating: 0, count: rows * F))
        SwiGLU.forward(out: out.pointer, h: hb.pointer, rows: rows, F: F)
        XCTAssertLessThan(relativeError(doubles(out.pointer, rows * F), Ref.swiglu(h, rows: rows, F: F)), 1e-6)
        let dh = aligned([Double](repeating: 0, count: rows * 2 * F)), rb = aligned(r)
        SwiGLU.backward(dh: dh.pointer, dOut: rb.pointer, h: hb.pointer, rows: rows, F: F)
        let fd = finiteDifferences(h, at: Array(0..<h.count)) { x in
            zip(Ref.swiglu(x, rows: rows, F: F), r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        XCTAssertLessThan(relativeError(doubles(dh.pointer, rows * 2 * F), fd), 1e-4, "SwiGLU gradient")
    }

    func testCrossEntropy() {
        var rng = TestRandom(4)
        let rows = 6, V = 2100  // more than one summation block
        let logits = floatRounded(rng.values(rows * V, scale: 4)), targets = rng.tokens(rows, below: V)
        let lb = aligned(logits), losses = aligned([Double](repeating: 0, count: rows))
        let loss = targets.withUnsafeBufferPointer {
            CrossEntropy.forwardBackward(
                logits: lb.pointer, losses: losses.pointer, targets: $0.baseAddress!, rows: rows, V: V,
                gradScale: 1 / Float(rows))
        }
        XCTAssertEqual(loss, Ref.crossEntropy(logits, targets: targets, rows: rows, V: V), accuracy: 1e-5)
        let indices = Array(0..<(rows * V))
        let fd = finiteDifferences(logits, at: indices) { Ref.crossEntropy($0, targets: targets, rows: rows, V: V) }
        XCTAssertLessThan(relativeError(doubles(lb.pointer, rows * V), fd), 1e-4, "cross-entropy logits gradient")
    }

    func testEmbeddingAndLinear() throws {
        var config = ModelConfig()
        (config.vocabSize, config.dim, config.nLayers, config.nHeads, config.ffnDim, config.seqLen) = (
            13, 8, 1, 2, 12, 4
        )
        let model = Model(config: config, quant: QuantConfig(), batch: 2, ledger: nil)
        var rng = TestRandom(5)
        let flat = floatRounded(rng.values(model.layout.count, scale: 0.5))
        setWeights(model, flat)
        let layout = model.layout, blk = layout.blocks[0]
        let M = 5, C = config.dim
        // Linear over the stacked (q | k | v) matrix.
        let matrix = StackedMatrix([blk.q, blk.k, blk.v], layout: layout)
        let x = floatRounded(rng.values(M * C)), r = rng.values(M * 3 * C)
        let xb = aligned(x), out = aligned([Double](repeating: 0, count: M * 3 * C))
        Linear.forward(
            out: out.pointer, input: LinearInput(values: xb.pointer), rows: M, weights: model.linearWeights(matrix),
            backend: model.backend)
        let qs = layout.specs[blk.q].offset
        let wqkv = Array(flat[qs..<(qs + 3 * C * C)])
        XCTAssertLessThan(
            relativeError(doubles(out.pointer, M * 3 * C), Ref.linear(x, wqkv[...], M: M, K: C, N: 3 * C)), 1e-6)
        model.zeroGradients()
        let dx = aligned([Double](repeating: 0, count: M * C)), rb = aligned(r)
        try Linear.backward(
            dInput: dx.pointer, gradients: model.gradients, dOut: rb.pointer, input: LinearInput(values: xb.pointer),
            rows: M,
            weights: model.linearWeights(matrix), backend: model.backend)
        func f(_ x: [Double], _ w: [Double]) -> Double {
            zip(Ref.linear(x, w[...], M: M, K: C, N: 3 * C), r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        XCTAssertLessThan(
            relativeError(doubles(dx.pointer, M * C), finiteDifferences(x, at: Array(0..<x.count)) { f($0, wqkv) }),
            1e-4)
        let dw = doubles(model.gradients.pointer + qs, 3 * C * C)
        XCTAssertLessThan(relativeError(dw, finiteDifferences(wqkv, at: Array(0..<wqkv.count)) { f(x, $0) }), 1e-4)

        // Embedding lookup and its scatter-add backward, with repeated tokens.
        let tokens: [Int32] = [3, 7, 3, 0, 12]
        let emb = aligned([Double](repeating: 0, count: tokens.count * C))
        tokens.withUnsafeBufferPointer {
            Embedding.forward(
                out: emb.pointer, tokens: $0.baseAddress!, count: tokens.count, weights: model.weights,
                param: layout.embedding, C: C)
        }
        for (t, tok) in tokens.enumerated() {
            for c in 0..<C { XCTAssertEqual(Double(emb.pointer[t * C + c]), flat[Int(tok) * C + c]) }
        }
        let dOut = rng.values(tokens.count * C), dOutB = aligned(dOut)
        let table = aligned([Double](repeating: 0, count: config.vocabSize * C))
        tokens.withUnsafeBufferPointer {
            Embedding.backward(
                dTable: table.pointer, dOut: dOutB.pointer, tokens: $0.baseAddress!, count: tokens.count, C: C)
        }
        let embFlat = Array(flat[0..<(config.vocabSize * C)])
        let fdTable = finiteDifferences(embFlat, at: Array(0..<embFlat.count)) { e in
            var s = 0.0
            for (t, tok) in tokens.enumerated() { for c in 0..<C { s += e[Int(tok) * C + c] * dOut[t * C + c] } }
            return s
        }
        XCTAssertLessThan(relativeError(doubles(table.pointer, embFlat.count), fdTable), 1e-4, "embedding gradient")
    }

    /// The whole model: every parameter tensor of a micro model, all elements.
    func testWholeModelAllParameters() throws {
        var config = ModelConfig()
        (config.vocabSize, config.dim, config.nLayers, config.nHeads, config.ffnDim, config.seqLen) = (
            11, 8, 2, 2, 16, 5
        )
        try checkWholeModel(config, batch: 2, samplesPerTensor: nil, seed: 6)
    }

    /// Grouped-query attention (4 query heads over 2 key/value heads) and a head tied to the
    /// embedding table, whose gradient sums the lookup's and the head's: every element.
    func testWholeModelGroupedQueryTiedEmbeddings() throws {
        var config = ModelConfig()
        (config.vocabSize, config.dim, config.nLayers, config.nHeads, config.ffnDim, config.seqLen) = (
            11, 16, 2, 4, 16, 5
        )
        config.nKVHeads = 2
        config.tieEmbeddings = true
        let layout = ParameterLayout(config)
        XCTAssertEqual(layout.head, layout.embedding)
        XCTAssertNil(layout.spec(named: "lm_head.weight"))
        XCTAssertEqual(layout.specs[layout.blocks[0].k].shape, [8, 16])
        try checkWholeModel(config, batch: 2, samplesPerTensor: nil, seed: 8)
        // And under activation checkpointing.
        try checkWholeModel(config, batch: 2, samplesPerTensor: 40, seed: 9, recomputesBlocks: true)
    }

    /// The whole model at configs/tiny.yaml's shape, on a sample of elements of every tensor.
    func testWholeModelTinyConfig() throws {
        let config = try RunConfig.load(path: repositoryFile("configs/tiny.yaml")).model
        try checkWholeModel(config, batch: 2, samplesPerTensor: 12, seed: 7)
    }

    func checkWholeModel(
        _ config: ModelConfig, batch B: Int, samplesPerTensor: Int?, seed: UInt64, recomputesBlocks: Bool = false
    ) throws {
        let T = config.seqLen
        let model = Model(
            config: config, quant: QuantConfig(), batch: B, ledger: nil, recomputesBlocks: recomputesBlocks)
        var rng = TestRandom(seed)
        // Larger than the 0.02 init so that every gradient is well above rounding noise.
        var flat = floatRounded(rng.values(model.layout.count, scale: 0.4))
        for spec in model.layout.specs where spec.role == .norm {
            for i in 0..<spec.count { flat[spec.offset + i] = Double(Float(1 + 0.2 * rng.values(1)[0])) }
        }
        setWeights(model, flat)
        let tokens = rng.tokens(B * T, below: config.vocabSize), targets = rng.tokens(B * T, below: config.vocabSize)
        model.zeroGradients()
        let loss = try tokens.withUnsafeBufferPointer { t in
            try targets.withUnsafeBufferPointer { g in
                try model.forwardBackward(tokens: t.baseAddress!, targets: g.baseAddress!, batch: B, length: T)
            }
        }
        let layout = model.layout
        XCTAssertEqual(
            loss, Ref.loss(flat, layout: layout, config: config, tokens: tokens, targets: targets, B: B, T: T),
            accuracy: 1e-5 * max(1, abs(loss)))
        for spec in layout.specs {
            var indices = Array(spec.offset..<(spec.offset + spec.count))
            if let k = samplesPerTensor, spec.count > k {
                indices = (0..<k).map { spec.offset + ($0 * 7919) % spec.count }
            }
            let fd = finiteDifferences(flat, at: indices) {
                Ref.loss($0, layout: layout, config: config, tokens: tokens, targets: targets, B: B, T: T)
            }
            let mine = indices.map { Double(model.gradients.pointer[$0]) }
            XCTAssertLessThan(relativeError(mine, fd), 1e-4, "gradient of \(spec.name)")
        }
    }
}

/// Path of a file in the repository (tests run from the package root or from .build).
func repositoryFile(_ relative: String) -> String {
    var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent(relative)
        if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
        dir = dir.deletingLastPathComponent()
    }
    return relative
}
