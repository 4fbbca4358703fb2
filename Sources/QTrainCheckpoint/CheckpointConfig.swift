import QTrainCore

/// The `checkpoint:` section.
public struct CheckpointConfig: Codable, Equatable, Sendable, ConfigSection {
    /// Write a checkpoint every this many steps; 0 writes only at the end of the run, when a
    /// signal stops it and on the clock (`every_minutes`).
    public var every = 0
    /// Also write one when this many minutes have passed since the last (or since the run
    /// started), so a crash never loses more than that; 0 = only by step.
    public var everyMinutes = 10.0
    /// Keep this many newest checkpoints (older ones are deleted after a new one is complete).
    public var keep = 3
    /// Resume from the run directory's newest valid checkpoint when there is one.
    public var resume = true

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case every, everyMinutes = "every_minutes", keep, resume
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.every, \.every), .init(.everyMinutes, \.everyMinutes), .init(.keep, \.keep), .init(.resume, \.resume)
    ]

    func validate(path: String = "checkpoint") throws {
        let check = ConfigCheck(path: path)
        try check.require(every >= 0, "every", every, "0 (only at the end) or more")
        try check.require(keep >= 1, "keep", keep, "at least 1")
        try check.require(everyMinutes >= 0 && everyMinutes.isFinite, "every_minutes", everyMinutes, "0 (off) or more")
    }
}
