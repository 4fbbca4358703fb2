import QTrainCore
import QTrainDist
import QTrainOptim
import QTrainWeights

/// Keeps the data-parallel replicas identical: compares their fingerprints on its cadence
/// (`dist.check_every`, every step in debug mode, and after the last step) and on a mismatch
/// stops the run or, with `dist.on_desync: resync`, copies rank 0's state to every rank.
public final class ReplicaMonitor {
    /// What the monitor has seen.
    public struct State: Codable, Sendable, Equatable {
        /// The last step whose replicas were compared, and how many resynchronisations ran.
        public var lastChecked: Int?
        public var resyncs = 0
    }

    public private(set) var state = State()
    let weights: ModelWeights
    /// The optimizer whose state is replicated (nil under ZeRO-1, where each rank owns a slice).
    let replicatedOptimizer: Optimizer?
    let comm: Communicator
    let every: Int
    let everyStep: Bool
    let lastStep: Int
    let onDesync: DesyncAction
    let log: (String) -> Void

    init(
        weights: ModelWeights, replicatedOptimizer: Optimizer?, comm: Communicator, config: DistConfig, debug: Bool,
        lastStep: Int, log: @escaping (String) -> Void
    ) {
        self.weights = weights
        self.replicatedOptimizer = replicatedOptimizer
        self.comm = comm
        every = config.checkEvery
        everyStep = debug
        self.lastStep = lastStep
        onDesync = config.onDesync
        self.log = log
    }

    /// Whether a comparison is due after `step`.
    public func isDue(step: Int) -> Bool { everyStep || (every > 0 && step % every == 0) || step == lastStep }

    /// Compares the replicas (collective); a no-op for one rank.
    public func check(at step: Int) throws {
        guard comm.worldSize > 1 else { return }
        state.lastChecked = step
        guard let mismatch = try ReplicaCheck.compare(weights, comm: comm, step: step) else { return }
        switch onDesync {
        case .stop:
            throw QTrainError(
                .distributed, mismatch.description,
                hint:
                    "set dist.on_desync: resync to copy rank 0's weights instead; check that every rank runs the same build on the same CPU type"
            )
        case .resync:
            try ReplicaCheck.resynchronize(weights, optimizer: replicatedOptimizer, comm: comm)
            state.resyncs += 1
            log("resynchronised: \(mismatch.description); copied rank 0's weights to every rank")
            if let again = try ReplicaCheck.compare(weights, comm: comm, step: step) {
                throw QTrainError(.distributed, "resynchronisation failed: \(again.description)")
            }
        }
    }
}
