import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainDist
import QTrainModel
import QTrainOptim

/// Where the token batches of training steps come from.
public protocol BatchSource: AnyObject {
    /// Fills `batch` sequences of tokens and their next-token targets (batch × T each) for
    /// micro-step `micro` of step `step` on this rank.
    func fill(
        tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, step: Int, micro: Int, batch: Int)
}

/// One optimizer step of one rank, and the only code that runs one: ``Trainer`` and
/// ``Benchmark`` both call ``run(_:)``, so a benchmark times exactly what training runs.
///
/// Forward/backward over `train.grad_accum` micro-batches into one gradient buffer (the last
/// micro-batch's gradient buckets are all-reduced while its backward runs — reduce-scattered
/// under ZeRO-1), then the mean loss over ranks, clipping of the global gradient norm, and the
/// update (of this rank's slice, followed by an all-gather of the weights, under ZeRO-1).
public final class TrainStep {
    /// What one step did, and how long each phase took.
    public struct Result: Sendable {
        /// Mean loss over micro-batches and ranks.
        public var loss: Double
        public var lr: Double
        /// Global gradient norm before clipping.
        public var gradNorm: Double
        public var codeChanges: CodeChangeStats
        /// Seconds in `forward`, `backward`, `communication` (waits, all-gathers, the loss
        /// reduction; only with more than one rank) and `optimizer` (norm, clipping, update).
        public var phases: [String: Double]
        /// Seconds ``GradientSynchronizer/finish()`` waited for the gradient buckets.
        public var communicationWait: Double
    }

    public let model: Model
    public let optimizer: Optimizer
    /// ZeRO-1's split of the optimizer state, when sharded.
    public let shards: ShardPlan?
    public let sync: GradientSynchronizer
    public let comm: Communicator
    public let schedule: LearningRateSchedule
    public let batches: BatchSource
    /// Sequences per forward pass on this rank.
    public let microBatch: Int
    public let gradAccum: Int
    let gradClip: Double
    let seed: UInt64
    let tokens: AlignedBuffer<Int32>
    let targets: AlignedBuffer<Int32>

    public init(
        config: RunConfig, model: Model, optimizer: Optimizer, shards: ShardPlan?, comm: Communicator,
        batches: BatchSource, microBatch: Int, ledger: MemoryLedger?
    ) {
        self.model = model
        self.optimizer = optimizer
        self.shards = shards
        self.comm = comm
        self.batches = batches
        self.microBatch = microBatch
        gradAccum = config.train.gradAccum
        gradClip = config.optim.gradClip
        seed = UInt64(config.train.seed)
        schedule = LearningRateSchedule(config.optim, totalSteps: config.train.steps)
        sync = GradientSynchronizer(
            comm: comm, gradients: model.gradients, bucketBytes: Int(config.dist.bucketMB * 1_048_576),
            mode: config.dist.overlap, shards: shards)
        let n = microBatch * model.config.seqLen
        tokens = AlignedBuffer(count: n, category: .activations, ledger: ledger)
        targets = AlignedBuffer(count: n, category: .activations, ledger: ledger)
    }

    /// Tokens one step consumes over all ranks.
    public var tokensPerStep: Int { comm.worldSize * microBatch * gradAccum * model.config.seqLen }

    /// Runs step `step` (0-based: the learning rate and the batches are those of step `step`).
    public func run(_ step: Int) throws -> Result {
        let B = microBatch, T = model.config.seqLen
        var clock = PhaseClock()
        model.zeroGradients()
        var loss = 0.0
        for micro in 0..<gradAccum {
            batches.fill(tokens: tokens.pointer, targets: targets.pointer, step: step, micro: micro, batch: B)
            clock.restart()
            loss += try model.forward(
                tokens: tokens.pointer, targets: targets.pointer, batch: B, length: T,
                gradScale: (1 / Float(gradAccum)) / Float(B * T))
            clock.lap("forward")
            if micro == gradAccum - 1 {
                sync.begin()
                model.onGradientsReady = { [sync] offset in try sync.ready(from: offset) }
            }
            defer { model.onGradientsReady = nil }
            let stream = RandomStream(seed: seed, purpose: .gradientRounding, tensor: comm.rank, step: step)
            model.backwardSeed = stream.word64(micro)
            model.gradients.roundingSeed = stream.word64(gradAccum + micro)
            try model.backward()
            clock.lap("backward")
        }
        // ZeRO-2's commits sum each gradient window onto its owner inside backward, blocking:
        // that time is communication, not computation.
        let committed = model.gradients.communicationSeconds
        if committed > 0 {
            clock.phases["backward", default: 0] -= committed
            clock.phases["communication", default: 0] += committed
        }
        try sync.finish()
        var losses = [loss / Double(gradAccum)]
        try comm.allReduceSum(&losses)
        let meanLoss = losses[0] / Double(comm.worldSize)
        clock.lap("communication")
        guard meanLoss.isFinite else {
            throw QTrainError(
                .numerics, "the training loss became \(meanLoss) at step \(step + 1)",
                hint: "lower optim.lr or raise optim.warmup_steps; run with --debug to find the first non-finite tensor"
            )
        }
        let toMean = 1 / Float(comm.worldSize), g = model.gradients
        let norm: Double
        if let shards {
            var sq = [g.squaredNorm(shards.ranges[comm.rank])]
            try comm.allReduceSum(&sq)
            norm = sq[0].squareRoot() * Double(toMean)
        } else {
            norm = g.squaredNorm().squareRoot() * Double(toMean)
        }
        let clip = GradientClipping.factor(norm: norm, maxNorm: gradClip)
        let lr = schedule(step)
        var changes = optimizer.update(
            weights: model.weights, gradients: g, gradScale: toMean * clip, lr: lr, seed: seed)
        clock.lap("optimizer")
        if let shards {
            try shards.allGather(model.weights, comm: comm)
            changes = try changes.summed(over: comm)
            clock.lap("communication")
        }
        if comm.worldSize == 1 { clock.phases["communication"] = nil }
        return Result(
            loss: meanLoss, lr: lr, gradNorm: norm, codeChanges: changes, phases: clock.phases,
            communicationWait: sync.lastWait + committed)
    }
}

/// Seconds per named phase, accumulated lap by lap.
struct PhaseClock {
    var phases: [String: Double] = [:]
    private var last = DispatchTime.now().uptimeNanoseconds

    mutating func restart() { last = DispatchTime.now().uptimeNanoseconds }

    /// Adds the time since the last lap (or restart) to `phase`.
    mutating func lap(_ phase: String) {
        let now = DispatchTime.now().uptimeNanoseconds
        phases[phase, default: 0] += Double(now - last) * 1e-9
        last = now
    }
}

extension CodeChangeStats {
    /// The counts of all ranks added up (each rank counted only its ZeRO-1 slice).
    func summed(over comm: Communicator) throws -> CodeChangeStats {
        let roles = ParameterRole.allCases
        var v = roles.map { Double(changed[$0, default: 0]) } + roles.map { Double(total[$0, default: 0]) }
        try comm.allReduceSum(&v)
        var out = CodeChangeStats()
        for (i, r) in roles.enumerated() where v[roles.count + i] > 0 {
            out.changed[r] = Int(v[i])
            out.total[r] = Int(v[roles.count + i])
        }
        return out
    }
}
