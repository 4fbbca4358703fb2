/// ZeRO-1's split of the flat parameter layout among ranks: rank r owns `ranges[r]`, updates
/// that slice of the weights with its slice of AdamW state, and all-gathers the rest.
///
/// Boundaries fall on multiples of `alignment` (40 elements by default) *within their tensor*,
/// so every slice of every packed code buffer starts on a byte (40 codes are whole bytes in
/// every format); 8-bit optimizer state aligns to whole blocks too (``alignment(for:)``).
public struct ShardPlan: Sendable, Equatable {
    public let ranges: [Range<Int>]

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

}
