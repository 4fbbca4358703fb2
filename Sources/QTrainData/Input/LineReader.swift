import Foundation

/// Splits a byte stream into lines (`\n`; a `\r` before it is left to the reader) in a buffer
/// that grows to at most `maximumLineBytes`: a longer line is stepped over, not held.
final class LineReader {
    /// A line, or the length of one too long to hold.
    enum Line {
        /// The line's bytes, valid until the next call.
        case text(UnsafeBufferPointer<UInt8>)
        case tooLong(bytes: Int)
    }

    private let stream: any ByteStream
    private let maximumLineBytes: Int
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    private var atEnd = false
    /// The number of the line last returned (1-based).
    private(set) var lineNumber = 0

    init(_ stream: any ByteStream, maximumLineBytes: Int) {
        self.stream = stream
        self.maximumLineBytes = max(1, maximumLineBytes)
        buffer = .allocate(byteCount: min(1 << 20, self.maximumLineBytes + 1), alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// The next line, or nil after the last.
    func next() throws -> Line? {
        var scanned = start
        var skipped = 0
        while true {
            if scanned < end,
                let nl = memchr(buffer.baseAddress! + scanned, 0x0A, end - scanned)
            {
                let at = buffer.baseAddress!.distance(to: nl)
                let line = UnsafeBufferPointer(
                    start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, count: at - start)
                start = at + 1
                lineNumber += 1
                return skipped > 0 || line.count > maximumLineBytes
                    ? .tooLong(bytes: skipped + line.count) : .text(line)
            }
            scanned = end
            if atEnd {
                guard start < end || skipped > 0 else { return nil }
                let line = UnsafeBufferPointer(
                    start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, count: end - start)
                start = end
                lineNumber += 1
                return skipped > 0 || line.count > maximumLineBytes
                    ? .tooLong(bytes: skipped + line.count) : .text(line)
            }
            if end - start > maximumLineBytes {
                // Over the limit: forget what is held of this line and keep looking for its end.
                skipped += end - start
                start = 0
                end = 0
                scanned = 0
            } else if start > 0 {
                let kept = end - start
                if kept > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, kept) }
                scanned -= start
                start = 0
                end = kept
            }
            if end == buffer.count {
                let grown = UnsafeMutableRawBufferPointer.allocate(
                    byteCount: min(2 * buffer.count, maximumLineBytes + 1 + (1 << 20)), alignment: 64)
                grown.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[0..<end]))
                buffer.deallocate()
                buffer = grown
            }
            let n = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if n == 0 { atEnd = true } else { end += n }
        }
    }
}
