import ArgumentParser
import Foundation
import QTrainBench
import QTrainCheckpoint
import QTrainCore
import QTrainMPI
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

    @Flag(
        help: """
            Print the memory a run of each mode would need (estimated from the config before anything is \
            allocated) instead of running it.
            """)
    var memoryPlan = false

    @Option(help: "Compare weight policies, e.g. fp32,bitnet,dqt,dqt:8.")
    var modes: String?

    @Flag(
        help: """
            With --modes: run all modes in this process, their steps in turn, for step-time ratios that \
            share the machine's conditions (memory is then not per mode).
            """)
    var interleave = false

    @Flag(help: "Print one JSON object as the last line.")
    var json = false

    @Flag(help: "Also time each kind of operation (GEMMs, attention, norms, …) of the timed steps.")
    var profile = false

    @Flag(
        help: """
            Also write a checkpoint of the state after the timed steps (into train.out_dir/bench-checkpoint, \
            removed afterwards) and verify it: seconds and MB/s for both.
            """)
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
                    let config = try RunConfig.load(
                        path: options.config,
                        overrides: options.overrides + (mode.isEmpty ? [] : try BenchModes.overrides(for: mode)))
                    let ranks = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] ?? "") ?? 1
                    let plan = MemoryPlan(config, microBatch: try config.train.microBatch(world: ranks), world: ranks)
                    print(
                        String(
                            format:
                                "%@: %@ parameters; per rank %@ of weights, gradients, AdamW state and scratch (%.3f B/param), %@ of activations, %@ in all",
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
            let result = try Benchmark.run(
                config: config, steps: steps, warmup: warmup, comm: comm, profile: profile, checkpoint: checkpoint,
                log: { if speak { print($0) } })
            if speak {
                print(result.table)
                if json { print(result.jsonLine) }
            }
        }
    }

    func compareInterleaved(_ modes: [String]) throws {
        let configs = try BenchModes.configs(modes, path: options.config, overrides: options.overrides)
        let records = try Benchmark.interleaved(configs: configs, steps: steps, warmup: warmup, log: { print($0) })
            .enumerated().map { i, result in
                var r = result.record
                r.mode = modes[i]
                return r
            }
        print(BenchModes.table(records, interleaved: true))
        if json { print(BenchComparison(modes: records, interleaved: true).jsonLine) }
    }

    func compare(_ modes: [String]) throws {
        let records = try BenchModes.runEach(
            modes, executable: URL(fileURLWithPath: "/proc/self/exe"), path: options.config,
            overrides: options.overrides, steps: steps, warmup: warmup, log: { print($0) })
        print(BenchModes.table(records, interleaved: false))
        if json { print(BenchComparison(modes: records).jsonLine) }
    }
}
