@testable import QTrainData

/// The byte-level BPE encoder as it was before the byte scanner, kept as an independent
/// oracle: GPT-2's pattern scanned over an array of Unicode scalars, specials split on the
/// `String`, a cache of merged pieces per text. Slow and plain on purpose.
enum ReferenceBPE {
    /// The ids of `text`, as `BPETokenizer.encode` gave them before the byte scanner.
    static func encode(_ text: String, with bpe: BPETokenizer) -> [Int32] {
        encodeSplittingSpecials(text, specials: bpe.specials.sorted().map { (bpe.tokens[Int($0)], $0) }) { piece, _ in
            encodePlain(piece, with: bpe)
        }
    }

    static func encodePlain(_ text: String, with bpe: BPETokenizer) -> [Int32] {
        var out: [Int32] = []
        var cache: [ArraySlice<UInt8>: [Int32]] = [:]
        forEachPiece(in: text, isolatingDigits: bpe.isolatesDigits) { piece in
            if let known = cache[piece] {
                out += known
                return
            }
            var word = piece.map { bpe.byteTokens[Int($0)] }.filter { $0 >= 0 }
            bpe.merge(&word)
            cache[piece] = word
            out += word
        }
        return out
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
