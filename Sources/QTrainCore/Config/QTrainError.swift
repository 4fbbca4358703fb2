/// The one error type of the library: what went wrong, where, and what to do about it.
///
/// `description` is a single line meant for the user; the command line prints it after
/// `error:` and exits with ``exitCode``.
public struct QTrainError: Error, CustomStringConvertible, Equatable {
    /// Which part of the run failed; decides the exit code.
    public enum Kind: String, Sendable {
        case config, data, checkpoint, distributed, numerics, io, interrupted
    }

    public let kind: Kind
    /// What happened, naming the key, file, step or rank.
    public let message: String
    /// What to do next, when there is something to do.
    public let hint: String?

    public init(_ kind: Kind, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message) — \(hint)" }
        return message
    }

    /// Process exit status for this failure: 2 for bad input, 3 for data, 4 for checkpoints,
    /// 5 for distributed failures, 6 for numerical blow-ups, 1 otherwise.
    public var exitCode: Int32 {
        switch kind {
        case .config: return 2
        case .data: return 3
        case .checkpoint: return 4
        case .distributed: return 5
        case .numerics: return 6
        case .io, .interrupted: return 1
        }
    }

    package static func config(_ message: String, hint: String? = nil) -> QTrainError {
        QTrainError(.config, message, hint: hint)
    }

    package static func data(_ message: String, hint: String? = nil) -> QTrainError {
        QTrainError(.data, message, hint: hint)
    }
}
