import Foundation
import QTrainCore
import QTrainData
import QTrainModel
import QTrainWeights

/// Which weights a loaded model computes with.
public enum WeightChoice: String, CaseIterable, Sendable {
    /// As trained (codes, latent ternarisation or FP32).
    case stored
    /// Every quantised matrix re-quantised to ternary with absmean (β = mean|W|) at load: how an
    /// n-bit DQT model runs with ternary weights (the paper's finding 4).
    case ternary
}

/// A verified checkpoint opened for evaluation, generation, export or inspection.
public struct LoadedCheckpoint {
    public let directory: URL
    public let state: CheckpointState
    public let config: RunConfig
    public let tokenizer: any Tokenizer

    /// Opens `path`: a checkpoint directory, or a run directory (its newest valid checkpoint).
    /// `hashing`: which files' SHA-256 are checked (``Checkpointer/Hashed``); `clock` gets a
    /// mark after the checkpoint is verified and after the tokenizer is read.
    public init(
        path: URL, log: (String) -> Void = { _ in }, hashing: Checkpointer.Hashed = .all, clock: PhaseClock? = nil
    ) throws {
        var dir = path
        var verified: CheckpointState?
        if !FileManager.default.fileExists(atPath: path.appendingPathComponent("state.json").path) {
            let candidates = Checkpointer.candidates(in: path)
            guard !candidates.isEmpty else {
                throw QTrainError(
                    .checkpoint, "\(path.path) is neither a checkpoint nor a run directory with checkpoints",
                    hint: "give RUN (train.out_dir) or RUN/step-NNNNNNN")
            }
            var found: URL?
            for c in candidates {
                do {
                    verified = try Checkpointer.verify(c, hashing: hashing)
                    found = c
                    break
                } catch let e as QTrainError {
                    log("warning: skipping checkpoint \(c.lastPathComponent): \(e.message)")
                }
            }
            guard let found else { throw QTrainError(.checkpoint, "no valid checkpoint in \(path.path)") }
            dir = found
        }
        directory = dir
        state = try verified ?? Checkpointer.verify(dir, hashing: hashing)
        config = try RunConfig.parse(yaml: state.config)
        clock?.mark("checkpoint verify")
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) {
            tokenizer = try TokenizerLoader.load(from: dir)
        } else {
            tokenizer = try TokenizerLoader.load(from: URL(fileURLWithPath: config.data.firstDirectory))
        }
        clock?.mark("tokenizer load")
    }

    /// The checkpoint's weights in a model with activations for `batch` sequences, computed
    /// on `compute` (default: the path the run trained with).
    public func model(batch: Int, weights choice: WeightChoice = .stored, compute: ComputePath? = nil) throws -> Model {
        var quant = config.quant
        if let compute { quant.compute = compute }
        // Forward only: no gradients, and one slot of per-block activations (nothing is kept for a
        // backward pass; the forward computes the same values).
        let stored = Model(
            config: config.model, quant: quant, batch: batch, ledger: nil, gradients: .none(), recomputesBlocks: true)
        try CheckpointFormat.loadModel(
            stored.weights, from: SafetensorsFile(url: directory.appendingPathComponent("model.safetensors")))
        guard choice == .ternary else { return stored }
        quant.mode = .dqt
        quant.bits = 1.58
        quant.scale = nil
        quant.latentDtype = nil
        if config.quant.mode == .fp32 { quant.activationBits = 0 }
        let ternary = Model(
            config: config.model, quant: quant, batch: batch, ledger: nil, gradients: .none(), recomputesBlocks: true)
        ternary.quantizesActivations = stored.quantizesActivations
        Ternarizer.convert(from: stored.weights, to: ternary.weights)
        return ternary
    }
}

/// Re-quantisation of trained weights to ternary at load (absmean).
///
/// Tensors whose forward weights are already ternary codes times one step (BitNet's Q(W),
/// ternary DQT) pass through unchanged: absmean over values that are already {−β, 0, β}
/// would keep the codes but shrink the step by the tensor's non-zero fraction.
public enum Ternarizer {
    public static func convert(from src: ModelWeights, to dst: ModelWeights) {
        for spec in src.layout.specs {
            if let q = dst.codes(spec.index), let codes = ternaryCodes(src, spec),
                let step = src.policy.forwardCodeStep(src, of: spec.index)
            {
                q.scale = 1 / step
                q.setCodes { codes[$0] }
                continue
            }
            var values = [Float](repeating: 0, count: spec.count)
            values.withUnsafeMutableBufferPointer {
                src.writeValues(of: spec.index, from: 0, count: spec.count, into: $0.baseAddress!)
            }
            if let q = dst.codes(spec.index) {
                let beta = max(values.reduce(0.0) { $0 + Double(abs($1)) } / Double(spec.count), 1e-12)
                q.scale = Float(1 / beta)
                let scale = q.scale
                q.setCodes { Int8(max(-1, min(1, (values[$0] * scale).rounded(.toNearestOrEven)))) }
            } else {
                dst.densePointer(spec.index).update(from: values, count: spec.count)
            }
        }
        dst.refreshDerivedState()
    }

    /// The tensor's forward codes when they are all in {−1, 0, 1}.
    static func ternaryCodes(_ w: ModelWeights, _ spec: ParameterSpec) -> [Int8]? {
        guard w.policy.forwardCodeStep(w, of: spec.index) != nil else { return nil }
        var codes = [Int8](repeating: 0, count: spec.count)
        codes.withUnsafeMutableBufferPointer {
            w.policy.forwardCodes(w, of: spec.index, from: 0, count: spec.count, into: $0.baseAddress!)
        }
        return codes.allSatisfy { $0 >= -1 && $0 <= 1 } ? codes : nil
    }
}
