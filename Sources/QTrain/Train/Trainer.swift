import Foundation
import QKernels

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalLoss: Double
    public var finalValLoss: Double?
    public var firstValLoss: Double?
    public var tokensPerSecond: Double
    public var peakResidentBytes: Int
    /// The fingerprint of this rank's weights at the end.
    public var fingerprint: UInt64
    /// The signal that stopped the run early, if any.
    public var stoppedBySignal: Int32?
    /// Mean share of step time spent waiting for gradient communication.
    public var communicationShare: Double
}

/// The training loop of one rank (nanoGPT's train.py as a type): set up from a ``RunConfig``,
/// then ``run()`` loops { ``trainStep(_:)``, evaluate when due, check replicas when due, log }
/// until the last step or a scheduler's signal.
public final class Trainer {
    public let config: RunConfig
    public let options: TrainerOptions
    public let comm: Communicator
    public let ledger = MemoryLedger()
    public let model: Model
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    public let trainData: TokenDataset
    public let valData: TokenDataset
    public let console: Console
    public let runDirectory: URL
    /// Sequences per forward pass on this rank.
    public let microBatch: Int
    /// ZeRO-1's split of the optimizer state, when sharded.
    public let shards: ShardPlan?
    let sync: GradientSynchronizer
    /// Writes and finds this run's checkpoints.
    public let checkpointer: Checkpointer
    let sampler: BatchSampler
    let tokens: AlignedBuffer<Int32>
    let targets: AlignedBuffer<Int32>
    let evalWindows: [Int]
    private var metrics: MetricsWriter?
    /// The next step to run.
    public internal(set) var step = 0

    /// Builds every component; prints the set-up and the memory table on rank 0.
    public init(config: RunConfig, communicator: Communicator = SingleProcessCommunicator(),
                options: TrainerOptions = TrainerOptions()) throws {
        self.config = config
        self.options = options
        comm = communicator
        console = Console(enabled: communicator.rank == 0, mode: config.log.progress)
        runDirectory = URL(fileURLWithPath: config.train.outDir)
        let cores = Threads.availableCores, perNode = max(comm.localSize, 1)
        let threads = config.train.threads > 0 ? config.train.threads : max(1, cores / perNode)
        Threads.configure(threads)
        microBatch = try config.train.microBatch(world: comm.worldSize)

        let T = config.model.seqLen, B = microBatch
        let dataDir = URL(fileURLWithPath: config.data.dir)
        trainData = try TokenDataset(directory: dataDir, split: "train", seqLen: T)
        valData = try TokenDataset(directory: dataDir, split: "val", seqLen: T)
        guard trainData.vocabSize <= config.model.vocabSize else {
            throw QTrainError.config(
                "the data in \(dataDir.path) has a vocabulary of \(trainData.vocabSize), larger than model.vocab_size = \(config.model.vocabSize)",
                hint: "set model.vocab_size to at least \(trainData.vocabSize)")
        }
        model = Model(config: config.model, quant: config.quant, batch: B, ledger: ledger)
        model.weights.initialize(seed: UInt64(config.train.seed), std: Float(config.model.initStd))
        shards = config.dist.shardOptimizer && comm.worldSize > 1 ? ShardPlan(layout: model.layout, world: comm.worldSize) : nil
        optimizer = Optimizer(config: config.optim, layout: model.layout, range: shards?.ranges[comm.rank], ledger: ledger)
        schedule = LearningRateSchedule(config.optim, totalSteps: config.train.steps)
        sampler = BatchSampler(seed: UInt64(config.train.seed))
        tokens = AlignedBuffer(count: B * T, category: .activations, ledger: ledger)
        targets = AlignedBuffer(count: B * T, category: .activations, ledger: ledger)
        evalWindows = evaluationWindows(valData, count: config.train.evalSequences)
        sync = GradientSynchronizer(comm: comm, gradients: model.gradients.pointer, count: model.layout.count,
                                    bucketBytes: Int(config.dist.bucketMB * 1_048_576), mode: config.dist.overlap, shards: shards)
        checkpointer = Checkpointer(run: runDirectory, config: config.checkpoint, comm: comm)
        if options.debug { installDebugChecks() }

        let world = comm.worldSize
        console.line("qtrain: \(config.policyLabel), \(formatCount(model.layout.count)) parameters "
            + "(d \(config.model.dim), \(config.model.nLayers) layers, \(config.model.nHeads) heads, "
            + "ffn \(config.model.hiddenDim), vocab \(config.model.vocabSize), context \(T))")
        console.line("batch: \(world) rank\(world == 1 ? "" : "s") × \(B) sequences × \(config.train.gradAccum) accumulation"
            + " = \(world * B * config.train.gradAccum) sequences of \(T) tokens per step; \(threads) thread\(threads == 1 ? "" : "s") per rank (OpenBLAS \(BLASCore.name)); \(comm.name)")
        if perNode * threads > cores {
            console.line("warning: \(perNode) ranks × \(threads) threads on \(cores) cores: the node is oversubscribed")
        }
        if world > 1 {
            console.line("data parallel: gradient buckets of \(config.dist.bucketMB) MB, overlap \(sync.mode.rawValue)"
                + (shards != nil ? ", ZeRO-1 optimizer sharding" : "") + ", replica check every \(config.dist.checkEvery) steps")
        }
        console.line("data: \(formatCount(trainData.tokenCount)) train tokens, \(formatCount(valData.tokenCount)) validation tokens in \(dataDir.path)")
        console.line(MemoryReport.table(ledger, parameters: model.layout.count, title: config.policyLabel))
    }

    /// Tokens one optimizer step consumes over all ranks.
    public var tokensPerStep: Int {
        comm.worldSize * microBatch * config.train.gradAccum * config.model.seqLen
    }

    // MARK: - Resuming

    /// Resumes from `explicit` (which must be a valid checkpoint) or, with `checkpoint.resume`,
    /// from the run directory's newest valid checkpoint. Returns whether it resumed.
    @discardableResult
    public func resume(from explicit: URL? = nil) throws -> Bool {
        let found: (URL, CheckpointState)?
        if explicit != nil || config.checkpoint.resume {
            found = try checkpointer.locate(explicit: explicit, log: console.line)
        } else {
            found = nil
            if !Checkpointer.candidates(in: runDirectory).isEmpty {
                throw QTrainError(.checkpoint, "run directory \(runDirectory.path) already holds checkpoints and checkpoint.resume is false",
                                  hint: "resume (checkpoint.resume: true) or choose another train.out_dir")
            }
        }
        guard let (dir, state) = found else { return false }
        let saved = try checkpointer.restore(self, from: dir, state: state)
        if saved.optim.stateDtype != config.optim.stateDtype {
            console.line("optimizer state converted from \(saved.optim.stateDtype.rawValue) to \(config.optim.stateDtype.rawValue)")
        }
        console.line("resumed from \(dir.path) at step \(step) (saved by \(state.worldSize) rank\(state.worldSize == 1 ? "" : "s"), \(formatCount(state.tokensSeen)) tokens seen)")
        return true
    }

    /// Checks the replicas, then writes a checkpoint of the current step.
    func saveCheckpoint() throws {
        try checkReplicas(at: step)
        let t = Date()
        let dir = try checkpointer.save(self)
        console.line(String(format: "checkpoint %@ written in %.1f s", dir.path, Date().timeIntervalSince(t)))
    }

    // MARK: - The loop

    /// Trains from ``step`` to `train.steps`, evaluating, checking replicas and logging as
    /// configured; stops early, at a step boundary agreed by all ranks, on SIGTERM or SIGUSR1.
    public func run() throws -> TrainingSummary {
        qk_install_stop_handlers()
        try prepareRunDirectory()
        let total = config.train.steps
        var firstVal: Double?, lastVal: Double?, lastLoss = Double.nan, stopSignal: Int32?
        if step == 0 {
            try checkReplicas(at: 0)
            firstVal = try evaluate()
            console.line(String(format: "step %d | val loss %.4f", 0, firstVal!))
            metrics?.write(["step": 0, "val_loss": firstVal!])
        }
        let started = Date()
        var window = (start: Date(), tokens: 0, waits: 0.0, seconds: 0.0), rate = 0.0, commShare = 0.0
        while step < total {
            let t0 = Date()
            let result = try trainStep(step)
            step += 1
            lastLoss = result.loss
            window.tokens += tokensPerStep
            window.waits += sync.lastWait
            window.seconds += Date().timeIntervalSince(t0)
            if let inject = options.injectDesync, inject.step == step, inject.rank == comm.rank {
                ReplicaCheck.corrupt(model.weights)
            }
            if options.debug || (config.dist.checkEvery > 0 && step % config.dist.checkEvery == 0) || step == total {
                try checkReplicas(at: step)
            }
            let signal = try agreedStopSignal()
            let logDue = step % config.log.every == 0 || step == total || signal != nil
            let evalDue = (config.train.evalEvery > 0 && step % config.train.evalEvery == 0) || step == total
            var record: [String: Any] = [
                "step": step, "loss": result.loss, "lr": result.lr, "grad_norm": result.gradNorm,
                "elapsed_s": Date().timeIntervalSince(started), "step_s": Date().timeIntervalSince(t0),
            ]
            if logDue || evalDue {
                let now = Date()
                rate = Double(window.tokens) / max(now.timeIntervalSince(window.start), 1e-9)
                commShare = window.waits / max(window.seconds, 1e-9)
                window = (now, 0, 0, 0)
                record["tokens_per_s"] = rate
                if comm.worldSize > 1 { record["comm_wait_share"] = commShare }
            }
            if let f = result.codeChanges.fraction {
                record["code_change"] = f
                record["code_change_by_role"] = Dictionary(
                    uniqueKeysWithValues: result.codeChanges.fractionByRole.map { ($0.key.rawValue, $0.value) })
            }
            if evalDue {
                lastVal = try evaluate()
                record["val_loss"] = lastVal!
            }
            if logDue || evalDue {
                record["rss_bytes"] = MemoryReport.residentBytes()
                metrics?.write(record)
                console.progress(progressLine(result, rate: rate, val: evalDue ? lastVal : nil), permanent: evalDue || step == total)
                if options.debug { try logBlockGradientNorms() }
            }
            let stopHere = options.stopAt == step
            if checkpointer.isDue(step: step) || step == total || signal != nil || stopHere { try saveCheckpoint() }
            if stopHere && signal == nil {
                console.line("stopping after step \(step) as asked (--stop-at); resume to continue")
                break
            }
            if let signal {
                stopSignal = signal
                console.line("stopping after step \(step) on signal \(signal) (all ranks agreed); resume from the checkpoint")
                break
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        if step >= total && comm.rank == 0 {
            // Batch scripts loop on requeue until this file appears.
            try? "step \(step)\n".write(to: runDirectory.appendingPathComponent("DONE"), atomically: true, encoding: .utf8)
        }
        let fingerprint = ReplicaCheck.fingerprint(model.weights)
        try reportMemoryPerRank()
        print(String(format: "fingerprint %016llx", fingerprint))
        return TrainingSummary(
            steps: step, finalLoss: lastLoss, finalValLoss: lastVal, firstValLoss: firstVal,
            tokensPerSecond: elapsed > 0 ? Double(tokensPerStep * max(step, 1)) / elapsed : 0,
            peakResidentBytes: MemoryReport.peakResidentBytes(), fingerprint: fingerprint,
            stoppedBySignal: stopSignal, communicationShare: commShare)
    }

    private func prepareRunDirectory() throws {
        if comm.rank == 0 {
            if step < config.train.steps { try? FileManager.default.removeItem(at: runDirectory.appendingPathComponent("DONE")) }
            do {
                try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
                try config.yaml().write(to: runDirectory.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
            } catch {
                throw QTrainError(.io, "cannot write to run directory \(runDirectory.path): \(error.localizedDescription)",
                                  hint: "set train.out_dir to a writable directory")
            }
        }
        metrics = try MetricsWriter(url: runDirectory.appendingPathComponent("metrics.jsonl"), append: step > 0,
                                    enabled: comm.rank == 0)
    }

    private func progressLine(_ r: StepResult, rate: Double, val: Double?) -> String {
        let total = config.train.steps
        let eta = Double(total - step) * Double(tokensPerStep) / max(rate, 1e-9)
        var text = String(format: "step %d/%d | loss %.4f | lr %.2e | grad %.3f | %@ tok/s | ETA %@",
                          step, total, r.loss, r.lr, r.gradNorm, formatCount(Int(rate)), formatDuration(eta))
        if let f = r.codeChanges.fraction { text += String(format: " | changed %.4f%%", 100 * f) }
        if let val { text += String(format: " | val loss %.4f", val) }
        return text
    }

    /// Any rank's pending SIGTERM/SIGUSR1, agreed by all ranks at this step boundary.
    private func agreedStopSignal() throws -> Int32? {
        var flag = [Double(qk_stop_requested())]
        try comm.allReduceMax(&flag)
        return flag[0] > 0 ? Int32(flag[0]) : nil
    }

    /// Rank 0 prints each rank's memory: its table total and its peak RSS.
    private func reportMemoryPerRank() throws {
        var table = [Double](repeating: 0, count: 2 * comm.worldSize)
        table[2 * comm.rank] = Double(ledger.totalBytes)
        table[2 * comm.rank + 1] = Double(MemoryReport.peakResidentBytes())
        try comm.allReduceSum(&table)
        for r in 0..<comm.worldSize {
            console.line("rank \(r): memory table \(formatBytes(Int(table[2 * r]))), peak RSS \(formatBytes(Int(table[2 * r + 1])))")
        }
    }
}
