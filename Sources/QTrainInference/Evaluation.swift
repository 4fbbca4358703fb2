import Foundation
import QTrainCore
import QTrainData
import QTrainModel

/// Loss, perplexity and bits per byte of a model over fixed windows of a token sequence
/// (`qtrain-dist eval`).
public enum Evaluation {
    public struct Result: Sendable {
        public var loss: Double
        public var tokens: Int
        public var bytes: Int
        public var sequences: Int
        public var perplexity: Double { exp(loss) }
        /// Total nats over all targets, per UTF-8 byte they stand for, in bits.
        public var bitsPerByte: Double { bytes > 0 ? loss * Double(tokens) / (Double(bytes) * log(2)) : .nan }
    }

    /// Tokens of the text `source`: a prepared data directory (its validation split), a shard
    /// file, or a text file encoded with `tokenizer`.
    public static func tokens(from source: URL, tokenizer: any Tokenizer) throws -> [Int32] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir) else {
            throw QTrainError.data("evaluation data \(source.path) does not exist")
        }
        if isDir.boolValue {
            let data = try TokenDataset(directory: source, split: "val", seqLen: 1)
            return data.shards.flatMap { s in (0..<s.count).map { s[$0] } }
        }
        if source.pathExtension == "bin" {
            let s = try MappedShard(url: source)
            return (0..<s.count).map { s[$0] }
        }
        guard let data = try? Data(contentsOf: source) else { throw QTrainError.data("cannot read \(source.path)") }
        return tokenizer.encode(Document.normalizedText(data))
    }

    /// Evaluates `model` on up to `maxSequences` non-overlapping windows of T+1 tokens, spread
    /// evenly over `tokens`. Without a limit every token after the first is scored once: the
    /// tokens after the last whole window (and a text shorter than one window) are scored as one
    /// shorter window, which sees only its own tokens as context.
    /// `window`, when given, receives each window's tokens (its inputs and the last target) and
    /// its mean loss, in order (what `eval --windows-out` writes for comparisons).
    public static func run(
        model: Model, tokens all: [Int32], tokenizer: any Tokenizer, maxSequences: Int?,
        window: ((_ tokens: ArraySlice<Int32>, _ loss: Double) -> Void)? = nil
    ) throws -> Result {
        let T = model.config.seqLen, B = model.maxBatch
        guard all.count >= 2 else {
            throw QTrainError.data(
                "evaluation text has \(all.count) token\(all.count == 1 ? "" : "s"); at least 2 are needed (one to predict from, one to score)"
            )
        }
        let windows = scoringWindows(segments: [all.count], length: T, limit: maxSequences, scoringRemainder: true)
        let starts = windows.filter { $0.length == T }.map(\.offset)
        let tail = windows.first { $0.length < T }.map { $0.offset..<($0.offset + $0.length) } ?? 0..<0
        var x = [Int32](repeating: 0, count: B * T), y = x
        var nats = 0.0, bytes = 0
        for first in stride(from: 0, to: starts.count, by: B) {
            let n = min(B, starts.count - first)
            for b in 0..<n {
                let s = starts[first + b]
                for t in 0..<T {
                    x[b * T + t] = all[s + t]
                    y[b * T + t] = all[s + t + 1]
                    bytes += tokenizer.byteCount(of: all[s + t + 1])
                }
            }
            let loss = try model.loss(tokens: x, targets: y, batch: n, length: T)
            nats += loss * Double(n * T)
            if let window {
                let losses = model.positionLosses
                for b in 0..<n {
                    let s = starts[first + b]
                    window(
                        all[s...(s + T)], losses[(b * T)..<((b + 1) * T)].reduce(0.0) { $0 + Double($1) } / Double(T))
                }
            }
        }
        if !tail.isEmpty {
            let n = tail.count
            let x = Array(all[tail]), y = Array(all[(tail.lowerBound + 1)...(tail.upperBound)])
            for t in y { bytes += tokenizer.byteCount(of: t) }
            let loss = try model.loss(tokens: x, targets: y, batch: 1, length: n)
            nats += loss * Double(n)
            window?(all[tail.lowerBound...tail.upperBound], loss)
        }
        let tokens = starts.count * T + tail.count
        return Result(
            loss: nats / Double(tokens), tokens: tokens, bytes: bytes, sequences: starts.count + (tail.isEmpty ? 0 : 1))
    }
}
