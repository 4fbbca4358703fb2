import Foundation
import QKernels
import QTrainCheckpoint
import QTrainCore
import QTrainDist
import QTrainModel
import QTrainOptim
import QTrainTraining

/// Throughput, efficiency and memory of training steps (`qtrain-dist bench`).
///
/// Times `steps` full steps (after `warmup`) on synthetic tokens, split into forward (with
/// the loss), backward and optimizer; measures the SGEMM peak of this machine with the same
/// thread count in the same run; and reports MFU = achieved FLOP/s ÷ that peak, where a token
/// costs 6·N (N = parameters used in GEMMs: all but the embedding table, a lookup) plus
/// 12·L·T·C for attention (full T×T products, as computed).
public enum Benchmark {
    public struct Result: Sendable {
        public var label: String
        public var parameters: Int
        public var tokensPerStep: Int
        public var stepSeconds: Double
        public var phases: [String: Double]
        public var flopsPerToken: Double
        public var peakGFLOPS: Double
        public var memory: [String: Int]
        public var bytesPerParameter: Double
        public var peakRSS: Int
        public var threads: Int
        /// Ranks, and the most any rank's memory table or RSS held.
        public var world = 1
        public var peakRSSMaxRank = 0
        public var bytesPerParameterMaxRank = 0.0
        public var overlap = "off"
        public var sharded = false
        /// ZeRO-2: the gradients were sharded too.
        public var shardedGradients = false
        /// Micro-batches per step (`train.grad_accum`).
        public var gradAccum = 1
        /// The matmul backend, its measured int8 peak (GOP/s) when it uses one, and the peak of
        /// the path as a whole (FP32 peak where every GEMM is FP32).
        public var compute = "fp32 (OpenBLAS)"
        public var int8PeakGOPS: Double?
        /// The measured BF16 matmul peak (GFLOP/s) when the backward uses it.
        public var bf16PeakGFLOPS: Double?
        public var pathPeakGFLOPS: Double?
        /// MFU against the peak of the path in use.
        public var pathMFU: Double { gflops / (pathPeakGFLOPS ?? peakGFLOPS) }
        /// MFU of the forward and backward phases against the path's peak for each: its
        /// products at their arithmetic's rates, attention at the FP32 rate.
        public var phasePathMFU: [String: Double] = [:]
        /// Seconds per step by kind of operation, when profiled.
        public var operations: [(String, Double)] = []
        /// Writing and verifying a checkpoint of the state (with `checkpoint: true`).
        public var checkpoint: CheckpointTiming?

        public var tokensPerSecond: Double { Double(tokensPerStep) / stepSeconds }
        public var gflops: Double { flopsPerToken * tokensPerSecond / 1e9 }
        public var mfu: Double { gflops / peakGFLOPS }

        /// Share of step time spent waiting for gradient communication.
        public var communicationShare: Double { (phases["communication"] ?? 0) / stepSeconds }

        public var table: String {
            var s =
                "\(label): \(formatCount(parameters)) parameters, \(tokensPerStep) tokens/step"
                + (gradAccum > 1 ? " (\(gradAccum) micro-batches)" : "") + ", \(world) rank(s) × \(threads) thread(s)"
            if world > 1 { s += ", overlap \(overlap)\(shardedGradients ? ", ZeRO-2" : sharded ? ", ZeRO-1" : "")" }
            s += "\n"
            s += String(
                format: "  step %.3f s | %.0f tokens/s | %.1f GFLOP/s | peak %.1f GFLOP/s | MFU %.3f\n",
                stepSeconds, tokensPerSecond, gflops, peakGFLOPS, mfu)
            if let pathPeakGFLOPS {
                let int8 = int8PeakGOPS.map { String(format: "int8 peak %.1f GOP/s, ", $0) } ?? ""
                let bf16 = bf16PeakGFLOPS.map { String(format: "bf16 peak %.1f GFLOP/s, ", $0) } ?? ""
                s += String(
                    format: "  compute %@: %@%@path peak %.1f GFLOP/s, MFU of the path %.3f\n",
                    compute, int8, bf16, pathPeakGFLOPS, pathMFU)
            }
            s +=
                "  phases: "
                + ["forward", "backward", "communication", "optimizer"].filter { phases[$0] != nil }.map {
                    let mfu = phasePathMFU[$0].map { String(format: ", path MFU %.2f", $0) } ?? ""
                    return String(
                        format: "%@ %.3f s (%.0f%%%@)", $0, phases[$0] ?? 0, 100 * (phases[$0] ?? 0) / stepSeconds, mfu)
                }.joined(separator: ", ") + "\n"
            s += String(
                format: "  memory per rank: %.3f B/param without activations; peak RSS %@", bytesPerParameterMaxRank,
                formatBytes(peakRSSMaxRank))
            if world > 1 {
                s += String(format: "\n  waiting on communication: %.1f%% of the step", 100 * communicationShare)
            }
            if let c = checkpoint {
                s += String(
                    format:
                        "\n  checkpoint: %@ written in %.2f s (%.0f MB/s, SHA-256 and fsync included), verified in %.2f s (%.0f MB/s)",
                    formatBytes(c.bytes), c.writeSeconds, Double(c.bytes) / c.writeSeconds / 1e6,
                    c.verifySeconds, Double(c.bytes) / c.verifySeconds / 1e6)
            }
            if !operations.isEmpty {
                s += "\n  operations (seconds per step; the pieces of a product under it):"
                let line = { (name: String, t: Double) in
                    String(
                        format: "\n    %@ %7.3f s  %5.1f%%", name.padding(toLength: 44, withPad: " ", startingAt: 0), t,
                        100 * t / stepSeconds)
                }
                let byTime = operations.sorted(by: { $0.1 > $1.1 })
                for (name, t) in byTime where !name.contains(" › ") {
                    s += line(name, t)
                    for (piece, u) in byTime where piece.hasPrefix(name + " › ") {
                        s += line("  · " + piece.dropFirst(name.count + 3), u)
                    }
                }
            }
            return s
        }

        /// The result as `bench --json` prints it.
        public var record: BenchRecord {
            BenchRecord(
                mode: nil, label: label, parameters: parameters, tokensPerStep: tokensPerStep, threads: threads,
                tokensPerS: tokensPerSecond, gflops: gflops, peakGflops: peakGFLOPS, mfu: mfu, stepS: stepSeconds,
                phases: phases,
                flopsPerToken: flopsPerToken, gradAccum: gradAccum, compute: compute, int8PeakGops: int8PeakGOPS,
                bf16PeakGflops: bf16PeakGFLOPS, pathPeakGflops: pathPeakGFLOPS ?? peakGFLOPS, pathMfu: pathMFU,
                phasePathMfu: phasePathMFU.isEmpty ? nil : phasePathMFU, world: world,
                overlap: overlap, shardOptimizer: sharded, shardGradients: shardedGradients,
                commWaitShare: communicationShare,
                memory: .init(
                    bytesPerParam: bytesPerParameterMaxRank, peakRssBytes: peakRSSMaxRank, categories: memory),
                checkpoint: checkpoint.map {
                    .init(bytes: $0.bytes, writeS: $0.writeSeconds, verifyS: $0.verifySeconds)
                })
        }

        public var jsonLine: String { record.jsonLine }
    }

    /// The GEMM peaks of this machine with this run's threads, measured now: SGEMM always,
    /// int8 and BF16 when asked for and available.
    public struct GemmPeaks: Sendable {
        public var fp32: Double
        public var int8: Double?
        public var bf16: Double?

        /// SGEMM, and the arithmetic of each backend in `needs` (as its needs declare it).
        public static func measure(for needs: [BackendNeeds]) -> GemmPeaks {
            let used = Set(needs.flatMap { [$0.forward, $0.inputGradient, $0.weightGradient] })
            return GemmPeaks(
                fp32: ProductArithmetic.fp32.measurePeak()!,
                int8: used.contains(.int8) ? ProductArithmetic.int8.measurePeak() : nil,
                bf16: used.contains(.bf16) ? ProductArithmetic.bf16.measurePeak() : nil)
        }

        /// The median of each peak over `samples` (one per timed step).
        public static func median(_ samples: [GemmPeaks]) -> GemmPeaks {
            func mid(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.sorted()[v.count / 2] }
            return GemmPeaks(
                fp32: mid(samples.map(\.fp32))!, int8: mid(samples.compactMap(\.int8)),
                bf16: mid(samples.compactMap(\.bf16)))
        }
    }

    /// Benchmarks `config` (its model, quantisation, micro-batch, threads and dist section) on
    /// `comm`'s ranks: forward, backward, gradient communication (overlapped as configured, or
    /// ZeRO-1's reduce-scatter and all-gather), optimizer.
    ///
    /// With `checkpoint`, it then writes a checkpoint of the state into `train.out_dir/bench-checkpoint`
    /// (removed afterwards) and verifies it, and the result holds both times.
    public static func run(
        config: RunConfig, steps: Int, warmup: Int, comm: Communicator = SingleProcessCommunicator(),
        profile: Bool = false, checkpoint: Bool = false, log: (String) -> Void
    ) throws -> Result {
        let session = try BenchSession(config: config, comm: comm)
        log(
            "bench: \(config.policyLabel), \(formatCount(session.model.layout.count)) parameters, B=\(session.batch), "
                + "T=\(config.model.seqLen), \(comm.worldSize) rank(s) × \(Threads.count) thread(s), OpenBLAS \(BLASCore.name), "
                + "compute \(session.model.backend.name)")
        if let notice = session.model.computeNotice { log(notice) }
        // The peak is measured right after every timed step and the median kept, so that it sees
        // the machine as the steps saw it (on a shared machine the rate drifts by ±15%).
        var peaks: [GemmPeaks] = []
        var phases: [String: Double] = [:]
        for s in 0..<(warmup + steps) {
            if s == warmup {
                OpProfile.shared.reset()
                OpProfile.shared.enabled = profile
            }
            let (times, loss) = try session.step()
            if s >= warmup {
                for (k, v) in times { phases[k, default: 0] += v }
                peaks.append(.measure(for: [session.model.backend.needs]))
            }
            log(
                String(
                    format: "  step %d%@: %.3f s, loss %.4f", s + 1, s < warmup ? " (warm-up)" : "",
                    times.values.reduce(0, +), loss))
        }
        OpProfile.shared.enabled = false
        for k in phases.keys { phases[k]! /= Double(max(steps, 1)) }
        var result = try session.result(phases: phases, peaks: .median(peaks))
        if profile { result.operations = OpProfile.shared.report(steps: steps) }
        if checkpoint {
            result.checkpoint = try session.timeCheckpoint(
                in: URL(fileURLWithPath: config.train.outDir).appendingPathComponent("bench-checkpoint"))
        }
        return result
    }

    /// Seconds to write a checkpoint (hashing and fsync included) and to verify it, and its bytes.
    public struct CheckpointTiming: Sendable {
        public var bytes: Int
        public var writeSeconds: Double
        public var verifySeconds: Double
    }

    /// Several configurations in one process, their steps taken in turn (A, B, C, A, B, C, …),
    /// so that every configuration meets the same machine conditions: the fair way to compare
    /// step times on a shared machine. Memory figures are not per configuration here.
    public static func interleaved(
        configs: [RunConfig], steps: Int, warmup: Int, log: (String) -> Void
    ) throws -> [Result] {
        let sessions = try configs.map { try BenchSession(config: $0, comm: SingleProcessCommunicator()) }
        var phases = [[String: Double]](repeating: [:], count: configs.count)
        var peaks: [GemmPeaks] = []
        for s in 0..<(warmup + steps) {
            for (i, session) in sessions.enumerated() {
                let (times, _) = try session.step()
                if s >= warmup { for (k, v) in times { phases[i][k, default: 0] += v } }
                log(
                    String(
                        format: "  round %d%@, %@: %.3f s", s + 1, s < warmup ? " (warm-up)" : "",
                        configs[i].policyLabel,
                        times.values.reduce(0, +)))
            }
            if s >= warmup {
                peaks.append(.measure(for: sessions.map(\.model.backend.needs)))
            }
        }
        let peak = GemmPeaks.median(peaks)
        return try sessions.enumerated().map { i, session in
            try session.result(phases: phases[i].mapValues { $0 / Double(max(steps, 1)) }, peaks: peak)
        }
    }
}

/// One configuration set up for timing: its model and optimizer, synthetic tokens, and the
/// ``TrainStep`` that training runs (accumulation, gradient sync, ZeRO-1, clipping, update).
final class BenchSession {
    let config: RunConfig
    let comm: Communicator
    let ledger = MemoryLedger()
    let model: Model
    let stepper: TrainStep
    let optimizer: Optimizer
    private var steps = 0

    var batch: Int { stepper.microBatch }

    /// - Parameter batches: where the tokens come from; by default the same random tokens every step.
    init(config: RunConfig, comm: Communicator, batches: BatchSource? = nil) throws {
        self.config = config
        self.comm = comm
        let ledger = self.ledger
        let rank = try RankSetup(
            config: config, comm: comm, agreement: RunAgreement.items(config: config), ledger: ledger,
            batches: { batch in
                batches
                    ?? SyntheticBatches(
                        count: batch * config.model.seqLen, vocabulary: config.model.vocabSize,
                        rank: comm.rank, ledger: ledger)
            })
        (model, optimizer, stepper) = (rank.model, rank.optimizer, rank.stepper)
    }

    /// One training step on the synthetic tokens, the ranks lined up first; seconds per phase and the loss.
    func step() throws -> ([String: Double], Double) {
        try comm.barrier()
        let r = try stepper.run(steps)
        steps += 1
        return (r.phases, r.loss)
    }

    /// Writes the weights and optimizer state as training's checkpoints do into the run directory
    /// `run` (created, and removed afterwards), then verifies every file's SHA-256 as a resume does.
    func timeCheckpoint(in run: URL) throws -> Benchmark.CheckpointTiming {
        let checkpointer = Checkpointer(run: run, config: CheckpointConfig(), comm: comm)
        if comm.rank == 0 { try? FileManager.default.removeItem(at: run) }
        defer { if comm.rank == 0 { try? FileManager.default.removeItem(at: run) } }
        try comm.barrier()
        let components: [CheckpointComponent] = [
            WeightsCheckpoint(model.weights),
            OptimizerCheckpoint(optimizer, sharded: stepper.shards != nil)
        ]
        var t = Date()
        let dir = try checkpointer.save(
            TrainProgress(step: steps, tokensSeen: steps * stepper.tokensPerStep), components: components,
            config: config, optimizerStep: optimizer.step, fingerprint: ReplicaCheck.fingerprint(model.weights))
        let write = Date().timeIntervalSince(t)
        try comm.barrier()
        t = Date()
        let state = try Checkpointer.verify(dir)
        let verify = Date().timeIntervalSince(t)
        let bytes = state.files.keys.reduce(0) { sum, name in
            sum
                + ((try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(name).path)[.size]
                    as? Int) ?? 0)
        }
        return .init(bytes: bytes, writeSeconds: write, verifySeconds: verify)
    }

    /// The result of the timed steps (`phases` already per step); memory is gathered over ranks.

    func result(phases: [String: Double], peaks: Benchmark.GemmPeaks) throws -> Benchmark.Result {
        let peak = peaks.fp32
        // Rank 0's timings stand for the step; the slowest rank's memory for the job.
        var mem = [
            MemoryReport.bytesPerParameter(ledger, parameters: model.layout.count),
            Double(MemoryReport.peakResidentBytes())
        ]
        try comm.allReduceMax(&mem)
        let T = config.model.seqLen, L = config.model.nLayers, C = config.model.dim
        let flops = 6 * Double(model.layout.matmulParameterCount) + 12 * Double(L * T * C)
        var memory: [String: Int] = [:]
        for c in MemoryCategory.allCases { memory[c.rawValue] = ledger.bytes(c) }
        var result = Benchmark.Result(
            label: config.policyLabel, parameters: model.layout.count, tokensPerStep: stepper.tokensPerStep,
            stepSeconds: phases.values.reduce(0, +), phases: phases, flopsPerToken: flops,
            peakGFLOPS: peak * Double(comm.worldSize), memory: memory,
            bytesPerParameter: MemoryReport.bytesPerParameter(ledger, parameters: model.layout.count),
            peakRSS: MemoryReport.peakResidentBytes(), threads: Threads.count)
        result.world = comm.worldSize
        result.peakRSSMaxRank = Int(mem[1])
        result.bytesPerParameterMaxRank = mem[0]
        result.overlap = stepper.sync.mode.rawValue
        result.sharded = stepper.shards != nil
        result.shardedGradients = stepper.model.gradients.shards != nil
        result.gradAccum = stepper.gradAccum
        result.compute = model.backend.name
        let needs = model.backend.needs
        // Each product at the rate of its arithmetic measured in this run (SGEMM's where none was).
        func rate(_ a: ProductArithmetic) -> Double {
            switch a {
            case .fp32: return peak
            case .int8: return peaks.int8 ?? peak
            case .bf16: return peaks.bf16 ?? peak
            }
        }
        // The linear layers' forward is 2·N of a token's FLOPs and attention's 4·L·T·C (at the
        // SGEMM rate); the backward twice each, its dX and dW products 2·N each.
        let product = 2 * Double(model.layout.matmulParameterCount), attention = 4 * Double(L * T * C)
        let tokens = Double(stepper.tokensPerStep) / Double(comm.worldSize)
        let phaseWork: [String: (flops: Double, idealSeconds: Double)] = [
            "forward": (product + attention, product / rate(needs.forward) + attention / peak),
            "backward": (
                2 * (product + attention),
                product / rate(needs.inputGradient) + product / rate(needs.weightGradient) + 2 * attention / peak
            )
        ]
        for (phase, work) in phaseWork {
            guard let seconds = phases[phase], seconds > 0 else { continue }
            // Achieved ÷ the phase's own peak; both per rank.
            result.phasePathMFU[phase] = (work.flops * tokens / seconds) / (work.flops / work.idealSeconds * 1e9)
        }
        let arithmetic = [needs.forward, needs.inputGradient, needs.weightGradient]
        if arithmetic.contains(where: { $0 != .fp32 }) {
            // The path's peak: the step's FLOPs over the seconds its products and attention take at those rates.
            let world = Double(comm.worldSize)
            let seconds = phaseWork.values.reduce(0) { $0 + $1.idealSeconds }
            result.int8PeakGOPS = arithmetic.contains(.int8) ? peaks.int8.map { $0 * world } : nil
            result.bf16PeakGFLOPS = arithmetic.contains(.bf16) ? peaks.bf16.map { $0 * world } : nil
            result.pathPeakGFLOPS = flops / seconds * world
        }
        return result
    }
}

/// The same random tokens every step (per rank), targets shifted by one: timing needs no data.
final class SyntheticBatches: BatchSource {
    let tokens: AlignedBuffer<Int32>
    let count: Int

    init(count: Int, vocabulary V: Int, rank: Int, ledger: MemoryLedger?) {
        self.count = count
        tokens = AlignedBuffer(count: count + 1, category: .activations, ledger: ledger)
        let stream = RandomStream(seed: 7, purpose: .dataSampling, tensor: rank + 1, step: 0)
        for i in 0...count { tokens.pointer[i] = Int32(stream.word(i) % UInt32(V)) }
    }

    func fill(
        tokens t: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, step: Int, micro: Int, batch: Int
    ) {
        t.update(from: tokens.pointer, count: count)
        targets.update(from: tokens.pointer + 1, count: count)
    }
}
