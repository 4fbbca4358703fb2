@testable import QTrainData

/// The byte-level BPE encoder as it was before the byte scanner, kept as an independent
/// oracle: GPT-2's pattern scanned over an array of Unicode scalars, specials split on the
/// `String`, merges looked up in a `Dictionary` and applied by rescanning the piece, a cache of
/// merged pieces per text. Slow and plain on purpose (and the baseline of the timing).
struct ReferenceBPE {
    let bpe: BPETokenizer
    /// (left << 32 | right) → rank and the id of the merged token.
    let merges: [UInt64: (rank: Int32, id: Int32)]

    init(_ bpe: BPETokenizer) {
        self.bpe = bpe
        var ids: [String: Int32] = [:]
        for (i, t) in bpe.tokens.enumerated() where !bpe.specials.contains(Int32(i)) { ids[t] = Int32(i) }
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        for (rank, (l, r)) in bpe.merges.enumerated() {
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if merges[key] == nil { merges[key] = (Int32(rank), ids[bpe.tokens[Int(l)] + bpe.tokens[Int(r)]]!) }
        }
        self.merges = merges
    }

    /// The ids of `text`, as `BPETokenizer.encode` gave them before the byte scanner.
    func encode(_ text: String) -> [Int32] {
        encodeSplittingSpecials(text, specials: bpe.specials.sorted().map { (bpe.tokens[Int($0)], $0) }) { piece, _ in
            encodePlain(piece)
        }
    }

    func encodePlain(_ text: String) -> [Int32] {
        var out: [Int32] = []
        var cache: [ArraySlice<UInt8>: [Int32]] = [:]
        Self.forEachPiece(in: text, isolatingDigits: bpe.isolatesDigits) { piece in
            if let known = cache[piece] {
                out += known
                return
            }
            var word = piece.map { bpe.byteTokens[Int($0)] }.filter { $0 >= 0 }
            merge(&word)
            cache[piece] = word
            out += word
        }
        return out
    }

    /// The lowest-ranked adjacent pair first, all its occurrences left to right, until no
    /// adjacent pair has a merge.
    func merge(_ w: inout [Int32]) {
        while w.count > 1 {
            var best = Int32.max, left: Int32 = 0, right: Int32 = 0, merged: Int32 = 0
            for i in 0..<(w.count - 1) {
                if let m = merges[UInt64(UInt32(w[i])) << 32 | UInt64(UInt32(w[i + 1]))], m.rank < best {
                    (best, left, right, merged) = (m.rank, w[i], w[i + 1], m.id)
                }
            }
            if best == .max { return }
            var out: [Int32] = []
            var i = 0
            while i < w.count {
                if i + 1 < w.count && w[i] == left && w[i + 1] == right {
                    out.append(merged)
                    i += 2
                } else {
                    out.append(w[i])
                    i += 1
                }
            }
            w = out
        }
    }

    /// The pieces of `text` (UTF-8 bytes), in order.
    static func forEachPiece(in text: String, isolatingDigits: Bool, _ body: (ArraySlice<UInt8>) -> Void) {
        let scalars = Array(text.unicodeScalars)
        let kinds = scalars.map(GPT2PreTokenizer.kind)
        // offsets[i] = byte offset of scalar i.
        let bytes = Array(text.utf8)
        var offsets: [Int] = []
        for (o, b) in bytes.enumerated() where b & 0xC0 != 0x80 { offsets.append(o) }
        offsets.append(bytes.count)
        // Pieces end at fragmentEnd: the next number character when isolating digits.
        var i = 0, fragmentEnd = isolatingDigits ? 0 : scalars.count
        while i < scalars.count {
            if isolatingDigits {
                if kinds[i] == .number {
                    body(bytes[offsets[i]..<offsets[i + 1]])
                    i += 1
                    continue
                }
                if fragmentEnd <= i {
                    fragmentEnd = i
                    while fragmentEnd < scalars.count && kinds[fragmentEnd] != .number { fragmentEnd += 1 }
                }
            }
            let end = pieceEnd(from: i, scalars, kinds, end: fragmentEnd)
            body(bytes[offsets[i]..<offsets[end]])
            i = end
        }
    }

    /// The end of the piece that starts at scalar `i`: the first alternative of
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` that matches.
    static func pieceEnd(from i: Int, _ s: [Unicode.Scalar], _ k: [GPT2PreTokenizer.Kind], end n: Int) -> Int {
        if s[i] == "'" && i + 1 < n {
            if i + 2 < n, ["re", "ve", "ll"].contains(String(String.UnicodeScalarView([s[i + 1], s[i + 2]]))) {
                return i + 3
            }
            if ["s", "t", "m", "d"].contains(s[i + 1]) { return i + 2 }
        }
        for kind in [GPT2PreTokenizer.Kind.letter, .number, .other] {
            var j = i
            if s[j] == " " && j + 1 < n && k[j + 1] == kind { j += 1 }
            if k[j] == kind {
                while j < n && k[j] == kind { j += 1 }
                return j
            }
        }
        var e = i
        while e < n && k[e] == .space { e += 1 }
        return e < n && e - i > 1 ? e - 1 : e
    }

    /// The pieces of `text`, as bytes.
    static func pieces(_ text: String, isolatingDigits: Bool) -> [[UInt8]] {
        var out: [[UInt8]] = []
        forEachPiece(in: text, isolatingDigits: isolatingDigits) { out.append(Array($0)) }
        return out
    }
}
