import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainModel

/// What a run will allocate per rank, estimated from its config before anything is allocated
/// (in Float64, so absurd sizes cannot overflow), and the check that it fits this machine: a
/// config that cannot fit ends in one message with the numbers, not in an out-of-memory crash
/// after minutes of allocation.
public struct MemoryPlan: Sendable {
    public var parameters: Double
    /// Weights, gradients, AdamW state and weight scratch.
    public var stateBytes: Double
    /// The activation arena for `microBatch` sequences.
    public var activationBytes: Double
    public var totalBytes: Double { stateBytes + activationBytes }

    /// - Parameter world: ranks (ZeRO-1 divides the AdamW state among them, ZeRO-2 the gradients too).
    public init(_ config: RunConfig, microBatch: Int, world: Int = 1) {
        let m = config.model
        let C = Double(m.dim), F = Double(m.hiddenDim), V = Double(m.vocabSize), L = Double(m.nLayers)
        let K = Double(m.kvDim), tables = m.tieEmbeddings ? 1.0 : 2.0
        let matrices = tables * V * C + L * (2 * C * C + 2 * K * C + 3 * F * C)
        parameters = matrices + L * 2 * C + C
        let weightBytes = config.quant.storedBytesPerWeight
        let sharded = config.dist.shardOptimizer && world > 1
        let stateSize = config.optim.stateDtype.bytesPerParameter / (sharded ? Double(world) : 1)
        let zero2 = sharded && config.dist.shardGradients
        let gradientSize = Double(config.optim.gradDtype.size) / (zero2 ? Double(world) : 1)
        // The backend the run's compute path resolves to here (Model's decision) declares its needs.
        let needs = config.quant.compute.resolved(inputsAreCodes: config.quant.quantizesLayerInputs).kind.needs
        let window =
            zero2 || config.optim.gradDtype != .fp32
            ? 4 * GradientStore.plannedWindowFloats(m, blockRows: needs.gradientRows) : 0
        // Quantised weights are materialised a block at a time into scratch (the largest block
        // matrix, or the backend's row blocks beside its own scratch).
        let rows = Double(microBatch) * Double(m.seqLen), inner = Double(max(m.dim, m.hiddenDim))
        let scratch =
            config.quant.mode == .fp32
            ? 0
            : 4 * Scratch.plannedWeightFloats(config: m, blockRows: needs.weightBlockRows)
                + needs.scratchBytes(rows, inner)
        stateBytes = parameters * (weightBytes + gradientSize + stateSize) + window + scratch
        // The activation arena, counted view by view as Activations allocates it.
        let codes = needs.activationCodes
        activationBytes =
            4
            * Activations.floatCounts(
                config: m, B: microBatch, T: m.seqLen, keepsInputCodes: codes,
                recomputesBlocks: config.train.activationCheckpointing == .blocks
            )
            .reduce(0) { $0 + $1.1 }
    }

    /// This machine's physical memory.
    public static var physicalBytes: Double {
        Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Throws when the plan cannot fit `ranksPerNode` ranks in this machine's memory.
    public func check(ranksPerNode: Int) throws {
        let available = Self.physicalBytes
        let needed = totalBytes * Double(max(ranksPerNode, 1))
        guard needed < available else {
            throw QTrainError.config(
                String(
                    format:
                        "this run needs about %@ per rank (%@ parameters: %@ of weights, gradients and AdamW state, %@ of activations), %d rank(s) on a machine with %@",
                    formatBytes(needed / Double(max(ranksPerNode, 1))), formatCount(parameters),
                    formatBytes(stateBytes),
                    formatBytes(activationBytes), ranksPerNode, formatBytes(available)),
                hint: "lower model.dim, model.n_layers, model.vocab_size, model.seq_len or train.micro_batch")
        }
    }
}

private func formatBytes(_ b: Double) -> String {
    b > 9e18 ? String(format: "%.3g B", b) : QTrainCore.formatBytes(Int(b))
}
private func formatCount(_ n: Double) -> String {
    n > 9e18 ? String(format: "%.3g", n) : QTrainCore.formatCount(Int(n))
}
