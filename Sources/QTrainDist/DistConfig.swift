import QTrainCore

/// What a rank does when its weights differ from the others' (`dist.on_desync`).
public enum DesyncAction: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Stop the run, naming the step, the ranks and the first differing tensor.
    case stop
    /// Copy rank 0's weights (and optimizer state) to every rank, log it, go on.
    case resync
}

/// How gradient all-reduces are overlapped with the backward pass (`dist.overlap`).
public enum OverlapMode: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// `nonblocking` for replicated training, `off` under ZeRO-1, whose per-bucket reduces ran
    /// fastest blocking here (Open MPI's non-blocking reduce is slow; see README).
    case auto
    /// Non-blocking collectives started as buckets fill, driven forward between layers.
    case nonblocking
    /// A communication thread runs each bucket's blocking all-reduce while backward goes on.
    case thread
    /// The same buckets, communicated one after another once backward is done (the baseline
    /// the others are measured against).
    case off
}

/// The `dist:` section: data parallelism.
public struct DistConfig: Codable, Equatable, Sendable, ConfigSection {
    /// Compare a fingerprint of all weights across ranks every this many steps (and at every
    /// checkpoint); 0 only at the end.
    public var checkEvery = 100
    public var onDesync: DesyncAction = .stop
    /// ZeRO-1: reduce-scatter gradients, update a 1/world slice of the optimizer state, all-gather
    /// the (packed) weights.
    public var shardOptimizer = false
    /// ZeRO-2 (with ZeRO-1): each gradient is summed onto the rank that owns it as backward
    /// makes it; a rank keeps only its slice of the gradients.
    public var shardGradients = false
    /// Gradient bucket size in megabytes.
    public var bucketMB = 25.0
    public var overlap: OverlapMode = .auto
    /// Seconds a rank waits for a step (or a validation, checkpoint or replica check) to finish
    /// before it names the ranks that stopped answering and ends the job (exit 5); 0 = wait forever.
    public var timeoutS = 600.0

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case checkEvery = "check_every", onDesync = "on_desync", shardOptimizer = "shard_optimizer", shardGradients =
            "shard_gradients"
        case bucketMB = "bucket_mb", overlap, timeoutS = "timeout_s"
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.checkEvery, \.checkEvery), .init(.onDesync, \.onDesync), .init(.shardOptimizer, \.shardOptimizer),
        .init(.shardGradients, \.shardGradients), .init(.bucketMB, \.bucketMB), .init(.overlap, \.overlap),
        .init(.timeoutS, \.timeoutS)
    ]

    package func validate(path: String = "dist") throws {
        let check = ConfigCheck(path: path)
        try check.require(checkEvery >= 0, "check_every", checkEvery, "0 or more")
        if shardGradients && !shardOptimizer {
            throw QTrainError.config(
                "config key '\(path).shard_gradients' is true but '\(path).shard_optimizer' is false",
                hint: "ZeRO-2 shards the gradients on top of ZeRO-1: set \(path).shard_optimizer=true too")
        }
        try check.require(bucketMB > 0 && bucketMB <= 4096, "bucket_mb", bucketMB, "between 0 and 4096")
        try check.require(
            timeoutS == 0 || (timeoutS >= 2 && timeoutS <= 604_800), "timeout_s", timeoutS,
            "0 (off) or between 2 and 604800 seconds")
    }
}
