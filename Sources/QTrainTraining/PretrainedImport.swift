import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainImport
import QTrainWeights

/// `qtrain-dist import`: a run set up to fine-tune a pretrained model. The run's config is the
/// base config with the model section of the source (only `seq_len` stays the base's, at most
/// the source's context), `train.init_from` naming the source and `train.out_dir` the run; the
/// weights are converted into the run's weight policy once, to report how faithfully each
/// tensor is held, exactly as `train` will convert them at step 0.
public enum PretrainedImport {
    /// What an import found and wrote.
    public struct Result {
        public let config: RunConfig
        public let source: PretrainedModel
        public let tensors: [ImportedTensor]
        /// Bytes of the weights as the policy stores them.
        public let weightBytes: Int
        public let seconds: Double
    }

    /// The fine-tuning config for `source` from `base`.
    public static func runConfig(base: RunConfig, source: PretrainedModel, run: URL) throws -> RunConfig {
        var c = base
        c.model = source.config
        c.model.seqLen = min(base.model.seqLen, source.config.seqLen)
        c.model.initStd = base.model.initStd
        c.train.initFrom = source.url.standardizedFileURL.path
        c.train.outDir = run.path
        try c.validate()
        return c
    }

    /// Opens `sourcePath` (a file, a folder, or a catalogued model's name, fetched into `cache`),
    /// converts it under `base`'s policy and writes `run/config.yaml`; refuses
    /// a run directory that already holds checkpoints. Nothing is written unless every tensor
    /// converted.
    public static func run(
        sourcePath: String, base: RunConfig, run: URL, cache: URL = URL(fileURLWithPath: "data/.cache"),
        log: (String) -> Void = { _ in }
    ) throws -> Result {
        let t = Date()
        if !Checkpointer.candidates(in: run).isEmpty {
            throw QTrainError(
                .checkpoint, "\(run.path) already holds checkpoints",
                hint: "import into a new run directory (--out)")
        }
        let source = try PretrainedModel.open(sourcePath, cache: cache, log: log)
        _ = try source.tokenizer()
        let config = try runConfig(base: base, source: source, run: run)
        let ledger = MemoryLedger()
        let weights = ModelWeights(layout: ParameterLayout(config.model), quant: config.quant, ledger: ledger)
        let tensors = try source.load(into: weights, scale: config.train.initScale)
        do {
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try writeDurably(Data(config.yaml().utf8), to: run.appendingPathComponent("config.yaml"))
        } catch let e as QTrainError {
            throw e
        } catch {
            throw QTrainError(.io, "cannot write \(run.path)/config.yaml: \(error.localizedDescription)")
        }
        return Result(
            config: config, source: source, tensors: tensors, weightBytes: ledger.bytes(.weights),
            seconds: Date().timeIntervalSince(t))
    }
}
