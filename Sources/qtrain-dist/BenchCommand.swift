import ArgumentParser
import Foundation
import QTrainMPI
import QTrainBench
import QTrainCheckpoint
import QTrainCore
import QTrainTraining

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps: tokens/s, GFLOP/s, MFU against the measured SGEMM peak, phases, memory.",
        discussion: """
            With --modes, each weight policy runs in its own process (so that each peak RSS is its \
            own), one after another in this run, and a comparison table gives step-time ratios \
            against the first mode. Modes: fp32, bitnet, bitnet-bf16, dqt (ternary), dqt:N (N-bit); \
            a suffix +bf16-state stores AdamW's moments in BF16 (e.g. dqt+bf16-state).
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Timed steps after warm-up.")
    var steps: Int = 3

    @Option(help: "Untimed warm-up steps.")
    var warmup: Int = 1

    @Flag(help: "Print the memory a run of each mode would need (estimated from the config before anything is allocated) instead of running it.")
    var memoryPlan = false

    @Option(help: "Compare weight policies, e.g. fp32,bitnet,dqt,dqt:8.")
    var modes: String?

    @Flag(help: "With --modes: run all modes in this process, their steps in turn, for step-time ratios that share the machine's conditions (memory is then not per mode).")
    var interleave = false

    @Flag(help: "Print one JSON object as the last line.")
    var json = false

    @Flag(help: "Also time each kind of operation (GEMMs, attention, norms, …) of the timed steps.")
    var profile = false

    @Flag(help: "Also write a checkpoint of the state after the timed steps (into train.out_dir/bench-checkpoint, removed afterwards) and verify it: seconds and MB/s for both.")
    var checkpoint = false

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
    }

    func run() throws {
        try reportingErrors {
            if memoryPlan {
                let list = modes.map { $0.split(separator: ",").map(String.init) } ?? [""]
                for mode in list {
                    let config = try RunConfig.load(path: options.config,
                                                    overrides: options.overrides + (mode.isEmpty ? [] : try Self.overrides(forMode: mode)))
                    let ranks = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] ?? "") ?? 1
                    let plan = MemoryPlan(config, microBatch: try config.train.microBatch(world: ranks), world: ranks)
                    print(String(format: "%@: %@ parameters; per rank %@ of weights, gradients, AdamW state and scratch (%.3f B/param), %@ of activations, %@ in all",
                                 mode.isEmpty ? config.quant.label : mode, formatCount(Int(plan.parameters)),
                                 formatBytes(Int(plan.stateBytes)), plan.stateBytes / plan.parameters,
                                 formatBytes(Int(plan.activationBytes)), formatBytes(Int(plan.totalBytes))))
                }
                return
            }
            if let modes {
                let list = modes.split(separator: ",").map(String.init)
                return interleave ? try compareInterleaved(list) : try compare(list)
            }
            let config = try options.load()
            let comm: Communicator = MPILibrary.launchedAsRank ? try MPICommunicator() : SingleProcessCommunicator()
            let speak = comm.rank == 0
            let result = try Benchmark.run(config: config, steps: steps, warmup: warmup, comm: comm, profile: profile, checkpoint: checkpoint,
                                           log: { if speak { print($0) } })
            if speak {
                print(result.table)
                if json { print(result.jsonLine) }
            }
        }
    }

    /// `--set` overrides that select a mode.
    static func overrides(forMode mode: String) throws -> [String] {
        // Suffixes add options to a mode, e.g. dqt+bf16-grad+int8-state: +bf16-state /
        // +int8-state (AdamW state), +bf16-grad (gradients), +zero1 / +zero2 (sharding),
        // +ckpt (activation checkpointing), +int8 / +int8-bf16 / +reference (compute path).
        let suffixes = ["+bf16-state": "optim.state_dtype=bf16", "+int8-state": "optim.state_dtype=int8",
                        "+bf16-grad": "optim.grad_dtype=bf16", "+zero1": "dist.shard_optimizer=true",
                        "+zero2": "dist.shard_optimizer=true,dist.shard_gradients=true",
                        "+ckpt": "train.activation_checkpointing=blocks", "+int8": "quant.compute=int8",
                        "+int8-bf16": "quant.compute=int8-bf16", "+reference": "quant.compute=reference"]
        for (suffix, option) in suffixes where mode.hasSuffix(suffix) {
            return try overrides(forMode: String(mode.dropLast(suffix.count))) + option.split(separator: ",").map(String.init)
        }
        switch mode {
        case "fp32": return ["quant.mode=fp32"]
        case "bitnet": return ["quant.mode=bitnet"]
        case "bitnet-bf16": return ["quant.mode=bitnet", "quant.latent_dtype=bf16"]
        case "dqt": return ["quant.mode=dqt"]
        default:
            if mode.hasPrefix("dqt:") { return ["quant.mode=dqt", "quant.bits=\(mode.dropFirst(4))"] }
            throw QTrainError(.config, "unknown bench mode '\(mode)'", hint: "use fp32, bitnet, bitnet-bf16, dqt or dqt:N, optionally followed by any of +bf16-state, +int8-state, +bf16-grad, +zero1, +zero2, +ckpt, +int8, +int8-bf16, +reference")
        }
    }

    func compareInterleaved(_ modes: [String]) throws {
        let configs = try modes.map { try RunConfig.load(path: options.config, overrides: options.overrides + (try Self.overrides(forMode: $0))) }
        let results = try Benchmark.interleaved(configs: configs, steps: steps, warmup: warmup, log: { print($0) })
        let base = results[0].stepSeconds
        let peaks = [String(format: "SGEMM %.1f GFLOP/s", results[0].peakGFLOPS)]
            + (results.compactMap(\.int8PeakGOPS).first.map { [String(format: "int8 %.1f GOP/s", $0)] } ?? [])
            + (results.compactMap(\.bf16PeakGFLOPS).first.map { [String(format: "bf16 %.1f GFLOP/s", $0)] } ?? [])
        print("\ninterleaved; measured peaks: " + peaks.joined(separator: ", "))
        let width = max(12, modes.map(\.count).max() ?? 0)
        print("mode".padding(toLength: width, withPad: " ", startingAt: 0)
            + "   step s   ×first  tokens/s    MFU  path peak  path MFU")
        for (mode, r) in zip(modes, results) {
            print(mode.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "  %7.3f  %6.3f  %8.1f  %5.3f  %9.1f  %8.3f", r.stepSeconds, r.stepSeconds / base,
                         r.tokensPerSecond, r.mfu, r.pathPeakGFLOPS ?? r.peakGFLOPS, r.pathMFU))
        }
        if json {
            var objs: [[String: Any]] = []
            for (mode, r) in zip(modes, results) {
                var o = r.json
                o["mode"] = mode
                objs.append(o)
            }
            let data = try JSONSerialization.data(withJSONObject: ["modes": objs, "interleaved": true], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    func compare(_ modes: [String]) throws {
        var results: [[String: Any]] = []
        for mode in modes {
            var args = ["bench", "--steps", "\(steps)", "--warmup", "\(warmup)", "--json"]
            if let c = options.config { args += ["--config", c] }
            for o in options.overrides + (try Self.overrides(forMode: mode)) { args += ["--set", o] }
            print("== \(mode)")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            p.arguments = args
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            var lastLine = ""
            var buffer = Data()
            while true {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let nl = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...nl)
                    if line.hasPrefix("{") { lastLine = line } else { print(line) }
                }
            }
            p.waitUntilExit()
            guard p.terminationStatus == 0,
                  var obj = (try? JSONSerialization.jsonObject(with: Data(lastLine.utf8))) as? [String: Any]
            else { throw QTrainError(.io, "bench of mode \(mode) failed (exit \(p.terminationStatus))") }
            obj["mode"] = mode
            results.append(obj)
        }
        let base = results[0]["step_s"] as? Double ?? 1
        let width = max(12, modes.map(\.count).max() ?? 0)
        print("\n" + "mode".padding(toLength: width, withPad: " ", startingAt: 0)
            + "   step s   ×first  tokens/s    MFU  path MFU   B/param  peak RSS")
        for r in results {
            let step = r["step_s"] as? Double ?? 0
            let mem = r["memory"] as? [String: Any] ?? [:]
            let line = ((r["mode"] as? String ?? "").padding(toLength: width, withPad: " ", startingAt: 0))
                + String(format: "  %7.3f  %6.3f  %8.1f  %5.3f  %8.3f  %8.3f  ", step, step / base,
                         r["tokens_per_s"] as? Double ?? 0, r["mfu"] as? Double ?? 0, r["path_mfu"] as? Double ?? 0,
                         mem["bytes_per_param"] as? Double ?? 0)
                + formatBytes(mem["peak_rss_bytes"] as? Int ?? 0)
            print(line)
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["modes": results], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
