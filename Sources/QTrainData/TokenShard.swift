import Foundation
import QTrainCore

/// The fixed 64-byte header of a token shard file:
///
/// | bytes | field |
/// |---|---|
/// | 0–7 | magic `QTSHARD\0` |
/// | 8–11 | format version (1), little-endian |
/// | 12–15 | bytes per token: 2 (vocab ≤ 65536) or 4 |
/// | 16–19 | vocabulary size |
/// | 20–23 | reserved, 0 |
/// | 24–31 | token count |
/// | 32–63 | SHA-256 of the tokenizer's identity |
///
/// Tokens follow, little-endian.
public struct ShardHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("QTSHARD\u{0}".utf8)
    public static let size = 64
    public static let version: UInt32 = 1

    public var tokenBytes: Int
    public var vocabSize: Int
    public var tokenCount: Int
    public var tokenizerHash: [UInt8]

    public init(vocabSize: Int, tokenCount: Int, tokenizerHash: [UInt8]) {
        self.vocabSize = vocabSize
        self.tokenBytes = vocabSize <= 65_536 ? 2 : 4
        self.tokenCount = tokenCount
        self.tokenizerHash = tokenizerHash
    }

    var bytes: [UInt8] {
        var out = ShardHeader.magic
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func put64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        put32(ShardHeader.version)
        put32(UInt32(tokenBytes))
        put32(UInt32(vocabSize))
        put32(0)
        put64(UInt64(tokenCount))
        out += tokenizerHash.prefix(32) + [UInt8](repeating: 0, count: max(0, 32 - tokenizerHash.count))
        return out
    }

    /// Parses and checks a header; `file` names the shard in errors.
    init(parsing raw: UnsafeRawBufferPointer, file: String) throws {
        let remedy = "re-create it with `qtrain-dist prepare`"
        guard raw.count >= ShardHeader.size else {
            throw QTrainError.data(
                "shard \(file) is truncated: \(raw.count) bytes, shorter than its 64-byte header", hint: remedy)
        }
        guard Array(raw[0..<8]) == ShardHeader.magic else {
            throw QTrainError.data("\(file) is not a token shard (wrong magic bytes)", hint: remedy)
        }
        func get32(_ o: Int) -> Int { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        let version = get32(8)
        guard version == Int(ShardHeader.version) else {
            throw QTrainError.data(
                "shard \(file) has format version \(version); this build reads version \(ShardHeader.version)",
                hint: remedy)
        }
        tokenBytes = get32(12)
        vocabSize = get32(16)
        let rawCount = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        tokenizerHash = Array(raw[32..<64])
        guard tokenBytes == 2 || tokenBytes == 4, vocabSize > 0 else {
            throw QTrainError.data(
                "shard \(file) has a corrupt header (token width \(tokenBytes), vocab \(vocabSize))", hint: remedy)
        }
        // The count sizes every later read: check it against the file before any arithmetic can wrap.
        let payload = UInt64(raw.count - ShardHeader.size)
        guard rawCount <= payload / UInt64(tokenBytes) else {
            throw QTrainError.data(
                "shard \(file) is truncated: its header promises \(rawCount) tokens of \(tokenBytes) bytes, the file holds \(payload / UInt64(tokenBytes))",
                hint: remedy)
        }
        tokenCount = Int(rawCount)
        let expected = ShardHeader.size + tokenCount * tokenBytes
        guard raw.count == expected else {
            throw QTrainError.data(
                "shard \(file) is \(raw.count < expected ? "truncated" : "longer than its header says"): \(raw.count) bytes, header promises \(expected)",
                hint: remedy)
        }
    }
}

/// Writes a shard: header, then tokens. Written to a temporary name and renamed.
public enum ShardWriter {
    public static func write(_ tokens: [Int32], vocabSize: Int, tokenizerHash: [UInt8], to url: URL) throws {
        let header = ShardHeader(vocabSize: vocabSize, tokenCount: tokens.count, tokenizerHash: tokenizerHash)
        var data = Data(header.bytes)
        data.reserveCapacity(ShardHeader.size + tokens.count * header.tokenBytes)
        if header.tokenBytes == 2 {
            let narrow = tokens.map { UInt16(truncatingIfNeeded: $0).littleEndian }
            narrow.withUnsafeBytes { data.append(contentsOf: $0) }
        } else {
            let wide = tokens.map { UInt32(bitPattern: $0).littleEndian }
            wide.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw QTrainError(.io, "cannot write shard \(url.path): \(error.localizedDescription)")
        }
    }
}

/// A shard file mapped read-only into memory.
public final class MappedShard: @unchecked Sendable {
    public let url: URL
    public let header: ShardHeader
    private let base: UnsafeMutableRawPointer?
    private let length: Int

    public init(url: URL) throws {
        self.url = url
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            throw QTrainError.data(
                "cannot open shard \(url.path): \(String(cString: strerror(errno)))",
                hint: "run `qtrain-dist prepare` to create it")
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        length = Int(st.st_size)
        if length > 0 {
            guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
                throw QTrainError.data("cannot map shard \(url.path): \(String(cString: strerror(errno)))")
            }
            base = p
        } else {
            base = nil
        }
        do {
            header = try ShardHeader(parsing: UnsafeRawBufferPointer(start: base, count: length), file: url.path)
        } catch {
            if let base { munmap(base, length) }
            throw error
        }
    }

    deinit { if let base { munmap(base, length) } }

    /// Number of tokens.
    public var count: Int { header.tokenCount }

    /// Token `i`.
    @inline(__always) public subscript(i: Int) -> Int32 {
        let p = base! + ShardHeader.size
        if header.tokenBytes == 2 {
            return Int32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
        return Int32(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
    }

    /// Copies tokens [start, start+n) to `out`.
    public func copy(from start: Int, count n: Int, into out: UnsafeMutablePointer<Int32>) {
        for j in 0..<n { out[j] = self[start + j] }
    }
}
