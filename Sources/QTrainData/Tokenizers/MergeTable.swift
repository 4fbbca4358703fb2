/// A BPE's merges by pair: (left, right) token ids → the merge's rank and the id of the merged
/// token. Open addressing with linear probing and a multiplicative hash of the pair, because
/// the merge loop looks up every adjacent pair of a piece after every merge, and `Dictionary`'s
/// SipHash cost more than the rest of that loop.
struct MergeTable: Sendable {
    /// Per slot, side by side (one cache line per probe): the pair (left << 32 | right) or
    /// ``empty``, then rank << 32 | id. A power of two of slots.
    private var slots: [UInt64]
    /// 64 − log2(slot count): the hash's top bits pick the slot.
    private let shift: UInt64
    private(set) var count = 0

    /// Never a pair: ids are below 2^31.
    private static let empty = UInt64.max

    /// Room for `capacity` merges at a load of at most one half.
    init(capacity: Int) {
        var bits = 4
        while 1 << bits < 2 * capacity { bits += 1 }
        slots = [UInt64](repeating: Self.empty, count: 2 << bits)
        shift = UInt64(64 - bits)
    }

    @inline(__always)
    static func pair(_ left: Int32, _ right: Int32) -> UInt64 { UInt64(UInt32(left)) << 32 | UInt64(UInt32(right)) }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// Adds the merge of `key` unless the pair already has one (the lower rank stays).
    mutating func insertIfAbsent(_ key: UInt64, rank: Int32, id: Int32) {
        precondition(4 * (count + 1) <= slots.count, "MergeTable is full")
        let mask = slots.count / 2 - 1
        var i = slot(key)
        while slots[2 * i] != Self.empty {
            if slots[2 * i] == key { return }
            i = (i + 1) & mask
        }
        slots[2 * i] = key
        slots[2 * i + 1] = UInt64(UInt32(rank)) << 32 | UInt64(UInt32(id))
        count += 1
    }

    /// The merge of the pair `key`, if any.
    @inline(__always)
    func find(_ key: UInt64) -> (rank: Int32, id: Int32)? {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count / 2 - 1
            var i = slot(key)
            while true {
                let k = slots[2 * i]
                if k == key {
                    let v = slots[2 * i + 1]
                    return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
                }
                if k == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }
}
