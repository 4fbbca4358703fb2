import Foundation
import QTrainCore

/// The run's progress for people and for tools: a progress line (step, loss, lr, gradient
/// norm, tokens/s, ETA) on the console and one record per logged step in `metrics.jsonl`.
/// Owns its cadence (`log.every`, after the last step, on a stop, and whenever a validation
/// loss is reported) and the throughput window between logged steps.
public final class MetricsLog {
    /// Throughput over the last logged window.
    public struct State: Codable, Sendable, Equatable {
        public var tokensPerSecond = 0.0
        /// Share of step time spent waiting for gradient communication.
        public var communicationShare = 0.0
    }

    public private(set) var state = State()
    let console: Console
    let cadence: Cadence
    var lastStep: Int { cadence.lastStep }
    let tokensPerStep: Int
    let world: Int
    /// With a data mixture: the tokens drawn from each source, written in every record.
    var tally: DataTally?
    private var writer: MetricsWriter?
    private var tensorboard: TensorBoardWriter?
    private var started = Date()
    private var window = (start: Date(), tokens: 0, waits: 0.0, seconds: 0.0)

    init(console: Console, every: Int, lastStep: Int, tokensPerStep: Int, world: Int) {
        self.console = console
        cadence = Cadence(every: every, lastStep: lastStep)
        self.tokensPerStep = tokensPerStep
        self.world = world
    }

    /// Opens `metrics.jsonl` (appending when resuming) and, when asked, a TensorBoard event
    /// file in `tensorboardDirectory`.
    func open(_ url: URL, append: Bool, enabled: Bool, tensorboardDirectory: URL? = nil) throws {
        writer = try MetricsWriter(url: url, append: append, enabled: enabled)
        if enabled, let tensorboardDirectory { tensorboard = try TensorBoardWriter(directory: tensorboardDirectory) }
    }

    private func write(_ record: MetricsRecord) {
        writer?.write(record)
        tensorboard?.write(record)
    }

    /// Starts the clocks of elapsed time and throughput (when the first step begins).
    func startClock() {
        started = Date()
        window = (started, 0, 0, 0)
    }

    /// Whether a record is due after `step`.
    public func isDue(step: Int, stopping: Bool) -> Bool { cadence.isDue(step: step) || stopping }

    /// The validation before training.
    func initial(validation: Validator.Result) {
        console.line(String(format: "step %d | val loss %.4f", 0, validation.loss) + Self.bySource(validation))
        var record = MetricsRecord(step: 0)
        add(validation, to: &record)
        record.dataTokens = tally?.byName
        write(record)
    }

    private func add(_ v: Validator.Result, to record: inout MetricsRecord) {
        record.valLoss = v.loss
        record.valBpb = v.bitsPerByte
        record.valLossBySource = v.bySource
    }

    /// ` (data/a 2.1034, data/b 2.3310)`: a mixture's losses per source; empty otherwise.
    static func bySource(_ v: Validator.Result) -> String {
        guard let by = v.bySource else { return "" }
        return " ("
            + by.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }
            .joined(separator: ", ") + ")"
    }

    /// Adds step `step` (which took `seconds`) to the window; writes a record and a progress
    /// line when due or when a validation is given. Returns whether it wrote.
    @discardableResult
    func record(
        step: Int, _ r: TrainStep.Result, seconds: Double, validation val: Validator.Result?, stopping: Bool
    )
        -> Bool
    {
        window.tokens += tokensPerStep
        window.waits += r.communicationWait
        window.seconds += seconds
        let due = isDue(step: step, stopping: stopping) || val != nil
        guard due else { return false }
        let now = Date()
        state.tokensPerSecond = Double(window.tokens) / max(now.timeIntervalSince(window.start), 1e-9)
        state.communicationShare = window.waits / max(window.seconds, 1e-9)
        window = (now, 0, 0, 0)
        var record = MetricsRecord(step: step)
        record.loss = r.loss
        record.lr = r.lr
        record.gradNorm = r.gradNorm
        record.elapsedS = now.timeIntervalSince(started)
        record.stepS = seconds
        record.tokensPerS = state.tokensPerSecond
        record.rssBytes = MemoryReport.residentBytes()
        if world > 1 { record.commWaitShare = state.communicationShare }
        if let f = r.codeChanges.fraction {
            record.codeChange = f
            record.codeChangeByRole = Dictionary(
                uniqueKeysWithValues: r.codeChanges.fractionByRole.map { ($0.key.rawValue, $0.value) })
        }
        if let val { add(val, to: &record) }
        record.dataTokens = tally?.byName
        write(record)
        console.progress(progressLine(step: step, r, val: val), permanent: val != nil || step == lastStep)
        return true
    }

    private func progressLine(step: Int, _ r: TrainStep.Result, val: Validator.Result?) -> String {
        let eta = Double(lastStep - step) * Double(tokensPerStep) / max(state.tokensPerSecond, 1e-9)
        var text = String(
            format: "step %d/%d | loss %.4f | lr %.2e | grad %.3f | %@ tok/s | ETA %@",
            step, lastStep, r.loss, r.lr, r.gradNorm, formatCount(Int(state.tokensPerSecond)), formatDuration(eta))
        if let f = r.codeChanges.fraction { text += String(format: " | changed %.4f%%", 100 * f) }
        if let val { text += String(format: " | val loss %.4f", val.loss) + Self.bySource(val) }
        return text
    }
}
