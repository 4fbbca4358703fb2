import QTrainCore
import QTrainWeights

/// Watches a quantised run (bitnet, dqt) for the failures that do not show up as NaN: a loss
/// that climbs well above where it started, and codes that stop changing altogether (the
/// update has become too small for stochastic rounding to move anything). Each warns once; in
/// debug mode each stops the run.
public final class DivergenceWatch {
    /// What the watch has seen.
    public struct State: Codable, Sendable, Equatable {
        /// The loss the run is compared with: the validation loss before training (or the
        /// first step's loss after a resume).
        public var reference: Double?
        /// Consecutive steps without a changed code.
        public var frozenSteps = 0
        public var warnedLoss = false
        public var warnedFrozen = false
    }

    public private(set) var state = State()
    /// Steps without a changed code before the warning.
    public static let patience = 100
    let enabled: Bool
    let stops: Bool
    let log: (String) -> Void

    init(quant: QuantConfig, debug: Bool, log: @escaping (String) -> Void) {
        enabled = quant.mode != .fp32
        stops = debug
        self.log = log
    }

    /// The validation loss before the first step.
    func start(reference: Double) { state.reference = reference }

    /// The loss is too high when it exceeds the reference by a nat and by a quarter.
    static func limit(_ reference: Double) -> Double { reference + max(1, 0.25 * reference) }

    /// Checks step `step`'s result.
    func check(step: Int, _ r: TrainStep.Result) throws {
        guard enabled else { return }
        if state.reference == nil { state.reference = r.loss }
        if let reference = state.reference, r.loss > Self.limit(reference), !state.warnedLoss {
            state.warnedLoss = true
            try report(
                String(
                    format:
                        "the training loss %.4f at step %d is far above where the run started (%.4f): it is diverging",
                    r.loss, step, reference),
                hint: "lower optim.lr or raise optim.warmup_steps")
        }
        if let f = r.codeChanges.fraction {
            state.frozenSteps = f == 0 ? state.frozenSteps + 1 : 0
            if state.frozenSteps >= Self.patience && !state.warnedFrozen {
                state.warnedFrozen = true
                try report(
                    "no weight code has changed for \(Self.patience) steps (step \(step)): the updates are too small to move the grid",
                    hint: "raise optim.lr, or check that the schedule has not reached zero")
            }
        }
    }

    private func report(_ message: String, hint: String) throws {
        if stops { throw QTrainError(.numerics, message, hint: hint + "; without --debug this is a warning") }
        log("warning: \(message); \(hint)")
    }
}
