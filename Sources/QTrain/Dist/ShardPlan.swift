/// ZeRO-1's split of the flat parameter layout among ranks: rank r owns `ranges[r]`, updates
/// that slice of the weights with its slice of AdamW state, and all-gathers the rest.
///
/// Boundaries fall on multiples of `alignment` (40 elements by default) *within their tensor*,
/// so every slice of every packed code buffer starts on a byte (40 codes are whole bytes in
/// every format); 8-bit optimizer state aligns to whole blocks too (``alignment(for:)``).
public struct ShardPlan: Sendable, Equatable {
    public let ranges: [Range<Int>]

    /// The boundary alignment for a run whose moments are stored as `state`: 40, or 10240 (a
    /// multiple of 40 and of the 8-bit block) so that each block lives on one rank and a sharded
    /// run's state equals the replicated run's.
    public static func alignment(for state: StateType) -> Int { state == .int8 ? 40 * StateSegments.block / 8 : 40 }

    public init(layout: ParameterLayout, world: Int, alignment: Int = 40) {
        var bounds = [0]
        for r in 1..<max(world, 1) {
            let ideal = layout.count * r / world
            // The tensor holding the ideal boundary; move the boundary down to an aligned element in it.
            let spec = layout.specs.last { $0.offset <= ideal }!
            let local = (ideal - spec.offset) / alignment * alignment
            bounds.append(max(bounds.last!, spec.offset + local))
        }
        bounds.append(layout.count)
        ranges = (0..<max(world, 1)).map { bounds[$0]..<bounds[$0 + 1] }
    }

    /// Element counts per rank (for reduce-scatter).
    public var counts: [Int] { ranges.map(\.count) }

    /// Each rank's part of tensor `spec`, as element ranges local to the tensor.
    public func parts(of spec: ParameterSpec) -> [Range<Int>] {
        ranges.map { r in
            let lo = min(max(r.lowerBound, spec.offset), spec.offset + spec.count)
            let hi = min(max(r.upperBound, spec.offset), spec.offset + spec.count)
            return (lo - spec.offset)..<(hi - spec.offset)
        }
    }

    /// Gives every rank the weights the other ranks updated: one all-gather per tensor of the
    /// bytes its storage keeps (packed codes, BF16 or FP32 values).
    public func allGather(_ w: ModelWeights, comm: Communicator) throws {
        for spec in w.layout.specs {
            let s = w.storage[spec.index]
            try comm.allGatherBytes(s.payload.baseAddress!, counts: s.payloadByteCounts(of: parts(of: spec)))
        }
        w.refreshDerivedState()
    }
}
