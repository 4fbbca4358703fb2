import QTrainCore

extension ShardPlan {
    /// The boundary alignment for a run whose moments are stored as `state`: 40, or 10240 (a
    /// multiple of 40 and of the 8-bit block) so that each block lives on one rank and a sharded
    /// run's state equals the replicated run's.
    public static func alignment(for state: StateType) -> Int { state == .int8 ? 40 * StateSegments.block / 8 : 40 }
}
