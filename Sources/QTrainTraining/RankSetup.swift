import QTrainCheckpoint
import QTrainCore
import QTrainModel
import QTrainOptim

/// The model, ZeRO split and optimizer of one rank as a run's config asks for them: the one
/// place that turns `optim.grad_dtype`, `optim.state_dtype`, `dist.shard_optimizer`,
/// `dist.shard_gradients` and `train.activation_checkpointing` into buffers (``Trainer`` and
/// ``Benchmark`` both build a rank this way).
package struct RankSetup {
    package let model: Model
    /// ZeRO-1's (and ZeRO-2's) split, when the optimizer state is sharded.
    package let shards: ShardPlan?
    package let optimizer: Optimizer
    /// The one training step over `batches`.
    package let stepper: TrainStep
    /// Sequences per forward pass on this rank, and threads per rank.
    package let microBatch: Int
    package let threads: Int

    /// Sets the rank's threads (``Threads/configure(requested:ranksOnNode:)``), checks that all
    /// ranks agree on `agreement` (the config, and the data when training) and that the
    /// memory plan fits the node, then builds the model, gradients, ZeRO split, optimizer and
    /// the step that feeds them from `batches` (given the micro-batch).
    package init(
        config: RunConfig, comm: Communicator, agreement: [RunAgreement.Item], ledger: MemoryLedger,
        batches: (_ microBatch: Int) -> BatchSource
    ) throws {
        threads = Threads.configure(requested: config.train.threads, ranksOnNode: comm.localSize)
        let batch = try config.train.microBatch(world: comm.worldSize)
        microBatch = batch
        try RunAgreement.check(agreement, comm: comm)
        try MemoryPlan(config, microBatch: batch, world: comm.worldSize).check(ranksPerNode: max(comm.localSize, 1))
        let layout = ParameterLayout(config.model)
        let shards =
            config.dist.shardOptimizer && comm.worldSize > 1
            ? ShardPlan(
                layout: layout, world: comm.worldSize, alignment: ShardPlan.alignment(for: config.optim.stateDtype))
            : nil
        let zero2 = config.dist.shardGradients ? shards : nil
        let needs = config.quant.compute.resolved(inputsAreCodes: config.quant.quantizesLayerInputs).kind.needs
        let gradients = GradientStore(
            dtype: config.optim.gradDtype, layoutCount: layout.count, shards: zero2,
            comm: zero2 == nil ? nil : comm,
            windowFloats: GradientStore.windowFloats(config.model, blockRows: needs.gradientRows),
            ledger: ledger)
        model = Model(
            config: config.model, quant: config.quant, batch: batch, ledger: ledger, gradients: gradients,
            recomputesBlocks: config.train.activationCheckpointing == .blocks)
        model.weights.initialize(seed: UInt64(config.train.seed), std: Float(config.model.initStd))
        self.shards = shards
        optimizer = Optimizer(
            config: config.optim, layout: model.layout, range: shards?.ranges[comm.rank], ledger: ledger)
        stepper = TrainStep(
            config: config, model: model, optimizer: optimizer, shards: shards, comm: comm, batches: batches(batch),
            microBatch: batch, ledger: ledger)
    }
}
