import Foundation

/// A hash map from byte strings to `Int32`, looked up by pointer and length so that the
/// encoder's inner loops can probe sub-ranges of a buffer without building `String`s.
///
/// Open addressing with linear probing; keys are copied into one arena.
struct ByteStringTable: Sendable {
    /// Keys back to back, after one padding byte so that the base address is never nil.
    private var arena: [UInt8] = [0]
    /// Per entry: start of the key in `arena`, its length, its value.
    private var starts: [Int32] = []
    private var lengths: [Int32] = []
    private var values: [Int32] = []
    /// Entry index + 1 per slot, 0 when free; the count is a power of two.
    private var slots: [Int32]
    /// The longest key, so that longer probes fail without hashing.
    private(set) var maxKeyLength = 0

    var count: Int { values.count }

    init(capacity: Int = 16) {
        var n = 16
        while n < 2 * capacity { n <<= 1 }
        slots = [Int32](repeating: 0, count: n)
        arena.reserveCapacity(capacity * 8)
        starts.reserveCapacity(capacity)
        lengths.reserveCapacity(capacity)
        values.reserveCapacity(capacity)
    }

    /// The value stored for `key[0..<length]`, or nil.
    @inline(__always)
    func value(_ key: UnsafePointer<UInt8>, _ length: Int) -> Int32? {
        if length > maxKeyLength { return nil }
        return slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBufferPointer { arena in
                let mask = slots.count - 1
                var slot = Self.hash(key, length) & mask
                while true {
                    let entry = Int(slots[slot]) - 1
                    if entry < 0 { return nil }
                    if Int(lengths[entry]) == length
                        && memcmp(arena.baseAddress! + Int(starts[entry]), key, length) == 0
                    {
                        return values[entry]
                    }
                    slot = (slot + 1) & mask
                }
            }
        }
    }

    func value<C: Collection>(_ key: C) -> Int32? where C.Element == UInt8 {
        // The trailing 0 keeps the base address non-nil for an empty key.
        let bytes = Array(key) + [0]
        return bytes.withUnsafeBufferPointer { value($0.baseAddress!, $0.count - 1) }
    }

    /// Stores `value` for the key unless the key is present; returns false if it was.
    @discardableResult
    mutating func insert(_ key: UnsafePointer<UInt8>, _ length: Int, value: Int32) -> Bool {
        if self.value(key, length) != nil { return false }
        if 2 * (values.count + 1) > slots.count { grow() }
        starts.append(Int32(arena.count))
        lengths.append(Int32(length))
        values.append(value)
        arena.append(contentsOf: UnsafeBufferPointer(start: key, count: length))
        place(values.count - 1)
        maxKeyLength = max(maxKeyLength, length)
        return true
    }

    @discardableResult
    mutating func insert<C: Collection>(_ key: C, value: Int32) -> Bool where C.Element == UInt8 {
        let bytes = Array(key) + [0]
        return bytes.withUnsafeBufferPointer { insert($0.baseAddress!, $0.count - 1, value: value) }
    }

    private mutating func grow() {
        slots = [Int32](repeating: 0, count: slots.count * 2)
        for entry in 0..<values.count { place(entry) }
    }

    private mutating func place(_ entry: Int) {
        let h = arena.withUnsafeBufferPointer { Self.hash($0.baseAddress! + Int(starts[entry]), Int(lengths[entry])) }
        let mask = slots.count - 1
        var slot = h & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entry + 1)
    }

    /// FNV-1a, then a multiply-shift finish so that the low bits (the slot) mix well.
    @inline(__always)
    private static func hash(_ key: UnsafePointer<UInt8>, _ length: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<length { h = (h ^ UInt64(key[i])) &* 0x100_0000_01b3 }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        return Int(truncatingIfNeeded: h ^ (h >> 32))
    }
}
