import Foundation

/// What a buffer holds, as the memory table groups it.
public enum MemoryCategory: String, CaseIterable, Sendable, Codable {
    case weights, gradients, optimizer, activations, scratch
}

/// Counts the bytes that live buffers hold, per category, for one replica of the model.
///
/// Every large allocation of a run goes through ``AlignedBuffer``, which reports here; the
/// start-of-run memory table is printed from this ledger, not from formulas.
public final class MemoryLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var current: [MemoryCategory: Int] = [:]
    private var peak: [MemoryCategory: Int] = [:]

    public init() {}

    func record(_ bytes: Int, in category: MemoryCategory) {
        lock.lock()
        defer { lock.unlock() }
        current[category, default: 0] += bytes
        peak[category] = max(peak[category, default: 0], current[category, default: 0])
    }

    /// Bytes held now in `category`.
    public func bytes(_ category: MemoryCategory) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return current[category, default: 0]
    }

    /// The most bytes `category` has held at once.
    public func peakBytes(_ category: MemoryCategory) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return peak[category, default: 0]
    }

    /// Bytes held now in all categories.
    public var totalBytes: Int { MemoryCategory.allCases.reduce(0) { $0 + bytes($1) } }
}

/// Zero-filled, 64-byte-aligned storage for `count` elements of a trivial type.
///
/// Zero-filling touches every page, so the memory the ledger reports is memory the process
/// really holds (resident), which keeps the table and the peak RSS comparable.
public final class AlignedBuffer<Element>: @unchecked Sendable {
    /// The first element.
    public let pointer: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int
    /// What the buffer is for.
    public let category: MemoryCategory
    private let ledger: MemoryLedger?
    private let byteCount: Int

    /// Allocates and zero-fills; traps only if the system is out of memory.
    public init(count: Int, category: MemoryCategory, ledger: MemoryLedger?) {
        precondition(count >= 0, "negative buffer size")
        self.count = count
        self.category = category
        self.ledger = ledger
        self.byteCount = count * MemoryLayout<Element>.stride
        var raw: UnsafeMutableRawPointer?
        let alignedBytes = max((byteCount + 63) & ~63, 64)
        guard posix_memalign(&raw, 64, alignedBytes) == 0, let raw else {
            fatalError("out of memory allocating \(byteCount) bytes for \(category.rawValue)")
        }
        memset(raw, 0, alignedBytes)
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        ledger?.record(byteCount, in: category)
    }

    deinit {
        ledger?.record(-byteCount, in: category)
        free(pointer)
    }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    /// Sets every byte to zero.
    public func zero() { memset(pointer, 0, count * MemoryLayout<Element>.stride) }
}
