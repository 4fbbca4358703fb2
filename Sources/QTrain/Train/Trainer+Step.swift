import Foundation
import QKernels

extension Trainer {
    /// One optimizer step's results.
    public struct StepResult: Sendable {
        public var loss: Double
        public var lr: Double
        public var gradNorm: Double
        public var codeChanges: CodeChangeStats
    }

    /// Forward/backward over `grad_accum` micro-batches (the last one's gradient buckets are
    /// all-reduced while backward runs — reduce-scattered under ZeRO-1), then clipping and the
    /// update (of this rank's slice, followed by an all-gather of the weights, under ZeRO-1).
    public func trainStep(_ step: Int) throws -> StepResult {
        let B = microBatch, T = config.model.seqLen, accum = config.train.gradAccum
        model.zeroGradients()
        var loss = 0.0
        for micro in 0..<accum {
            sampler.fill(tokens: tokens.pointer, targets: targets.pointer, from: trainData, step: step, micro: micro,
                         rank: comm.rank, world: comm.worldSize, batch: B)
            if micro == accum - 1 {
                sync.begin()
                model.onGradientsReady = { [sync] offset in try sync.ready(from: offset) }
            }
            defer { model.onGradientsReady = nil }
            loss += try model.forwardBackward(tokens: tokens.pointer, targets: targets.pointer, batch: B, length: T,
                                              lossScale: 1 / Float(accum))
        }
        let n = model.layout.count, g = model.gradients.pointer
        try sync.finish()
        var losses = [loss / Double(accum)]
        try comm.allReduceSum(&losses)
        let meanLoss = losses[0] / Double(comm.worldSize)
        guard meanLoss.isFinite else {
            throw QTrainError(.numerics, "the training loss became \(meanLoss) at step \(step + 1)",
                              hint: "lower optim.lr or raise optim.warmup_steps; run with --debug to find the first non-finite tensor")
        }
        let toMean = 1 / Float(comm.worldSize)
        let norm: Double
        if let shards {
            let mine = shards.ranges[comm.rank]
            var sq = [pow(GradientClipping.norm(g + mine.lowerBound, count: mine.count), 2)]
            try comm.allReduceSum(&sq)
            norm = sq[0].squareRoot() * Double(toMean)
        } else {
            norm = GradientClipping.norm(g, count: n, scale: toMean)
        }
        let clip = GradientClipping.factor(norm: norm, maxNorm: config.optim.gradClip)
        let lr = schedule(step)
        var changes = optimizer.update(weights: model.weights, gradients: g, gradScale: toMean * clip, lr: lr,
                                       seed: UInt64(config.train.seed))
        if let shards {
            try shards.allGather(model.weights, comm: comm)
            changes = try changes.summed(over: comm)
        }
        return StepResult(loss: meanLoss, lr: lr, gradNorm: norm, codeChanges: changes)
    }

    /// Mean loss over the fixed validation windows (split among ranks).
    public func evaluate() throws -> Double {
        let T = config.model.seqLen
        let mine = stride(from: comm.rank, to: evalWindows.count, by: comm.worldSize).map { evalWindows[$0] }
        var sum = 0.0
        for start in stride(from: 0, to: mine.count, by: microBatch) {
            let n = min(microBatch, mine.count - start)
            for b in 0..<n {
                valData.window(mine[start + b], tokens: tokens.pointer + b * T, targets: targets.pointer + b * T)
            }
            sum += try model.loss(tokens: tokens.pointer, targets: targets.pointer, batch: n, length: T) * Double(n)
        }
        var totals = [sum, Double(mine.count)]
        try comm.allReduceSum(&totals)
        return totals[0] / max(totals[1], 1)
    }

    /// Compares the replicas; on a mismatch stops with a message, or with `on_desync: resync`
    /// copies rank 0's state to every rank.
    func checkReplicas(at step: Int) throws {
        guard comm.worldSize > 1, let mismatch = try ReplicaCheck.compare(model.weights, comm: comm, step: step) else { return }
        switch config.dist.onDesync {
        case .stop:
            throw QTrainError(.distributed, mismatch.description,
                              hint: "set dist.on_desync: resync to copy rank 0's weights instead; check that every rank runs the same build on the same CPU type")
        case .resync:
            try ReplicaCheck.resynchronize(model.weights, optimizer: shards == nil ? optimizer : nil, comm: comm)
            console.line("resynchronised: \(mismatch.description); copied rank 0's weights to every rank")
            if let again = try ReplicaCheck.compare(model.weights, comm: comm, step: step) {
                throw QTrainError(.distributed, "resynchronisation failed: \(again.description)")
            }
        }
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
