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

    public init() {}

    func record(_ bytes: Int, in category: MemoryCategory) {
        lock.lock()
        defer { lock.unlock() }
        current[category, default: 0] += bytes
    }

    /// Bytes held now in `category`.
    public func bytes(_ category: MemoryCategory) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return current[category, default: 0]
    }

    /// Bytes held now in all categories.
    public var totalBytes: Int { MemoryCategory.allCases.reduce(0) { $0 + bytes($1) } }
}

/// Zero-filled, 64-byte-aligned storage for `count` elements of a trivial type.
///
/// Buffers of a megabyte or more are anonymous mappings: the kernel supplies zero pages as
/// they are first touched, so a buffer costs resident memory only once it is used (every
/// training buffer is used in the first step, so the ledger and peak RSS agree from then on).
public final class AlignedBuffer<Element>: @unchecked Sendable {
    /// The first element.
    public let pointer: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int
    /// What the buffer is for.
    public let category: MemoryCategory
    private let ledger: MemoryLedger?
    private let byteCount: Int
    private let mapped: Int
    private static var mapThreshold: Int { 1 << 20 }

    /// Allocates and zero-fills; traps only if the system is out of memory.
    public init(count: Int, category: MemoryCategory, ledger: MemoryLedger?) {
        if count < 0 { fatalError("negative buffer size") }  // kept in every build, -Ounchecked too
        self.count = count
        self.category = category
        self.ledger = ledger
        self.byteCount = count * MemoryLayout<Element>.stride
        var raw: UnsafeMutableRawPointer?
        if byteCount >= Self.mapThreshold {
            let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else {
                fatalError("out of memory mapping \(byteCount) bytes for \(category.rawValue)")
            }
            raw = p
            mapped = byteCount
        } else {
            let alignedBytes = max((byteCount + 63) & ~63, 64)
            guard posix_memalign(&raw, 64, alignedBytes) == 0, raw != nil else {
                fatalError("out of memory allocating \(byteCount) bytes for \(category.rawValue)")
            }
            memset(raw!, 0, alignedBytes)
            mapped = 0
        }
        pointer = raw!.bindMemory(to: Element.self, capacity: max(count, 1))
        ledger?.record(byteCount, in: category)
    }

    deinit {
        ledger?.record(-byteCount, in: category)
        if mapped > 0 { munmap(pointer, mapped) } else { free(pointer) }
    }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    /// Sets every byte to zero.
    public func zero() { memset(pointer, 0, count * MemoryLayout<Element>.stride) }
}
