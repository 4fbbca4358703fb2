import Foundation

/// Merged pieces remembered from one document to the next: a piece's UTF-8 bytes → its token
/// ids. English text is mostly a few thousand distinct pieces (" the", " of", ","), so after
/// the first documents nearly every piece is a hit and the merge loop hardly runs.
///
/// Open addressing with linear probing, keyed by a 64-bit hash of the bytes; a hit compares
/// the bytes too. Bytes and ids sit in two arenas. Memory is bounded whatever the corpus: at
/// most `maxEntries` pieces and `maxBytes` bytes of pieces (their ids take at most as many
/// `Int32`s); an insert past either bound first empties the cache. Pieces longer than
/// ``maxPieceBytes`` are not kept. With the defaults (65,536 pieces, 1 MiB) the cache stays
/// under 8 MiB: 3 MiB of slots, 1 MiB of bytes, 4 MiB of ids.
///
/// One thread only (it belongs to one encoder).
final class PieceCache {
    /// Longer pieces (runs of letters without a space) are merged every time.
    static let maxPieceBytes = 256

    private struct Slot {
        /// 0 when the slot is free (hashes are never 0).
        var hash: UInt64
        var bytesStart: UInt32
        var byteCount: UInt32
        var tokensStart: UInt32
        var tokenCount: UInt32
    }

    let maxEntries: Int
    let maxBytes: Int
    private(set) var count = 0
    /// How many times the cache was emptied because it was full.
    private(set) var clears = 0
    private var slots: UnsafeMutablePointer<Slot>
    /// A power of two, at least 2 and at most twice `maxEntries` rounded up.
    private var slotCount: Int
    private var bytes: UnsafeMutablePointer<UInt8>
    private var bytesUsed = 0, bytesCapacity: Int
    private var tokens: UnsafeMutablePointer<Int32>
    private var tokensUsed = 0, tokensCapacity: Int

    /// Starts small (a few KiB, so a one-off `encode` is cheap) and grows to the bounds.
    init(maxEntries: Int = 1 << 16, maxBytes: Int = 1 << 20) {
        precondition(maxEntries >= 1 && maxBytes >= Self.maxPieceBytes)
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        slotCount = 2
        while slotCount < min(256, 2 * maxEntries) { slotCount *= 2 }
        slots = .allocate(capacity: slotCount)
        slots.initialize(
            repeating: Slot(hash: 0, bytesStart: 0, byteCount: 0, tokensStart: 0, tokenCount: 0), count: slotCount)
        bytesCapacity = 4096
        bytes = .allocate(capacity: bytesCapacity)
        tokensCapacity = 4096
        tokens = .allocate(capacity: tokensCapacity)
    }

    deinit {
        slots.deallocate()
        bytes.deallocate()
        tokens.deallocate()
    }

    /// A 64-bit hash of `n` bytes, never 0: eight bytes at a time (unaligned loads), then a
    /// finishing mix so that the low bits, which pick the slot, depend on every byte.
    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n)
        var i = 0
        while i + 8 <= n {
            h = (h ^ UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 29
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        return h == 0 ? 1 : h
    }

    /// The ids of the piece `p[0..<n]` whose ``hash(_:_:)`` is `h`, or nil; valid until the
    /// next insert.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64) -> UnsafeBufferPointer<Int32>? {
        let mask = slotCount - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s.hash == 0 { return nil }
            if s.hash == h && Int(s.byteCount) == n && memcmp(bytes + Int(s.bytesStart), p, n) == 0 {
                return UnsafeBufferPointer(start: tokens + Int(s.tokensStart), count: Int(s.tokenCount))
            }
            i = (i + 1) & mask
        }
    }

    /// Remembers the ids of a piece that ``lookup(_:_:hash:)`` did not find.
    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64, ids: UnsafeBufferPointer<Int32>) {
        guard n <= Self.maxPieceBytes, ids.count <= n else { return }
        if count == maxEntries || bytesUsed + n > maxBytes || tokensUsed + ids.count > maxBytes {
            removeAll()
            clears += 1
        }
        if 2 * (count + 1) > slotCount { growSlots() }
        bytesCapacity = grow(&bytes, used: bytesUsed, capacity: bytesCapacity, toHold: bytesUsed + n)
        tokensCapacity = grow(&tokens, used: tokensUsed, capacity: tokensCapacity, toHold: tokensUsed + ids.count)
        (bytes + bytesUsed).initialize(from: p, count: n)
        if let base = ids.baseAddress { (tokens + tokensUsed).initialize(from: base, count: ids.count) }
        place(
            Slot(
                hash: h, bytesStart: UInt32(bytesUsed), byteCount: UInt32(n), tokensStart: UInt32(tokensUsed),
                tokenCount: UInt32(ids.count)))
        bytesUsed += n
        tokensUsed += ids.count
        count += 1
    }

    /// Forgets every piece and keeps the memory.
    func removeAll() {
        slots.update(
            repeating: Slot(hash: 0, bytesStart: 0, byteCount: 0, tokensStart: 0, tokenCount: 0), count: slotCount)
        count = 0
        bytesUsed = 0
        tokensUsed = 0
    }

    private func place(_ slot: Slot) {
        let mask = slotCount - 1
        var i = Int(truncatingIfNeeded: slot.hash) & mask
        while slots[i].hash != 0 { i = (i + 1) & mask }
        slots[i] = slot
    }

    /// Doubles the slots (at most to twice `maxEntries`, where ``insert`` empties first).
    private func growSlots() {
        let old = slots, oldCount = slotCount
        slotCount *= 2
        slots = .allocate(capacity: slotCount)
        slots.initialize(
            repeating: Slot(hash: 0, bytesStart: 0, byteCount: 0, tokensStart: 0, tokenCount: 0), count: slotCount)
        for i in 0..<oldCount where old[i].hash != 0 { place(old[i]) }
        old.deallocate()
    }

    /// Doubles an arena until it holds `needed` elements; returns its capacity.
    private func grow<T>(_ arena: inout UnsafeMutablePointer<T>, used: Int, capacity: Int, toHold needed: Int) -> Int {
        guard needed > capacity else { return capacity }
        var c = capacity
        while c < needed { c *= 2 }
        let new = UnsafeMutablePointer<T>.allocate(capacity: c)
        new.moveInitialize(from: arena, count: used)
        arena.deallocate()
        arena = new
        return c
    }
}
