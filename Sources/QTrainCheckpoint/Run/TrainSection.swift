import QTrainCore
import QTrainWeights

/// What the forward pass keeps for backward (`train.activation_checkpointing`).
public enum ActivationCheckpointing: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Every block's activations (the fastest).
    case none
    /// Only each block's input; backward recomputes the block's forward first (about one more
    /// forward pass of compute for an activation arena of one block plus the block inputs).
    case blocks
}

/// The `train:` section: batch shape, length, seed and where the run writes.
public struct TrainSection: Codable, Equatable, Sendable, ConfigSection {
    /// Sequences per forward pass on each rank (B).
    public var microBatch = 4
    /// Forward/backward passes per optimizer step; the global batch is
    /// micro_batch × grad_accum × world size sequences.
    public var gradAccum = 1
    /// Sequences per optimizer step over all ranks; when set (> 0) it decides micro_batch as
    /// global_batch ÷ (world size × grad_accum), which must divide evenly.
    public var globalBatch = 0
    /// Optimizer steps of the run.
    public var steps = 100
    /// Seed of initialisation, data sampling and stochastic rounding.
    public var seed = 1337
    /// Run directory: metrics.jsonl, config.yaml and checkpoints.
    public var outDir = "runs/default"
    /// Threads per rank for BLAS and kernels; 0 divides the node's cores by the ranks on it.
    public var threads = 0
    /// Validation every this many steps (and after the last); 0 only after the last.
    public var evalEvery = 100
    /// Validation sequences per evaluation (spread evenly over the validation split).
    public var evalSequences = 64
    public var activationCheckpointing: ActivationCheckpointing = .none
    /// A pretrained model to start from instead of random weights: a GGUF file or a Hugging
    /// Face folder (`qtrain-dist import` writes a config that sets it). Used only when the run
    /// starts; a resumed run continues from its checkpoint. Empty: random initialisation.
    public var initFrom = ""
    /// How imported weights get a DQT tensor's grid step: `auto` (absmax at 6+ bits, absmean
    /// for ternary, search otherwise), `absmax`, `absmean` (as at random initialisation) or
    /// `search` (least squared rounding error).
    public var initScale: ImportScale = .auto

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case microBatch = "micro_batch", gradAccum = "grad_accum", globalBatch = "global_batch", steps, seed, outDir =
            "out_dir"
        case threads, evalEvery = "eval_every", evalSequences = "eval_sequences", activationCheckpointing =
            "activation_checkpointing"
        case initFrom = "init_from", initScale = "init_scale"
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.microBatch, \.microBatch), .init(.gradAccum, \.gradAccum), .init(.globalBatch, \.globalBatch),
        .init(.steps, \.steps), .init(.seed, \.seed), .init(.outDir, \.outDir), .init(.threads, \.threads),
        .init(.evalEvery, \.evalEvery), .init(.evalSequences, \.evalSequences),
        .init(.activationCheckpointing, \.activationCheckpointing), .init(.initFrom, \.initFrom),
        .init(.initScale, \.initScale)
    ]

    /// Sequences per forward pass on each of `world` ranks, from global_batch when it is set.
    public func microBatch(world: Int) throws -> Int {
        guard globalBatch > 0 else { return microBatch }
        guard globalBatch >= world * gradAccum else {
            throw QTrainError(
                .config,
                "train.global_batch = \(globalBatch) sequences cannot be shared by \(world) ranks × \(gradAccum) accumulation steps: more ranks than sequences",
                hint: "raise train.global_batch to at least \(world * gradAccum) or launch fewer ranks")
        }
        guard globalBatch % (world * gradAccum) == 0 else {
            throw QTrainError(
                .config,
                "train.global_batch = \(globalBatch) is not divisible by world size \(world) × grad_accum \(gradAccum)",
                hint: "use a multiple of \(world * gradAccum), or another rank count")
        }
        return globalBatch / (world * gradAccum)
    }

    func validate(path: String = "train") throws {
        let check = ConfigCheck(path: path)
        try check.require(microBatch >= 1, "micro_batch", microBatch, "at least 1")
        try check.require(gradAccum >= 1, "grad_accum", gradAccum, "at least 1")
        try check.require(globalBatch >= 0, "global_batch", globalBatch, "0 (micro_batch decides) or positive")
        try check.require(steps >= 0, "steps", steps, "0 or more")
        try check.require(seed >= 0, "seed", seed, "0 or more")
        try check.require(!outDir.isEmpty, "out_dir", "''", "a directory path")
        try check.require(threads >= 0 && threads <= 1024, "threads", threads, "0 (automatic) to 1024")
        try check.require(evalEvery >= 0, "eval_every", evalEvery, "0 or more")
        try check.require(evalSequences >= 1, "eval_sequences", evalSequences, "at least 1")
    }
}

/// When to show the live progress line (`log.progress`).
public enum ProgressMode: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// A live line on a terminal, plain lines otherwise.
    case auto
    /// Plain lines always.
    case lines
}

/// The `log:` section.
public struct LogSection: Codable, Equatable, Sendable, ConfigSection {
    /// A progress line (and a metrics record) every this many steps.
    public var every = 10
    public var progress: ProgressMode = .auto
    /// Also write every metrics record as TensorBoard scalars under `RUN/tensorboard/`.
    public var tensorboard = false

    package enum CodingKeys: String, CodingKey, CaseIterable { case every, progress, tensorboard }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.every, \.every), .init(.progress, \.progress), .init(.tensorboard, \.tensorboard)
    ]

    func validate(path: String = "log") throws {
        try ConfigCheck(path: path).require(every >= 1, "every", every, "at least 1")
    }
}
