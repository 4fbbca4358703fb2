import Foundation
import QTrainCore

/// Learns a byte-level BPE from documents: split with ``GPT2PreTokenizer``, count the distinct
/// pieces, then repeatedly merge the most frequent adjacent pair of tokens (ties: the pair of
/// smaller ids) until the vocabulary has `vocabSize` tokens — 256 bytes, the merges, and
/// `<|endoftext|>` last — or no pair occurs twice.
public enum BPETrainer {
    public static func train(
        on documents: [String], vocabSize: Int, log: (String) -> Void = { _ in }
    ) throws -> BPETokenizer {
        guard vocabSize >= 258 && vocabSize <= 1 << 20 else {
            throw QTrainError.config(
                "a BPE vocabulary needs 258 to 1048576 tokens (256 bytes, at least one merge, <|endoftext|>); got \(vocabSize)"
            )
        }
        let start = Date()
        var counts: [ArraySlice<UInt8>: Int] = [:]
        for d in documents {
            GPT2PreTokenizer.forEachPiece(in: d) { counts[$0, default: 0] += 1 }
        }
        var state = PairState(words: counts.sorted { $0.key.lexicographicallyPrecedes($1.key) })
        let alphabet = byteLevelAlphabet()
        var tokens = alphabet.map { String($0) }
        var ids: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() { ids[t] = Int32(i) }
        var merges: [(String, String)] = []
        while tokens.count < vocabSize - 1, let (pair, count) = state.mostFrequent(), count >= 2 {
            let (a, b) = (Int32(truncatingIfNeeded: pair >> 32), Int32(truncatingIfNeeded: pair))
            let text = tokens[Int(a)] + tokens[Int(b)]
            // Two merge orders can spell the same string ("ab c", "a bc"); the token is shared.
            let id = ids[text] ?? Int32(tokens.count)
            if id == Int32(tokens.count) {
                tokens.append(text)
                ids[text] = id
            }
            merges.append((tokens[Int(a)], tokens[Int(b)]))
            state.merge(pair, into: id)
        }
        tokens.append("<|endoftext|>")
        log(
            String(
                format: "trained a byte-level BPE of %d tokens (%d merges) on %d distinct pieces in %.1f s%@",
                tokens.count, merges.count, state.words.count, Date().timeIntervalSince(start),
                tokens.count < vocabSize ? " (fewer than \(vocabSize): no pair of tokens occurs twice any more)" : ""))
        return try BPETokenizer(
            tokens: tokens, merges: merges, specials: [Int32(tokens.count - 1)],
            endOfText: Int32(tokens.count - 1), source: "trained BPE")
    }
}

/// Distinct pieces as token sequences with their counts, the count of every adjacent pair,
/// where each pair occurs, and a max-heap of (count, pair) whose stale entries are skipped.
private struct PairState {
    var words: [[Int32]]
    var weight: [Int]
    var pairCount: [UInt64: Int] = [:]
    var occurs: [UInt64: [Int32]] = [:]
    /// Most frequent first; equal counts: the smaller pair key first.
    var heap = BinaryHeap<(count: Int, pair: UInt64)> { $0.count != $1.count ? $0.count > $1.count : $0.pair < $1.pair }
    var seen: [Int]
    var round = 0

    init(words pieces: [(key: ArraySlice<UInt8>, value: Int)]) {
        words = pieces.map { $0.key.map { Int32($0) } }
        weight = pieces.map(\.value)
        seen = [Int](repeating: -1, count: pieces.count)
        for (w, word) in words.enumerated() where word.count > 1 {
            for i in 0..<(word.count - 1) {
                let p = Self.key(word[i], word[i + 1])
                pairCount[p, default: 0] += weight[w]
                occurs[p, default: []].append(Int32(w))
            }
        }
        for (p, c) in pairCount { heap.push((c, p)) }
    }

    static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    /// The most frequent pair and its count (ties: the smaller key), or nil.
    mutating func mostFrequent() -> (UInt64, Int)? {
        while let top = heap.first {
            if pairCount[top.pair] == top.count { return (top.pair, top.count) }
            heap.pop()
        }
        return nil
    }

    /// Replaces every occurrence of `pair` by `id` and updates the pair counts.
    mutating func merge(_ pair: UInt64, into id: Int32) {
        let (a, b) = (Int32(truncatingIfNeeded: pair >> 32), Int32(truncatingIfNeeded: pair))
        var touched = Set<UInt64>()
        round += 1
        let stamp = round
        for w32 in occurs[pair] ?? [] {
            let w = Int(w32)
            if seen[w] == stamp { continue }
            seen[w] = stamp
            let old = words[w]
            guard old.count > 1 else { continue }
            let c = weight[w]
            // Only the pairs around each merge site change, so a long piece costs its
            // occurrences, not its length, in pair updates.
            func change(_ x: Int32, _ y: Int32, _ delta: Int) {
                let p = Self.key(x, y)
                pairCount[p, default: 0] += delta
                touched.insert(p)
                if delta > 0 { occurs[p, default: []].append(w32) }
            }
            var new: [Int32] = []
            new.reserveCapacity(old.count)
            var i = 0
            while i < old.count {
                if i + 1 < old.count && old[i] == a && old[i + 1] == b {
                    if let before = new.last {
                        change(before, a, -c)
                        change(before, id, c)
                    }
                    if i + 2 < old.count {
                        change(b, old[i + 2], -c)
                        change(id, old[i + 2], c)
                    }
                    new.append(id)
                    i += 2
                } else {
                    new.append(old[i])
                    i += 1
                }
            }
            if new.count < old.count { words[w] = new }
        }
        occurs[pair] = nil
        touched.remove(pair)
        pairCount[pair] = nil
        for p in touched {
            let c = pairCount[p] ?? 0
            if c > 0 { heap.push((c, p)) } else { pairCount[p] = nil }
        }
    }
}
