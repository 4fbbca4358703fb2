import XCTest

@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainWeights

/// The tiny model against the committed NumPy reference (tools/reference_model.py): the same
/// weights and tokens give the same logits, loss and every gradient (relative error < 1e-4).
final class ReferenceFixtureTests: XCTestCase {
    func testMatchesNumPyReference() throws {
        try check(fixture: "reference_tiny")
    }

    /// Grouped-query attention (4 query heads over 2 key/value heads) and a tied head:
    /// `tools/reference_model.py --variant gqa-tied`.
    func testMatchesNumPyReferenceGroupedQueryTied() throws {
        try check(fixture: "reference_tiny_gqa_tied")
    }

    func check(fixture: String) throws {
        Threads.configure(2)
        let url = Bundle.module.url(
            forResource: fixture, withExtension: "safetensors", subdirectory: "Fixtures")!
        let file = try SafetensorsFile(url: url)
        let meta = file.metadata
        var config = ModelConfig()
        config.vocabSize = Int(meta["vocab_size"]!)!
        config.dim = Int(meta["dim"]!)!
        config.nLayers = Int(meta["n_layers"]!)!
        config.nHeads = Int(meta["n_heads"]!)!
        config.nKVHeads = Int(meta["n_kv_heads"] ?? "0")!
        config.tieEmbeddings = meta["tie_embeddings"] == "true"
        config.ffnDim = Int(meta["ffn_dim"]!)!
        config.seqLen = Int(meta["seq_len"]!)!
        config.normEps = Double(meta["norm_eps"]!)!
        config.ropeTheta = Double(meta["rope_theta"]!)!
        let B = Int(meta["batch"]!)!, T = config.seqLen
        let model = Model(config: config, quant: QuantConfig(), batch: B, ledger: nil)
        XCTAssertEqual(model.layout.specs.count, file.entries.keys.filter { !$0.hasPrefix("grad.") }.count - 4)
        for spec in model.layout.specs {
            let values = try file.floats(spec.name)
            XCTAssertEqual(values.count, spec.count, spec.name)
            model.weights.densePointer(spec.index).update(from: values, count: spec.count)
        }
        let tokens = try file.int32s("tokens"), targets = try file.int32s("targets")
        // Forward only: compare logits before the fused loss overwrites them.
        _ = try tokens.withUnsafeBufferPointer { t in
            try targets.withUnsafeBufferPointer { g in
                try model.loss(tokens: t.baseAddress!, targets: g.baseAddress!, batch: B, length: T)
            }
        }
        let expectedLogits = try file.doubles("logits")
        XCTAssertLessThan(
            relativeError(doubles(model.acts.logits, expectedLogits.count), expectedLogits), 1e-5, "logits")

        model.zeroGradients()
        let loss = try tokens.withUnsafeBufferPointer { t in
            try targets.withUnsafeBufferPointer { g in
                try model.forwardBackward(tokens: t.baseAddress!, targets: g.baseAddress!, batch: B, length: T)
            }
        }
        let expectedLoss = try file.doubles("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-5 * expectedLoss, "loss")
        for spec in model.layout.specs {
            let expected = try file.doubles("grad." + spec.name)
            let mine = doubles(model.gradients.pointer + spec.offset, spec.count)
            XCTAssertLessThan(relativeError(mine, expected), 1e-4, "gradient of \(spec.name)")
        }
    }
}
