import Foundation

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalLoss: Double
    public var finalValLoss: Double?
    public var firstValLoss: Double?
    public var tokensPerSecond: Double
    public var peakResidentBytes: Int
}

/// The training loop of one rank (nanoGPT's train.py as a type): set up from a ``RunConfig``,
/// then `run()` loops { ``trainStep(_:)``, evaluate when due, log } until the last step.
public final class Trainer {
    public let config: RunConfig
    public let comm: Communicator
    public let ledger = MemoryLedger()
    public let model: Model
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    public let trainData: TokenDataset
    public let valData: TokenDataset
    public let console: Console
    public let runDirectory: URL
    private let sampler: BatchSampler
    private let tokens: AlignedBuffer<Int32>
    private let targets: AlignedBuffer<Int32>
    private let evalWindows: [Int]
    private var metrics: MetricsWriter?
    /// The next step to run.
    public private(set) var step = 0

    /// Builds every component; prints the set-up and the memory table on rank 0.
    public init(config: RunConfig, communicator: Communicator = SingleProcessCommunicator()) throws {
        self.config = config
        comm = communicator
        console = Console(enabled: communicator.rank == 0, mode: config.log.progress)
        runDirectory = URL(fileURLWithPath: config.train.outDir)
        let threads = config.train.threads > 0
            ? config.train.threads : max(1, Threads.availableCores / max(communicator.localSize, 1))
        Threads.configure(threads)

        let T = config.model.seqLen, B = config.train.microBatch
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
        optimizer = Optimizer(config: config.optim, layout: model.layout, ledger: ledger)
        schedule = LearningRateSchedule(config.optim, totalSteps: config.train.steps)
        sampler = BatchSampler(seed: UInt64(config.train.seed))
        tokens = AlignedBuffer(count: B * T, category: .activations, ledger: ledger)
        targets = AlignedBuffer(count: B * T, category: .activations, ledger: ledger)
        evalWindows = evaluationWindows(valData, count: config.train.evalSequences)

        let world = comm.worldSize
        console.line("qtrain: \(config.quant.label), \(formatCount(model.layout.count)) parameters "
            + "(d \(config.model.dim), \(config.model.nLayers) layers, \(config.model.nHeads) heads, "
            + "ffn \(config.model.hiddenDim), vocab \(config.model.vocabSize), context \(T))")
        console.line("batch: \(world) rank\(world == 1 ? "" : "s") × \(B) sequences × \(config.train.gradAccum) accumulation"
            + " = \(world * B * config.train.gradAccum) sequences of \(T) tokens per step; \(threads) thread\(threads == 1 ? "" : "s") per rank (OpenBLAS \(BLASCore.name)); \(comm.name)")
        console.line("data: \(formatCount(trainData.tokenCount)) train tokens, \(formatCount(valData.tokenCount)) validation tokens in \(dataDir.path)")
        console.line(MemoryReport.table(ledger, parameters: model.layout.count, title: config.quant.label))
    }

    /// Tokens one optimizer step consumes over all ranks.
    public var tokensPerStep: Int {
        comm.worldSize * config.train.microBatch * config.train.gradAccum * config.model.seqLen
    }

    // MARK: - The loop

    /// Trains from ``step`` to `train.steps`, evaluating and logging as configured.
    public func run() throws -> TrainingSummary {
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        if comm.rank == 0 {
            try config.yaml().write(to: runDirectory.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        }
        metrics = try MetricsWriter(url: runDirectory.appendingPathComponent("metrics.jsonl"), append: step > 0,
                                    enabled: comm.rank == 0)
        let total = config.train.steps
        var firstVal: Double?, lastVal: Double?
        if step == 0 {
            firstVal = try evaluate()
            console.line(String(format: "step %d | val loss %.4f", 0, firstVal!))
            metrics?.write(["step": 0, "val_loss": firstVal!])
        }
        var lastLoss = Double.nan
        let started = Date()
        var windowStart = Date(), windowTokens = 0
        var rate = 0.0
        while step < total {
            let result = try trainStep(step)
            step += 1
            lastLoss = result.loss
            windowTokens += tokensPerStep
            let due = step % config.log.every == 0 || step == total
            let evalDue = (config.train.evalEvery > 0 && step % config.train.evalEvery == 0) || step == total
            if due || evalDue {
                let now = Date()
                rate = Double(windowTokens) / max(now.timeIntervalSince(windowStart), 1e-9)
                windowStart = now
                windowTokens = 0
            }
            var record: [String: Any] = [
                "step": step, "loss": result.loss, "lr": result.lr, "grad_norm": result.gradNorm,
                "tokens_per_s": rate, "elapsed_s": Date().timeIntervalSince(started),
            ]
            if let f = result.codeChanges.fraction {
                record["code_change"] = f
                record["code_change_by_role"] = Dictionary(
                    uniqueKeysWithValues: result.codeChanges.fractionByRole.map { ($0.key.rawValue, $0.value) })
            }
            if evalDue {
                let val = try evaluate()
                lastVal = val
                record["val_loss"] = val
            }
            if due || evalDue {
                record["rss_bytes"] = MemoryReport.residentBytes()
                metrics?.write(record)
                let eta = Double(total - step) * Double(tokensPerStep) / max(rate, 1e-9)
                var text = String(format: "step %d/%d | loss %.4f | lr %.2e | grad %.3f | %@ tok/s | ETA %@",
                                  step, total, result.loss, result.lr, result.gradNorm,
                                  formatCount(Int(rate)), formatDuration(eta))
                if let f = result.codeChanges.fraction { text += String(format: " | changed %.4f%%", 100 * f) }
                if let v = record["val_loss"] as? Double { text += String(format: " | val loss %.4f", v) }
                console.progress(text, permanent: evalDue || step == total)
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let peak = MemoryReport.peakResidentBytes()
        console.line("peak RSS \(formatBytes(peak)) (rank \(comm.rank)); memory table total \(formatBytes(ledger.totalBytes))")
        return TrainingSummary(
            steps: step, finalLoss: lastLoss, finalValLoss: lastVal, firstValLoss: firstVal,
            tokensPerSecond: elapsed > 0 ? Double(tokensPerStep * max(total, 1)) / elapsed : 0,
            peakResidentBytes: peak)
    }

    /// One optimizer step's results.
    public struct StepResult: Sendable {
        public var loss: Double
        public var lr: Double
        public var gradNorm: Double
        public var codeChanges: CodeChangeStats
    }

    /// Forward/backward over `grad_accum` micro-batches, gradient all-reduce, clipping, update.
    public func trainStep(_ step: Int) throws -> StepResult {
        let B = config.train.microBatch, T = config.model.seqLen, accum = config.train.gradAccum
        model.zeroGradients()
        var loss = 0.0
        for micro in 0..<accum {
            sampler.fill(tokens: tokens.pointer, targets: targets.pointer, from: trainData, step: step, micro: micro,
                         rank: comm.rank, world: comm.worldSize, batch: B)
            loss += try model.forwardBackward(tokens: tokens.pointer, targets: targets.pointer, batch: B, length: T,
                                              lossScale: 1 / Float(accum))
        }
        try comm.allReduceSum(model.gradients.pointer, count: model.layout.count)
        var losses = [loss / Double(accum)]
        try comm.allReduceSum(&losses)
        let meanLoss = losses[0] / Double(comm.worldSize)
        guard meanLoss.isFinite else {
            throw QTrainError(.numerics, String(format: "the training loss became %@ at step %d", "\(meanLoss)", step + 1),
                              hint: "lower optim.lr or raise optim.warmup_steps; run with --debug to find the first non-finite tensor")
        }
        let toMean = 1 / Float(comm.worldSize)
        let norm = GradientClipping.norm(model.gradients.pointer, count: model.layout.count, scale: toMean)
        let clip = GradientClipping.factor(norm: norm, maxNorm: config.optim.gradClip)
        let lr = schedule(step)
        let changes = optimizer.update(weights: model.weights, gradients: model.gradients.pointer,
                                       gradScale: toMean * clip, lr: lr, seed: UInt64(config.train.seed))
        return StepResult(loss: meanLoss, lr: lr, gradNorm: norm, codeChanges: changes)
    }

    /// Mean loss over the fixed validation windows (split among ranks).
    public func evaluate() throws -> Double {
        let B = config.train.microBatch, T = config.model.seqLen
        let mine = stride(from: comm.rank, to: evalWindows.count, by: comm.worldSize).map { evalWindows[$0] }
        var sum = 0.0
        for start in stride(from: 0, to: mine.count, by: B) {
            let n = min(B, mine.count - start)
            for b in 0..<n {
                valData.window(mine[start + b], tokens: tokens.pointer + b * T, targets: targets.pointer + b * T)
            }
            sum += try model.loss(tokens: tokens.pointer, targets: targets.pointer, batch: n, length: T) * Double(n)
        }
        var totals = [sum, Double(mine.count)]
        try comm.allReduceSum(&totals)
        return totals[0] / max(totals[1], 1)
    }
}
