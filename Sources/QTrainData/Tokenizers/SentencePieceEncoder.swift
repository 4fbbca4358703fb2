/// One encode call's working state: splits the normalized text into words, merges each
/// new word with ``SentencePieceBPE`` and remembers the ids of words already seen.
struct SentencePieceEncoder {
    private let tok: SentencePieceTokenizer
    private var bpe: SentencePieceBPE

    /// Words seen so far → index into `cachedRanges`, whose (start, count) address `cachedIDs`.
    private var cache = ByteStringTable(capacity: 1024)
    private var cachedRanges: [(start: Int32, count: Int32)] = []
    private var cachedIDs: [Int32] = []
    /// Longer words are rare and not worth keeping.
    private static let maxCachedWordLength = 96

    init(_ tokenizer: SentencePieceTokenizer) {
        tok = tokenizer
        bpe = SentencePieceBPE(tokenizer)
    }

    /// The ids of `text` after normalization (see ``SentencePieceTokenizer/normalize(_:)``).
    mutating func encode(normalized text: [UInt8]) -> [Int32] {
        var out: [Int32] = []
        if text.isEmpty { return out }
        out.reserveCapacity(text.count / 3 + 4)
        text.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress!
            guard tok.splitsWords else {
                bpe.merge(base, 0, buf.count, into: &out)
                return
            }
            // Words start at each run of the space symbol; no piece spans such a boundary
            // (checked when the model was loaded), so words can be merged independently.
            let space = tok.spaceSymbol
            var wordStart = 0
            var p = 0
            var previousWasSpace = false
            while p < buf.count {
                if Self.hasPrefix(base, p, buf.count, space) {
                    if !previousWasSpace && p > wordStart {
                        encodeWord(base, wordStart, p, into: &out)
                        wordStart = p
                    }
                    previousWasSpace = true
                    p += space.count
                } else {
                    previousWasSpace = false
                    p += 1
                }
            }
            encodeWord(base, wordStart, buf.count, into: &out)
        }
        return out
    }

    @inline(__always)
    private static func hasPrefix(_ base: UnsafePointer<UInt8>, _ p: Int, _ end: Int, _ s: [UInt8]) -> Bool {
        if base[p] != s[0] || end - p < s.count { return false }
        for k in 1..<s.count where base[p + k] != s[k] { return false }
        return true
    }

    private mutating func encodeWord(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, into out: inout [Int32]) {
        let size = to - from
        if size > Self.maxCachedWordLength {
            let first = out.count
            bpe.merge(base, from, to, into: &out)
            dropRepeatedUnknown(&out, at: first)
            return
        }
        let index: Int
        if let found = cache.value(base + from, size) {
            index = Int(found)
        } else {
            let first = cachedIDs.count
            bpe.merge(base, from, to, into: &cachedIDs)
            index = cachedRanges.count
            cachedRanges.append((Int32(first), Int32(cachedIDs.count - first)))
            cache.insert(base + from, size, value: Int32(index))
        }
        let r = cachedRanges[index]
        let first = out.count
        out.append(contentsOf: cachedIDs[Int(r.start)..<Int(r.start + r.count)])
        dropRepeatedUnknown(&out, at: first)
    }

    /// SentencePiece turns a run of unknown characters into one `<unk>`, also across words.
    @inline(__always)
    private func dropRepeatedUnknown(_ out: inout [Int32], at first: Int) {
        if !tok.byteFallback && first > 0 && first < out.count && out[first - 1] == tok.unkID && out[first] == tok.unkID
        {
            out.remove(at: first)
        }
    }
}

extension SentencePieceTokenizer {
    /// The text as the model's normalizer (the identity rules) leaves it: a dummy space in front
    /// (or behind, for whitespace-as-suffix models), every space as the space symbol,
    /// optionally without leading, trailing and repeated spaces.
    func normalize(_ text: String, dummyPrefix: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        var text = text
        text.withUTF8 { input in
            let n = input.count
            var i = 0
            if removeExtraWhitespaces {
                while i < n && input[i] == 0x20 { i += 1 }
            }
            if i == n { return }
            out.reserveCapacity(n + n / 2 + 8)
            if addDummyPrefix && dummyPrefix && !treatWhitespaceAsSuffix { out += spaceSymbol }
            var previousWasSpace = removeExtraWhitespaces
            while i < n {
                let b = input[i]
                i += 1
                if b != 0x20 {
                    out.append(b)
                    previousWasSpace = false
                } else if !previousWasSpace {
                    out += spaceSymbol
                    previousWasSpace = removeExtraWhitespaces
                }
            }
            if removeExtraWhitespaces {
                // Also drops a literal U+2581 at the end, as sentencepiece does.
                while out.count >= spaceSymbol.count && out.suffix(spaceSymbol.count).elementsEqual(spaceSymbol) {
                    out.removeLast(spaceSymbol.count)
                }
            }
            if addDummyPrefix && treatWhitespaceAsSuffix { out += spaceSymbol }
        }
        return out
    }
}
