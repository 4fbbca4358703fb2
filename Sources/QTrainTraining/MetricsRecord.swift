import Foundation

/// One line of `metrics.jsonl`: the one type the metrics log writes and `report` and the
/// TensorBoard writer read. Keys are snake_case; a number that is not finite (a diverged loss)
/// is written as the string `NaN`, `Infinity` or `-Infinity` so that its line still records
/// the step.
public struct MetricsRecord: Codable, Sendable, Equatable {
    public var step: Int
    /// Mean training loss of the step (nats per token).
    public var loss: Double?
    public var lr: Double?
    /// Global gradient norm before clipping.
    public var gradNorm: Double?
    /// Seconds since training started, and of this step.
    public var elapsedS: Double?
    public var stepS: Double?
    /// Tokens per second over the window since the last record (all ranks).
    public var tokensPerS: Double?
    public var rssBytes: Int?
    /// Share of step time spent waiting for gradient communication (runs of several ranks).
    public var commWaitShare: Double?
    /// Share of quantised weights whose code changed in the step (dqt), overall and per role.
    public var codeChange: Double?
    public var codeChangeByRole: [String: Double]?
    /// Validation loss (nats per token) and bits per byte, where evaluated.
    public var valLoss: Double?
    public var valBpb: Double?
    /// With a data mixture: each source's validation loss, and the tokens drawn from each
    /// source since step 0 (by the source's path as the config writes it).
    public var valLossBySource: [String: Double]?
    public var dataTokens: [String: Int]?

    public init(step: Int) { self.step = step }

    enum CodingKeys: String, CodingKey {
        case step, loss, lr, gradNorm = "grad_norm", elapsedS = "elapsed_s", stepS = "step_s", tokensPerS =
            "tokens_per_s"
        case rssBytes = "rss_bytes", commWaitShare = "comm_wait_share", codeChange = "code_change"
        case codeChangeByRole = "code_change_by_role", valLoss = "val_loss", valBpb = "val_bpb"
        case valLossBySource = "val_loss_by_source", dataTokens = "data_tokens"
    }

    /// Every number of the record by name (nested ones as `code_change_by_role/<role>`,
    /// `val_loss_by_source/<path>`, `data_tokens/<path>`), `step` excepted.
    public var scalars: [(String, Double)] {
        var out: [(String, Double)] = []
        func add(_ key: CodingKeys, _ value: Double?) { if let value { out.append((key.rawValue, value)) } }
        add(.loss, loss)
        add(.lr, lr)
        add(.gradNorm, gradNorm)
        add(.elapsedS, elapsedS)
        add(.stepS, stepS)
        add(.tokensPerS, tokensPerS)
        add(.rssBytes, rssBytes.map(Double.init))
        add(.commWaitShare, commWaitShare)
        add(.codeChange, codeChange)
        add(.valLoss, valLoss)
        add(.valBpb, valBpb)
        for (role, x) in codeChangeByRole ?? [:] { out.append((CodingKeys.codeChangeByRole.rawValue + "/" + role, x)) }
        for (path, x) in (valLossBySource ?? [:]).sorted(by: { $0.key < $1.key }) {
            out.append((CodingKeys.valLossBySource.rawValue + "/" + path, x))
        }
        for (path, n) in (dataTokens ?? [:]).sorted(by: { $0.key < $1.key }) {
            out.append((CodingKeys.dataTokens.rawValue + "/" + path, Double(n)))
        }
        return out
    }

    /// One line of JSON (keys sorted), without the newline.
    public func jsonLine() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity",
            nan: "NaN")
        return try encoder.encode(self)
    }

    /// The records of a `metrics.jsonl` file; a line that is not a record (a write cut short by
    /// a crash) is skipped.
    public static func read(_ url: URL) throws -> [MetricsRecord] {
        let text = try String(contentsOf: url, encoding: .utf8)
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity",
            nan: "NaN")
        return text.split(separator: "\n").compactMap { try? decoder.decode(MetricsRecord.self, from: Data($0.utf8)) }
    }
}
