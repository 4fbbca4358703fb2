import Foundation
import QKernels
import QTrainCheckpoint
import QTrainCore
import QTrainData
import QTrainDist
import QTrainImport
import QTrainModel
import QTrainOptim

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
/// then ``run()`` composes the components — ``TrainStep`` runs each step; ``ReplicaMonitor``,
/// ``Validator``, ``MetricsLog`` and ``Checkpointer`` each decide when they are due — until
/// the last step or a scheduler's signal.
public final class Trainer {
    public let config: RunConfig
    public let options: TrainerOptions
    public let comm: Communicator
    public let ledger = MemoryLedger()
    public let model: Model
    public let optimizer: Optimizer
    /// Every source of the run's data (`data.dir`, or each directory of `data.mix`).
    public let data: TrainingData
    /// The first (with `data.dir` the only) source's training split.
    public var trainData: TokenDataset { data.sources[0].train }
    /// With a data mixture: the tokens drawn from each source so far.
    let tally: DataTally?
    public let console: Console
    /// The tokenizer the data was prepared with.
    let dataTokenizer: any Tokenizer
    public let runDirectory: URL
    /// Runs one optimizer step (the same code `bench` times).
    public let stepper: TrainStep
    public let validator: Validator
    public let replicas: ReplicaMonitor
    public let metrics: MetricsLog
    public let divergence: DivergenceWatch
    /// Writes and finds this run's checkpoints.
    public let checkpointer: Checkpointer
    /// What a checkpoint holds besides ``progress``.
    let checkpointed: [CheckpointComponent]
    /// Steps done and tokens seen: the next step to run is `progress.step`.
    public private(set) var progress = TrainProgress(step: 0, tokensSeen: 0)

    /// The next step to run.
    public var step: Int { progress.step }
    /// Sequences per forward pass on this rank.
    public var microBatch: Int { stepper.microBatch }
    /// ZeRO-1's split of the optimizer state, when sharded.
    public var shards: ShardPlan? { stepper.shards }
    /// Tokens one optimizer step consumes over all ranks.
    public var tokensPerStep: Int { stepper.tokensPerStep }

    /// Builds every component; prints the set-up and the memory table on rank 0.
    public init(
        config: RunConfig, communicator: Communicator = SingleProcessCommunicator(),
        options: TrainerOptions = TrainerOptions()
    ) throws {
        self.config = config
        self.options = options
        comm = communicator
        let console = Console(enabled: communicator.rank == 0, mode: config.log.progress)
        self.console = console
        runDirectory = URL(fileURLWithPath: config.train.outDir)
        let T = config.model.seqLen

        let data = try TrainingData(config: config.data, seqLen: T)
        self.data = data
        let tokenizer = data.tokenizer
        guard data.vocabSize <= config.model.vocabSize else {
            throw QTrainError.config(
                "the data in \(config.data.firstDirectory) has a vocabulary of \(data.vocabSize), larger than model.vocab_size = \(config.model.vocabSize)",
                hint: "set model.vocab_size to at least \(data.vocabSize)")
        }
        let sampler = data.sampler(seed: UInt64(config.train.seed)), rankIndex = comm.rank, world = comm.worldSize
        let rank = try RankSetup(
            config: config, comm: comm,
            agreement: RunAgreement.items(config: config, splits: Self.agreedSplits(data)),
            ledger: ledger,
            batches: { _ in
                DatasetBatches(data.sources.map(\.train), sampler: sampler, rank: rankIndex, world: world)
            })
        (model, optimizer, stepper) = (rank.model, rank.optimizer, rank.stepper)
        let shards = rank.shards, B = rank.microBatch, threads = rank.threads
        let cores = Threads.availableCores, perNode = max(comm.localSize, 1)
        validator = Validator(
            data: data, sequences: config.train.evalSequences, every: config.train.evalEvery,
            lastStep: config.train.steps, model: model, comm: comm, batch: B, ledger: ledger)
        replicas = ReplicaMonitor(
            weights: model.weights, replicatedOptimizer: shards == nil ? optimizer : nil, comm: comm,
            config: config.dist, debug: options.debug, lastStep: config.train.steps, log: console.line)
        metrics = MetricsLog(
            console: console, every: config.log.every, lastStep: config.train.steps,
            tokensPerStep: stepper.tokensPerStep, world: comm.worldSize)
        divergence = DivergenceWatch(quant: config.quant, debug: options.debug, log: console.line)
        tally =
            data.isMixture
            ? DataTally(
                names: data.sources.map(\.name), sampler: sampler, sequencesPerStep: stepper.tokensPerStep / T,
                seqLen: T) : nil
        metrics.tally = tally
        dataTokenizer = tokenizer
        checkpointer = Checkpointer(run: runDirectory, config: config.checkpoint, comm: comm)
        checkpointed = [
            WeightsCheckpoint(model.weights), TokenizerCheckpoint(dataDirectory: data.sources[0].directory),
            OptimizerCheckpoint(optimizer, sharded: shards != nil)
        ]
        if options.debug { installDebugChecks() }

        console.line(
            "qtrain: \(config.policyLabel), \(formatCount(model.layout.count)) parameters "
                + "(\(config.model.summary(contextLength: T)))")
        console.line(
            "batch: \(world) rank\(world == 1 ? "" : "s") × \(B) sequences × \(config.train.gradAccum) accumulation"
                + " = \(world * B * config.train.gradAccum) sequences of \(T) tokens per step; \(threads) thread\(threads == 1 ? "" : "s") per rank (OpenBLAS \(BLASCore.name)); \(comm.name)"
        )
        if let notice = model.computeNotice { console.line(notice) }
        if config.quant.compute != .fp32 { console.line("compute: \(model.backend.name)") }
        if perNode * threads > cores {
            console.line("warning: \(perNode) ranks × \(threads) threads on \(cores) cores: the node is oversubscribed")
        }
        if world > 1 {
            console.line(
                "data parallel: gradient buckets of \(config.dist.bucketMB) MB, overlap \(stepper.sync.mode.rawValue)"
                    + (shards == nil
                        ? ""
                        : config.dist.shardGradients
                            ? ", ZeRO-2 optimizer and gradient sharding" : ", ZeRO-1 optimizer sharding")
                    + ", replica check every \(config.dist.checkEvery) steps")
        }
        console.line(Self.dataLine(data))
        console.line(MemoryReport.table(ledger, parameters: model.layout.count, title: config.policyLabel))
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
                throw QTrainError(
                    .checkpoint,
                    "run directory \(runDirectory.path) already holds checkpoints and checkpoint.resume is false",
                    hint: "resume (checkpoint.resume: true) or choose another train.out_dir")
            }
        }
        guard let (dir, state) = found else {
            if !config.train.initFrom.isEmpty { try initializeFromPretrained() }
            return false
        }
        let (saved, progress) = try checkpointer.restore(checkpointed, from: dir, state: state, config: config)
        self.progress = progress
        tally?.count(upTo: step)
        if saved.data != config.data {
            console.line(
                "notice: the checkpoint was trained on \(Self.describe(saved.data)), this run reads \(Self.describe(config.data)); training continues on the new data"
            )
        }
        if saved.optim.stateDtype != config.optim.stateDtype {
            console.line(
                "optimizer state converted from \(saved.optim.stateDtype.rawValue) to \(config.optim.stateDtype.rawValue)"
            )
        }
        console.line(
            "resumed from \(dir.path) at step \(step) (saved by \(state.worldSize) rank\(state.worldSize == 1 ? "" : "s"), \(formatCount(state.tokensSeen)) tokens seen)"
        )
        return true
    }

    /// A fresh run with `train.init_from`: every rank sets its weights from the pretrained model
    /// (a deterministic conversion, so replicas agree), checked to have this run's shape and
    /// the tokenizer the data was prepared with. The optimizer and schedule start fresh.
    func initializeFromPretrained() throws {
        let t = Date()
        let source = try PretrainedModel.open(config.train.initFrom)
        try source.checkMatches(config.model)
        let theirs = try source.tokenizer()
        guard theirs.identity == dataTokenizer.identity else {
            throw QTrainError.data(
                "the data in \(config.data.firstDirectory) was tokenized with \(dataTokenizer.identity), not with \(source.url.lastPathComponent)'s tokenizer (\(theirs.identity))",
                hint: "prepare the data with `qtrain-dist prepare --tokenizer \(source.url.path) --out DIR`")
        }
        let tensors = try source.load(into: model.weights, scale: config.train.initScale)
        let worst = tensors.max { $0.relativeError < $1.relativeError }
        let mean = tensors.reduce(0) { $0 + $1.relativeError } / Double(max(tensors.count, 1))
        console.line(
            "initialised from \(source.url.path) (\(source.summary)) in \(String(format: "%.1f", Date().timeIntervalSince(t))) s: "
                + String(
                    format: "relative error of the weights as %@ holds them: mean %.4f, largest %.4f (%@)",
                    config.policyLabel, mean, worst?.relativeError ?? 0, worst?.name ?? "-"))
    }

    /// Checks the replicas, then writes a checkpoint of the current step.
    func saveCheckpoint() throws {
        try replicas.check(at: step)
        let t = Date()
        let dir = try checkpointer.save(
            progress, components: checkpointed, config: config, optimizerStep: optimizer.step,
            fingerprint: ReplicaCheck.fingerprint(model.weights))
        console.line(String(format: "checkpoint %@ written in %.1f s", dir.path, Date().timeIntervalSince(t)))
    }

    // MARK: - The loop

    /// Runs step ``step`` and counts it done.
    @discardableResult
    public func trainStep() throws -> TrainStep.Result {
        let result = try stepper.run(step)
        tally?.count(upTo: step + 1)
        progress.step += 1
        progress.tokensSeen += tokensPerStep
        return result
    }

    /// Trains from ``step`` to `train.steps`; stops early, at a step boundary agreed by all
    /// ranks, on SIGTERM, SIGUSR1 or a first SIGINT (or after `--stop-at`), always with a checkpoint.
    public func run() throws -> TrainingSummary {
        qk_install_stop_handlers()
        try prepareRunDirectory()
        let total = config.train.steps
        let watchdog =
            comm.worldSize > 1 && config.dist.timeoutS > 0
            ? Watchdog(timeout: config.dist.timeoutS, rank: comm.rank, world: comm.worldSize, run: runDirectory) : nil
        watchdog?.start()
        defer { watchdog?.stop() }
        func entering(_ phase: String) { watchdog?.beat(step: step + 1, phase: phase) }
        if step == 0 {
            entering("the first replica check and validation")
            try replicas.check(at: 0)
            let initial = try validator.run(after: 0)
            metrics.initial(validation: initial)
            divergence.start(reference: initial.loss)
            // A run of no steps saves its starting point (an imported model, to eval, generate
            // or export as it is).
            if total == 0 { try saveCheckpoint() }
        }
        metrics.startClock()
        let started = Date()
        var lastLoss = Double.nan, stop: StopReason?
        while step < total && stop == nil {
            entering("the training step")
            let t0 = Date()
            let result = try trainStep()
            lastLoss = result.loss
            let seconds = Date().timeIntervalSince(t0)
            injectDesyncIfAsked()
            try divergence.check(step: step, result)
            watchdog?.beat(step: step, phase: "the replica check, stop agreement and validation")
            if replicas.isDue(step: step) { try replicas.check(at: step) }
            let agreed = try agreedFlags()
            stop = agreed.signal.map(StopReason.signal) ?? (options.stopAt == step ? .asked : nil)
            let val = validator.isDue(step: step) ? try validator.run(after: step) : nil
            if metrics.record(
                step: step, result, seconds: seconds, validation: val, stopping: stop?.isSignal ?? false),
                options.debug
            {
                try logBlockGradientNorms()
            }
            if checkpointer.shouldSave(step: step, lastStep: total, stopping: stop != nil) || agreed.checkpointByTime {
                watchdog?.beat(step: step, phase: "the checkpoint")
                try saveCheckpoint()
            }
        }
        if let stop { console.line(stop.message(step: step)) }
        return try finish(started: started, lastLoss: lastLoss, stop: stop)
    }

    /// Why a run stopped before its last step.
    enum StopReason {
        case signal(Int32)
        case asked

        var isSignal: Bool { if case .signal = self { return true } else { return false } }

        func message(step: Int) -> String {
            switch self {
            case .signal(let s):
                return "stopping after step \(step) on signal \(s) (all ranks agreed); resume from the checkpoint"
            case .asked: return "stopping after step \(step) as asked (--stop-at); resume to continue"
            }
        }
    }

    private func finish(started: Date, lastLoss: Double, stop: StopReason?) throws -> TrainingSummary {
        let elapsed = Date().timeIntervalSince(started)
        if step >= config.train.steps && comm.rank == 0 {
            // Batch scripts loop on requeue until this file appears.
            try? "step \(step)\n".write(
                to: runDirectory.appendingPathComponent("DONE"), atomically: true, encoding: .utf8)
        }
        let fingerprint = ReplicaCheck.fingerprint(model.weights)
        try reportMemoryPerRank()
        print(String(format: "fingerprint %016llx", fingerprint))
        var signal: Int32?
        if case .signal(let s) = stop { signal = s }
        return TrainingSummary(
            steps: step, finalLoss: lastLoss, finalValLoss: validator.state.lastLoss,
            firstValLoss: validator.state.firstLoss,
            tokensPerSecond: elapsed > 0 ? Double(tokensPerStep * max(step, 1)) / elapsed : 0,
            peakResidentBytes: MemoryReport.peakResidentBytes(), fingerprint: fingerprint,
            stoppedBySignal: signal, communicationShare: metrics.state.communicationShare)
    }

    private func injectDesyncIfAsked() {
        if let inject = options.injectDesync, inject.step == step, inject.rank == comm.rank {
            ReplicaCheck.corrupt(model.weights)
        }
    }

    private func prepareRunDirectory() throws {
        if comm.rank == 0 {
            if step < config.train.steps {
                try? FileManager.default.removeItem(at: runDirectory.appendingPathComponent("DONE"))
            }
            do {
                try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
                try config.yaml().write(
                    to: runDirectory.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
            } catch {
                throw QTrainError(
                    .io, "cannot write to run directory \(runDirectory.path): \(error.localizedDescription)",
                    hint: "set train.out_dir to a writable directory")
            }
        }
        try metrics.open(
            runDirectory.appendingPathComponent("metrics.jsonl"), append: step > 0, enabled: comm.rank == 0,
            tensorboardDirectory: config.log.tensorboard ? runDirectory.appendingPathComponent("tensorboard") : nil)
    }

    /// Mean validation loss now (collective).
    public func evaluate() throws -> Double { try validator.run(after: step).loss }

    /// What the ranks agree on after each step, in one collective: a stop signal (SIGTERM,
    /// SIGUSR1, SIGINT) any rank received, and whether any rank's clock says a checkpoint is
    /// due (`checkpoint.every_minutes`).
    private func agreedFlags() throws -> (signal: Int32?, checkpointByTime: Bool) {
        var flags = [Double(qk_stop_requested()), checkpointer.isDueByTime ? 1 : 0]
        try comm.allReduceMax(&flags)
        return (flags[0] > 0 ? Int32(flags[0]) : nil, flags[1] > 0)
    }

    /// Rank 0 prints each rank's memory: its table total and its peak RSS.
    private func reportMemoryPerRank() throws {
        var table = [Double](repeating: 0, count: 2 * comm.worldSize)
        table[2 * comm.rank] = Double(ledger.totalBytes)
        table[2 * comm.rank + 1] = Double(MemoryReport.peakResidentBytes())
        try comm.allReduceSum(&table)
        for r in 0..<comm.worldSize {
            console.line(
                "rank \(r): memory table \(formatBytes(Int(table[2 * r]))), peak RSS \(formatBytes(Int(table[2 * r + 1])))"
            )
        }
    }
}

/// Training batches sampled from the training splits of a run's sources (stateless: the step
/// is the cursor).
final class DatasetBatches: BatchSource {
    let sets: [TokenDataset]
    let sampler: MixtureSampler
    let rank: Int, world: Int

    init(_ sets: [TokenDataset], sampler: MixtureSampler, rank: Int, world: Int) {
        self.sets = sets
        self.sampler = sampler
        self.rank = rank
        self.world = world
    }

    /// One data directory sampled as ``BatchSampler`` draws.
    convenience init(_ data: TokenDataset, sampler: BatchSampler, rank: Int, world: Int) {
        self.init([data], sampler: MixtureSampler(seed: sampler.seed, weights: [1]), rank: rank, world: world)
    }

    func fill(
        tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, step: Int, micro: Int, batch: Int
    ) {
        sampler.fill(
            tokens: tokens, targets: targets, from: sets, step: step, micro: micro, rank: rank, world: world,
            batch: batch)
    }
}
