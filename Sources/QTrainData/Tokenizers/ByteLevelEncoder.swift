import Foundation

/// Byte-level BPE over UTF-8 documents, for one thread: special tokens typed in the text are
/// found on the bytes, ``GPT2PieceScanner`` splits the rest, and each piece's ids come from a
/// ``PieceCache`` kept across documents, or from ``BPETokenizer/merge(_:)`` on a miss. Gives
/// exactly the ids of ``BPETokenizer/encode(_:)``, which runs through it.
///
/// Memory: the cache's bound (under 8 MiB); a piece the cache misses merges on the stack, so
/// nothing is allocated per document once the caller's token array has grown (but for pieces
/// longer than ``BPETokenizer/longPiece`` bytes, rare, which merge in an array).
final class ByteLevelBPEEncoder: DocumentEncoder {
    private let bpe: BPETokenizer
    let cache: PieceCache
    /// The special tokens' texts, longest first (then lowest id): at one position the longest
    /// wins, as in ``encodeSplittingSpecials(_:specials:plain:)``.
    private let specials: [(bytes: [UInt8], id: Int32)]
    /// Which bytes start a special token's text.
    private let startsSpecial: [Bool]
    /// The first byte of every special token when they share one (`<`): found with `memchr`.
    private let sharedFirstByte: UInt8?

    init(_ bpe: BPETokenizer, cache: PieceCache = PieceCache()) {
        self.bpe = bpe
        self.cache = cache
        specials = bpe.specials.map { (Array(bpe.tokens[Int($0)].utf8), $0) }.filter { !$0.bytes.isEmpty }
            .sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        var starts = [Bool](repeating: false, count: 256)
        for s in specials { starts[Int(s.bytes[0])] = true }
        startsSpecial = starts
        let firsts = Set(specials.map { $0.bytes[0] })
        sharedFirstByte = firsts.count == 1 ? firsts.first : nil
    }

    func encode(utf8 text: UnsafeBufferPointer<UInt8>, appendingTo tokens: inout [Int32]) {
        var start = 0
        while let special = nextSpecial(in: text, from: start) {
            encodePlain(UnsafeBufferPointer(rebasing: text[start..<special.at]), appendingTo: &tokens)
            tokens.append(special.id)
            start = special.at + special.length
        }
        encodePlain(UnsafeBufferPointer(rebasing: text[start...]), appendingTo: &tokens)
    }

    /// The first special token's text at or after byte `start`.
    private func nextSpecial(
        in text: UnsafeBufferPointer<UInt8>, from start: Int
    ) -> (at: Int, length: Int, id: Int32)? {
        guard !specials.isEmpty, let base = text.baseAddress else { return nil }
        var i = start
        while i < text.count {
            if let b = sharedFirstByte {
                guard let hit = memchr(base + i, Int32(b), text.count - i) else { return nil }
                i = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
            } else if !startsSpecial[Int(base[i])] {
                i += 1
                continue
            }
            for s in specials where s.bytes.count <= text.count - i && s.bytes[0] == base[i] {
                if memcmp(base + i, s.bytes, s.bytes.count) == 0 { return (i, s.bytes.count, s.id) }
            }
            i += 1
        }
        return nil
    }

    /// Appends the ids of text without special tokens.
    private func encodePlain(_ text: UnsafeBufferPointer<UInt8>, appendingTo tokens: inout [Int32]) {
        guard let base = text.baseAddress else { return }
        var scanner = GPT2PieceScanner(text, isolatingDigits: bpe.isolatesDigits)
        while let piece = scanner.next() {
            let p = base + piece.lowerBound, n = piece.count
            let h = PieceCache.hash(p, n)
            if let known = cache.lookup(p, n, hash: h) {
                // Most pieces are one token: skip append(contentsOf:)'s generic path.
                if known.count == 1 { tokens.append(known[0]) } else { tokens.append(contentsOf: known) }
                continue
            }
            if n > BPETokenizer.longPiece {
                var word = bytesToTokens(p, n)
                bpe.merge(&word)
                word.withUnsafeBufferPointer { cache.insert(p, n, hash: h, ids: $0) }
                tokens.append(contentsOf: word)
                continue
            }
            // A short piece (nearly every miss) merges in a buffer on the stack.
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: n) { word in
                var count = 0
                for i in 0..<n {
                    let t = bpe.byteTokens[Int(p[i])]
                    // A byte the vocabulary lacks is dropped (see BPETokenizer.init).
                    if t >= 0 {
                        word[count] = t
                        count += 1
                    }
                }
                count = bpe.mergeByScanning(UnsafeMutableBufferPointer(rebasing: word[..<count]))
                let ids = UnsafeBufferPointer(rebasing: word[..<count])
                cache.insert(p, n, hash: h, ids: ids)
                tokens.append(contentsOf: ids)
            }
        }
    }

    /// The byte tokens of a long piece, for the heap merge.
    private func bytesToTokens(_ p: UnsafePointer<UInt8>, _ n: Int) -> [Int32] {
        var word: [Int32] = []
        word.reserveCapacity(n)
        for i in 0..<n where bpe.byteTokens[Int(p[i])] >= 0 { word.append(bpe.byteTokens[Int(p[i])]) }
        return word
    }
}
