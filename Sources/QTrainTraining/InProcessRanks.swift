import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainDist

/// `--debug --ranks N`: N trainers on N threads of this process over an in-process
/// communicator (``InProcessGroup``), the data-parallel run without MPI.
public enum InProcessRanks {
    /// Trains `config` on `ranks` replicas and returns rank 0's summary. When a rank fails,
    /// the others stop at their next collective; the error thrown is the root cause (the
    /// first that is not another rank's echo, ``PeerRankFailure``).
    public static func train(
        config: RunConfig, ranks n: Int, options: TrainerOptions, resume: URL?
    ) throws -> TrainingSummary {
        let group = InProcessGroup(size: n)
        let results = Outcomes(count: n)
        // One real thread per rank: every rank must be running for a collective to complete.
        let threads = (0..<n).map { r in
            Thread {
                do {
                    let trainer = try Trainer(
                        config: config, communicator: group.communicator(rank: r), options: options)
                    try trainer.resume(from: resume)
                    results.set(r, .success(try trainer.run()))
                } catch {
                    group.abort("rank \(r): \(error)")
                    results.set(r, .failure(error))
                }
            }
        }
        threads.forEach {
            $0.stackSize = 16 << 20
            $0.start()
        }
        let outcomes = results.waitForAll()
        let failures = outcomes.compactMap { o -> Error? in if case .failure(let e) = o { return e } else { return nil }
        }
        if let root = failures.first(where: { !($0 is PeerRankFailure) }) { throw root }
        if let echo = failures.first { throw QTrainError(.distributed, "\(echo)") }
        guard case .success(let summary) = outcomes[0] else { fatalError("rank 0 has no outcome") }
        return summary
    }

    /// The outcomes of the ranks, filled by their threads.
    private final class Outcomes: @unchecked Sendable {
        private let cond = NSCondition()
        private var results: [Result<TrainingSummary, Error>?]

        init(count: Int) { results = Array(repeating: nil, count: count) }

        func set(_ r: Int, _ value: Result<TrainingSummary, Error>) {
            cond.lock()
            results[r] = value
            cond.broadcast()
            cond.unlock()
        }

        func waitForAll() -> [Result<TrainingSummary, Error>] {
            cond.lock()
            defer { cond.unlock() }
            while results.contains(where: { $0 == nil }) { cond.wait() }
            return results.map { $0! }
        }
    }
}
