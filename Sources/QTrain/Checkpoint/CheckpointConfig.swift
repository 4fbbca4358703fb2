/// The `checkpoint:` section.
public struct CheckpointConfig: Codable, Equatable, Sendable {
    /// Write a checkpoint every this many steps; 0 writes only at the end of the run and when
    /// a scheduler's signal stops it.
    public var every = 0
    /// Keep this many newest checkpoints (older ones are deleted after a new one is complete).
    public var keep = 3
    /// Resume from the run directory's newest valid checkpoint when there is one.
    public var resume = true

    enum CodingKeys: String, CodingKey, CaseIterable { case every, keep, resume }

    public init() {}

    public init(from decoder: Decoder) throws {
        let read = try ConfigReader<CodingKeys>(decoder)
        every = try read(.every, every)
        keep = try read(.keep, keep)
        resume = try read(.resume, resume)
    }

    func validate(path: String = "checkpoint") throws {
        let check = ConfigCheck(path: path)
        try check.require(every >= 0, "every", every, "0 (only at the end) or more")
        try check.require(keep >= 1, "keep", keep, "at least 1")
    }
}
