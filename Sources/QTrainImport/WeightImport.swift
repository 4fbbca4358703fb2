import Foundation
import QTrainCore
import QTrainWeights

/// How faithfully one imported tensor is held: the relative error ‖W_forward − W‖ / ‖W‖ of the
/// values the forward pass computes with (the codes times the step for dqt, BitNet's ternary
/// image of its latent weights, exact for fp32).
public struct ImportedTensor: Sendable {
    public let name: String
    /// The tensor's type in the source (`Q4_1`, `BF16`, …).
    public let sourceType: String
    public let relativeError: Double
}

extension PretrainedModel {
    /// Checks that a run's model section describes this model: every key but `seq_len` (which
    /// may not exceed the model's context) and `init_std` must agree.
    public func checkMatches(_ run: ModelConfig) throws {
        let mine = config
        let keys: [(String, String, String)] = [
            ("vocab_size", "\(run.vocabSize)", "\(mine.vocabSize)"), ("dim", "\(run.dim)", "\(mine.dim)"),
            ("n_layers", "\(run.nLayers)", "\(mine.nLayers)"), ("n_heads", "\(run.nHeads)", "\(mine.nHeads)"),
            ("n_kv_heads", "\(run.kvHeads)", "\(mine.kvHeads)"),
            ("tie_embeddings", "\(run.tieEmbeddings)", "\(mine.tieEmbeddings)"),
            ("ffn_dim", "\(run.hiddenDim)", "\(mine.hiddenDim)"),
            ("rope_theta", "\(run.ropeTheta)", "\(mine.ropeTheta)"),
            ("norm_eps", "\(Float(run.normEps))", "\(Float(mine.normEps))")
        ]
        for (key, ours, theirs) in keys where ours != theirs {
            throw QTrainError(
                .config, "model.\(key) is \(ours) in this run's config but \(theirs) in \(url.lastPathComponent)",
                hint: "take the model section that `qtrain-dist import \(url.path) --out RUN` writes")
        }
        guard run.seqLen <= mine.seqLen else {
            throw QTrainError(
                .config,
                "model.seq_len = \(run.seqLen) is longer than the \(mine.seqLen) positions \(url.lastPathComponent) was trained for",
                hint: "use model.seq_len ≤ \(mine.seqLen)")
        }
    }

    /// Sets every tensor of `weights` (whose layout must be this model's, any weight policy;
    /// ``checkMatches(_:)`` says which key differs)
    /// from the source, DQT codes under the step `scale` picks; returns each tensor's error.
    /// Tensors are read one at a time, so the only FP32 copy is of the one being loaded.
    public func load(into weights: ModelWeights, scale: ImportScale) throws -> [ImportedTensor] {
        let mine = ParameterLayout(config).specs.map { "\($0.name) \($0.shape)" }
        guard weights.layout.specs.map({ "\($0.name) \($0.shape)" }) == mine else {
            throw QTrainError(
                .config, "the run's model does not have the tensors of \(url.lastPathComponent)",
                hint: "check the run's model section against the source (checkMatches)")
        }
        let largest = weights.layout.specs.map(\.count).max() ?? 0
        let values = AlignedBuffer<Float>(count: largest, category: .scratch, ledger: nil)
        let forward = AlignedBuffer<Float>(count: largest, category: .scratch, ledger: nil)
        for spec in weights.layout.specs {
            try self.values(of: spec, into: values.pointer)
            try Self.checkFinite(values.pointer, spec, url)
            weights.load(spec.index, values: values.pointer, scale: scale)
        }
        // What the forward pass uses depends on state derived from all the tensors (BitNet's
        // ternary steps): measure once it is there, reading each tensor again.
        weights.refreshDerivedState()
        return try weights.layout.specs.map { spec in
            try self.values(of: spec, into: values.pointer)
            weights.writeValues(of: spec.index, from: 0, count: spec.count, into: forward.pointer)
            var difference = 0.0, norm = 0.0
            for i in 0..<spec.count {
                let w = Double(values.pointer[i]), d = Double(forward.pointer[i]) - w
                difference += d * d
                norm += w * w
            }
            return ImportedTensor(
                name: spec.name, sourceType: sourceTypes[spec.name] ?? "?",
                relativeError: norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot())
        }
    }

    private static func checkFinite(_ x: UnsafePointer<Float>, _ spec: ParameterSpec, _ url: URL) throws {
        for i in 0..<spec.count where !x[i].isFinite {
            throw QTrainError(
                .checkpoint, "cannot import \(url.lastPathComponent): \(spec.name) holds \(x[i]) at element \(i)",
                hint: "the file is damaged")
        }
    }
}
