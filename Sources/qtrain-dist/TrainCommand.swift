import ArgumentParser
import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainDist
import QTrainMPI
import QTrainTraining

/// `--debug`, `--ranks` and the fault-injection aid.
struct DistributedOptions: ParsableArguments {
    @Flag(
        help: """
            Debug mode: one process, NaN/Inf checks after every layer, per-block gradient norms, replica \
            checks every step.
            """)
    var debug = false

    @Option(help: "With --debug: simulate this many data-parallel ranks as threads of one process.")
    var ranks: Int?

    @Option(
        help: ArgumentHelp(
            "Test aid: RANK@STEP changes one weight of RANK after STEP, to exercise desync detection.",
            visibility: .hidden))
    var injectDesync: String?

    @Option(
        help: """
            Stop after this step (writing a checkpoint); the schedule still runs to train.steps, so a later \
            run resumes it.
            """)
    var stopAt: Int?

    func validate() throws {
        if let stopAt, stopAt < 1 { throw ValidationError("--stop-at must be at least 1") }
        if ranks != nil && !debug {
            throw ValidationError("--ranks simulates ranks in debug mode; add --debug (or launch with mpirun)")
        }
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be at least 1") }
        if let s = injectDesync, parsedInjection(s) == nil {
            throw ValidationError("--inject-desync expects RANK@STEP, e.g. 1@3")
        }
    }

    func parsedInjection(_ s: String) -> (rank: Int, step: Int)? {
        let parts = s.split(separator: "@")
        guard parts.count == 2, let r = Int(parts[0]), let t = Int(parts[1]), r >= 0, t >= 1 else { return nil }
        return (r, t)
    }

    var trainerOptions: TrainerOptions {
        TrainerOptions(debug: debug, injectDesync: injectDesync.flatMap(parsedInjection), stopAt: stopAt)
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model (the default command); under mpirun, data-parallel over all ranks.")

    @OptionGroup var options: ConfigOptions
    @OptionGroup var dist: DistributedOptions

    @Option(
        help: """
            Resume from this checkpoint directory (it must be valid). Without it, a run resumes from the \
            newest valid checkpoint of train.out_dir when checkpoint.resume is true.
            """)
    var resume: String?

    var resumeURL: URL? { resume.map { URL(fileURLWithPath: $0) } }

    func run() throws {
        if MPILibrary.launchedAsRank {
            try runUnderMPI()
        } else if dist.debug, let n = dist.ranks, n > 1 {
            try reportingErrors { try runInProcess(ranks: n) }
        } else {
            try reportingErrors {
                let trainer = try Trainer(config: try loadConfig(), options: dist.trainerOptions)
                try trainer.resume(from: resumeURL)
                printSummary(try trainer.run())
            }
        }
    }

    func loadConfig() throws -> RunConfig {
        var config = try options.load()
        if dist.debug { config.dist.checkEvery = 1 }
        return config
    }

    func printSummary(_ s: TrainingSummary) {
        if let v = s.finalValLoss, let first = s.firstValLoss {
            print(String(format: "final val loss %.4f (from %.4f) after %d steps", v, first, s.steps))
        } else if let v = s.finalValLoss {
            print(String(format: "final val loss %.4f after %d steps", v, s.steps))
        }
    }

    /// One rank of an mpirun job. An error on any rank ends the whole job with MPI_Abort, so
    /// that no rank is left waiting in a collective.
    func runUnderMPI() throws {
        if dist.debug && dist.ranks != nil {
            FileHandle.standardError.write(
                Data("error: --debug --ranks simulates ranks in one process; do not launch it with mpirun\n".utf8))
            throw ExitCode(2)
        }
        var comm: MPICommunicator?
        do {
            comm = try MPICommunicator()
            let trainer = try Trainer(config: try loadConfig(), communicator: comm!, options: dist.trainerOptions)
            try trainer.resume(from: resumeURL)
            let summary = try trainer.run()
            if comm!.rank == 0 { printSummary(summary) }
        } catch let error as QTrainError {
            let rank = comm.map { "rank \($0.rank): " } ?? ""
            FileHandle.standardError.write(Data("error: \(rank)\(error.description)\n".utf8))
            if let comm, comm.worldSize > 1 { comm.abort(code: error.exitCode) }
            throw ExitCode(error.exitCode)
        }
    }

    /// `--debug --ranks N`: N trainers on N threads sharing an in-process communicator.
    func runInProcess(ranks n: Int) throws {
        printSummary(
            try InProcessRanks.train(
                config: try loadConfig(), ranks: n, options: dist.trainerOptions, resume: resumeURL))
    }
}
