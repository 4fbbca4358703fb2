import Foundation

/// A bench result as `bench --json` prints it and a comparison of modes reads it back from
/// each mode's process: one `Codable` type, snake_case keys.
public struct BenchRecord: Codable, Sendable, JSONLine {
    /// The compared mode (`dqt:8+bf16-state`), in comparisons.
    public var mode: String?
    public var label: String
    public var parameters: Int
    public var tokensPerStep: Int
    public var threads: Int
    public var tokensPerS: Double
    public var gflops: Double
    public var peakGflops: Double
    public var mfu: Double
    public var stepS: Double
    /// Seconds per step by phase (forward, backward, communication, optimizer).
    public var phases: [String: Double]
    public var flopsPerToken: Double
    public var gradAccum: Int
    public var compute: String
    public var int8PeakGops: Double?
    public var bf16PeakGflops: Double?
    public var pathPeakGflops: Double
    public var pathMfu: Double
    /// MFU of the forward and backward phases against the path's peak for each.
    public var phasePathMfu: [String: Double]?
    public var world: Int
    public var overlap: String
    public var shardOptimizer: Bool
    public var shardGradients: Bool
    public var commWaitShare: Double
    public var memory: Memory
    public var checkpoint: Checkpoint?

    /// Per rank, the most any rank held.
    public struct Memory: Codable, Sendable {
        public var bytesPerParam: Double
        public var peakRssBytes: Int
        /// Bytes by category of the memory ledger (weights, gradients, optimizer, …).
        public var categories: [String: Int]

        enum CodingKeys: String, CodingKey {
            case bytesPerParam = "bytes_per_param", peakRssBytes = "peak_rss_bytes", categories
        }
    }

    /// Writing and verifying a checkpoint of the state.
    public struct Checkpoint: Codable, Sendable {
        public var bytes: Int
        public var writeS: Double
        public var verifyS: Double

        enum CodingKeys: String, CodingKey { case bytes, writeS = "write_s", verifyS = "verify_s" }
    }

    enum CodingKeys: String, CodingKey {
        case mode, label, parameters, tokensPerStep = "tokens_per_step", threads, tokensPerS = "tokens_per_s", gflops
        case peakGflops = "peak_gflops", mfu, stepS = "step_s", phases, flopsPerToken = "flops_per_token"
        case gradAccum = "grad_accum", compute, int8PeakGops = "int8_peak_gops", bf16PeakGflops = "bf16_peak_gflops"
        case pathPeakGflops = "path_peak_gflops", pathMfu = "path_mfu", phasePathMfu = "phase_path_mfu", world, overlap
        case shardOptimizer = "shard_optimizer"
        case shardGradients = "shard_gradients", commWaitShare = "comm_wait_share", memory, checkpoint
    }

}

/// What `bench --modes … --json` prints last.
public struct BenchComparison: Codable, Sendable, JSONLine {
    public var modes: [BenchRecord]
    /// Whether the modes ran in one process, their steps in turn (`--interleave`).
    public var interleaved: Bool?

    public init(modes: [BenchRecord], interleaved: Bool? = nil) {
        self.modes = modes
        self.interleaved = interleaved
    }
}

/// A bench result printed as one line of JSON (keys sorted), the last line of `bench --json`.
public protocol JSONLine: Encodable {}

extension JSONLine {
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
