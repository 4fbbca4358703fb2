import Foundation
import QTrainCore

/// One split (`train` or `val`) of a prepared data directory: its shards, memory-mapped, and
/// every window of T+1 consecutive tokens that fits inside one shard.
public final class TokenDataset: @unchecked Sendable {
    public let directory: URL
    public let split: String
    public let shards: [MappedShard]
    /// Window length minus one: a window gives T inputs and T shifted targets.
    public let seqLen: Int
    /// The vocabulary size recorded in the shards.
    public let vocabSize: Int
    /// Number of distinct window start positions.
    public let windowCount: Int
    private let cumulative: [Int]

    /// Opens `directory/split_*.bin`. Errors name the file and the command that creates it.
    public init(directory: URL, split: String, seqLen: Int) throws {
        self.directory = directory
        self.split = split
        self.seqLen = seqLen
        let prepare = "create it with `qtrain-dist prepare --out \(directory.path)`"
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw QTrainError.data("data directory \(directory.path) does not exist", hint: prepare)
        }
        let marker = directory.appendingPathComponent(DataPreparer.incompleteMarker)
        if FileManager.default.fileExists(atPath: marker.path) {
            let started = (try? String(contentsOf: marker, encoding: .utf8)) ?? "unknown"
            throw QTrainError.data(
                "data directory \(directory.path) holds a prepare that did not finish (\(started.trimmingCharacters(in: .whitespacesAndNewlines)))",
                hint: "run that `qtrain-dist prepare --out \(directory.path)` again (it starts over)")
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix(split + "_") && $0.hasSuffix(".bin") }.sorted()
        guard !names.isEmpty else {
            throw QTrainError.data("data directory \(directory.path) has no \(split)_*.bin shards", hint: prepare)
        }
        shards = try names.map { try MappedShard(url: directory.appendingPathComponent($0)) }
        let first = shards[0].header
        for s in shards.dropFirst()
        where s.header.tokenizerHash != first.tokenizerHash || s.header.vocabSize != first.vocabSize {
            throw QTrainError.data(
                "shard \(s.url.path) was made with a different tokenizer than \(shards[0].url.path)",
                hint: "re-create the directory with `qtrain-dist prepare`")
        }
        if first.tokenizerHash.allSatisfy({ $0 == 0 }) {
            throw QTrainError.data(
                "shard \(shards[0].url.path) records no tokenizer (its tokenizer hash is zero)",
                hint: "re-create the directory with `qtrain-dist prepare`")
        }
        vocabSize = first.vocabSize
        var cum = [0]
        for s in shards { cum.append(cum.last! + max(0, s.count - seqLen)) }
        cumulative = cum
        windowCount = cum.last!
        guard windowCount > 0 else {
            throw QTrainError.data(
                "the \(split) shards in \(directory.path) hold fewer than seq_len+1 = \(seqLen + 1) tokens",
                hint: "use a shorter model.seq_len or more text")
        }
    }

    /// Total tokens in the split.
    public var tokenCount: Int { shards.reduce(0) { $0 + $1.count } }

    /// SHA-256 of the tokenizer the shards were made with.
    public var tokenizerHash: [UInt8] { shards[0].header.tokenizerHash }

    /// Throws unless this split was made with the same tokenizer as `other` and as the
    /// directory's `tokenizer.json` (shards copied in from another preparation train
    /// silently on the wrong token ids otherwise).
    public func checkSameTokenizer(as other: TokenDataset, tokenizer: any Tokenizer) throws {
        let hint = "re-create the directory with `qtrain-dist prepare` (every split and tokenizer.json together)"
        if other.tokenizerHash != tokenizerHash || other.vocabSize != vocabSize {
            throw QTrainError.data(
                "the \(other.split) shards in \(directory.path) were made with a different tokenizer than the \(split) shards",
                hint: hint)
        }
        if tokenizer.identityHash != tokenizerHash {
            throw QTrainError.data(
                "the shards in \(directory.path) were made with a different tokenizer than its tokenizer.json",
                hint: hint)
        }
    }

    /// Writes window `w` (0 ≤ w < windowCount): T inputs to `tokens`, the next T to `targets`.
    public func window(_ w: Int, tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        var lo = 0, hi = shards.count
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if cumulative[mid] <= w { lo = mid } else { hi = mid }
        }
        let shard = shards[lo], start = w - cumulative[lo]
        shard.copy(from: start, count: seqLen, into: tokens)
        shard.copy(from: start + 1, count: seqLen, into: targets)
    }
}

/// Which windows a training step reads: sequence j of the global batch of step s starts at a
/// window drawn from Philox(seed, data sampling, step s), element j. Stateless, so the data
/// cursor is the step itself, and a global batch is the same whatever the world size:
/// rank r's micro-batch m holds sequences (m · world + r) · B ..< +B.
public struct BatchSampler: Sendable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The window of sequence `j` of step `step`, among `windowCount`.
    public func window(step: Int, sequence j: Int, windowCount: Int) -> Int {
        let stream = RandomStream(seed: seed, purpose: .dataSampling, tensor: 0, step: step)
        let r = UInt64(stream.word(2 * j)) << 32 | UInt64(stream.word(2 * j + 1))
        return Int(r % UInt64(windowCount))
    }

    /// Fills a micro-batch of B sequences for `rank` of `world`, micro-step `micro`.
    public func fill(
        tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, from data: TokenDataset,
        step: Int, micro: Int, rank: Int, world: Int, batch B: Int
    ) {
        let T = data.seqLen
        for b in 0..<B {
            let j = (micro * world + rank) * B + b
            data.window(
                window(step: step, sequence: j, windowCount: data.windowCount),
                tokens: tokens + b * T, targets: targets + b * T)
        }
    }
}

/// One place where a model is scored: `length` inputs from token `offset` of segment `segment`,
/// each with the next token as its target.
public struct ScoringWindow: Equatable, Sendable {
    public var segment: Int
    public var offset: Int
    public var length: Int
}

/// Where validation (training) and `eval` score a model on a text held as `segments` (the
/// token counts of pieces no window crosses, e.g. shards): non-overlapping windows of T + 1
/// tokens from the start of each segment; with a `limit` below their number, that many
/// spread evenly over them (so every evaluation sees the same tokens); otherwise all of them
/// and, with `scoringRemainder`, each segment's tokens after its last whole window as one
/// shorter window, so that every token after a segment's first is scored once.
public func scoringWindows(segments: [Int], length T: Int, limit: Int?, scoringRemainder: Bool) -> [ScoringWindow] {
    var whole: [ScoringWindow] = []
    for (i, n) in segments.enumerated() {
        var o = 0
        while o < n - T {
            whole.append(ScoringWindow(segment: i, offset: o, length: T))
            o += T
        }
    }
    if let k = limit, k < whole.count { return (0..<k).map { whole[$0 * whole.count / k] } }
    guard scoringRemainder else { return whole }
    var all = whole
    for (i, n) in segments.enumerated() {
        // The whole windows of a segment of n tokens start at 0, T, … below n − T: (n − 1) / T of them.
        let covered = max(0, n - 1) / T * T
        if n - 1 > covered { all.append(ScoringWindow(segment: i, offset: covered, length: n - 1 - covered)) }
    }
    return all
}

/// The fixed validation windows of a split (starts in ``TokenDataset/window(_:tokens:targets:)``'s
/// numbering): ``scoringWindows(segments:length:limit:scoringRemainder:)`` over its shards.
public func evaluationWindows(_ data: TokenDataset, count: Int) -> [Int] {
    let T = data.seqLen
    var base = [0]
    for s in data.shards { base.append(base.last! + max(0, s.count - T)) }
    return scoringWindows(segments: data.shards.map(\.count), length: T, limit: count, scoringRemainder: false)
        .map { base[$0.segment] + $0.offset }
}
