import Foundation
import QTrainCore
import QTrainDist
import QTrainOptim
import QTrainWeights

/// A part of the training state that a checkpoint holds in files of its own. The
/// ``Checkpointer`` saves and restores a list of them and knows nothing else of the trainer.
public protocol CheckpointComponent: AnyObject {
    /// Writes this rank's files of the component into `dir`; returns their names and SHA-256
    /// (empty on ranks that write none).
    func save(into dir: URL, rank: Int) throws -> [String: String]
    /// Reads the component back from the verified checkpoint `dir`.
    func restore(from dir: URL, state: CheckpointState) throws
}

/// Where a run stands: the part of `state.json` that the trainer owns.
public struct TrainProgress: Codable, Sendable, Equatable {
    /// Steps done.
    public var step: Int
    /// Tokens consumed over all ranks.
    public var tokensSeen: Int

    public init(step: Int, tokensSeen: Int) {
        self.step = step
        self.tokensSeen = tokensSeen
    }
}

/// The weights in `model.safetensors` (written by rank 0; every rank reads it), checked
/// against the fingerprint in `state.json` after loading.
public final class WeightsCheckpoint: CheckpointComponent {
    public let weights: ModelWeights
    public init(_ weights: ModelWeights) { self.weights = weights }

    public func save(into dir: URL, rank: Int) throws -> [String: String] {
        guard rank == 0 else { return [:] }
        return [
            "model.safetensors": try CheckpointFormat.modelWriter(weights).write(
                to: dir.appendingPathComponent("model.safetensors"))
        ]
    }

    public func restore(from dir: URL, state: CheckpointState) throws {
        try CheckpointFormat.loadModel(
            weights, from: SafetensorsFile(url: dir.appendingPathComponent("model.safetensors")))
        let fp = String(format: "%016llx", ReplicaCheck.fingerprint(weights))
        guard fp == state.fingerprint else {
            throw QTrainError(
                .checkpoint,
                "the weights loaded from \(dir.path) have fingerprint \(fp), state.json says \(state.fingerprint)")
        }
    }
}

/// The AdamW state: `optimizer.safetensors` from rank 0, or one file per rank under ZeRO-1.
/// Restoring re-shards (any split of the saved files) and converts the state's dtype.
public final class OptimizerCheckpoint: CheckpointComponent {
    public let optimizer: Optimizer
    let sharded: Bool

    public init(_ optimizer: Optimizer, sharded: Bool) {
        self.optimizer = optimizer
        self.sharded = sharded
    }

    static func fileName(rank: Int?) -> String {
        rank.map { String(format: "optimizer-rank-%04d.safetensors", $0) } ?? "optimizer.safetensors"
    }

    public func save(into dir: URL, rank: Int) throws -> [String: String] {
        guard sharded || rank == 0 else { return [:] }
        let name = Self.fileName(rank: sharded ? rank : nil)
        return [name: try CheckpointFormat.optimizerWriter(optimizer).write(to: dir.appendingPathComponent(name))]
    }

    public func restore(from dir: URL, state: CheckpointState) throws {
        let names = state.files.keys.filter { $0.hasPrefix("optimizer") }.sorted()
        try CheckpointFormat.loadOptimizer(
            optimizer, from: names.map { try SafetensorsFile(url: dir.appendingPathComponent($0)) })
    }
}

/// A copy of the data's `tokenizer.json`, so that eval, generate and export need no data
/// directory (rank 0; nothing to restore).
public final class TokenizerCheckpoint: CheckpointComponent {
    public let source: URL
    public init(dataDirectory: URL) { source = dataDirectory.appendingPathComponent("tokenizer.json") }

    public func save(into dir: URL, rank: Int) throws -> [String: String] {
        guard rank == 0, let data = try? Data(contentsOf: source) else { return [:] }
        try writeDurably(data, to: dir.appendingPathComponent("tokenizer.json"))
        return ["tokenizer.json": SHA256.hex(data)]
    }

    public func restore(from dir: URL, state: CheckpointState) throws {}
}
