import Foundation
import QTrainCore

/// Writes one split's shards (`train_000.bin`, …) as tokens arrive: each shard under a hidden
/// temporary name, its header's count filled in when it is full, fsynced, then renamed, so a
/// shard under its real name is always whole.
final class ShardStream {
    let directory: URL
    let split: String
    let vocabSize: Int
    let tokenizerHash: [UInt8]
    let shardTokens: Int
    private let tokenBytes: Int
    private var fd: Int32 = -1
    private var inShard = 0
    private var buffer: [UInt8] = []
    /// Tokens of every finished shard, in order.
    private(set) var shardCounts: [Int] = []
    private(set) var total = 0

    init(directory: URL, split: String, vocabSize: Int, tokenizerHash: [UInt8], shardTokens: Int) {
        self.directory = directory
        self.split = split
        self.vocabSize = vocabSize
        self.tokenizerHash = tokenizerHash
        self.shardTokens = shardTokens
        tokenBytes = ShardHeader(vocabSize: vocabSize, tokenCount: 0, tokenizerHash: tokenizerHash).tokenBytes
        buffer.reserveCapacity(1 << 22)
    }

    deinit { if fd >= 0 { close(fd) } }

    var name: String { String(format: "%@_%03d.bin", split, shardCounts.count) }
    var temporary: URL { directory.appendingPathComponent(".\(name).partial") }

    /// Appends tokens, starting and finishing shards as they fill.
    func append(_ tokens: [Int32]) throws {
        var at = 0
        while at < tokens.count {
            if fd < 0 { try open() }
            let n = min(tokens.count - at, shardTokens - inShard)
            if tokenBytes == 2 {
                tokens[at..<at + n].map { UInt16(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes {
                    buffer.append(contentsOf: $0)
                }
            } else {
                tokens[at..<at + n].map { UInt32(bitPattern: $0).littleEndian }.withUnsafeBytes {
                    buffer.append(contentsOf: $0)
                }
            }
            at += n
            inShard += n
            if buffer.count >= 1 << 22 { try flush() }
            if inShard == shardTokens { try finishShard() }
        }
    }

    /// Finishes the last shard; returns every shard's token count.
    func finish() throws -> [Int] {
        if fd >= 0 { try finishShard() }
        return shardCounts
    }

    private func open() throws {
        fd = Foundation.open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ioError("cannot create") }
        inShard = 0
        buffer = ShardHeader(vocabSize: vocabSize, tokenCount: 0, tokenizerHash: tokenizerHash).bytes
    }

    private func flush() throws {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, buffer.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("cannot write")
            }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func finishShard() throws {
        try flush()
        let header = ShardHeader(vocabSize: vocabSize, tokenCount: inShard, tokenizerHash: tokenizerHash).bytes
        guard header.withUnsafeBytes({ pwrite(fd, $0.baseAddress, header.count, 0) }) == header.count, fsync(fd) == 0
        else { throw ioError("cannot write") }
        close(fd)
        fd = -1
        let final = directory.appendingPathComponent(name)
        guard rename(temporary.path, final.path) == 0 else { throw ioError("cannot rename") }
        shardCounts.append(inShard)
        total += inShard
        inShard = 0
    }

    private func ioError(_ what: String) -> QTrainError {
        QTrainError(
            .io, "\(what) shard \(temporary.path): \(String(cString: strerror(errno)))", hint: "check free disk space")
    }
}
