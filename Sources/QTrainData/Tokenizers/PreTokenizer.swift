/// GPT-2's pre-tokenizer: splits text into the pieces that byte-level BPE merges within,
/// exactly as the pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// does (first alternative that matches, at each position), written as a scanner over
/// Unicode scalars so that no regular-expression engine is needed.
public enum GPT2PreTokenizer {
    enum Kind { case letter, number, space, other }

    static func kind(_ s: Unicode.Scalar) -> Kind {
        if s.value < 0x80 {
            switch s.value {
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x30...0x39: return .number
            case 0x09...0x0D, 0x20: return .space
            default: return .other
            }
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return s.properties.isWhitespace ? .space : .other
        }
    }

    /// Calls `body` with the UTF-8 bytes of each piece of `text`, in order. With
    /// `isolatingDigits`, every number character is a piece of its own and the pattern runs on
    /// the text between them (Hugging Face's `Digits(individual_digits)` before `ByteLevel`;
    /// llama.cpp's `smollm` pre-tokenizer).
    public static func forEachPiece(
        in text: String, isolatingDigits: Bool = false, _ body: (ArraySlice<UInt8>) -> Void
    ) {
        let scalars = Array(text.unicodeScalars)
        let kinds = scalars.map(kind)
        // offsets[i] = byte offset of scalar i (the i-th byte that does not continue a UTF-8
        // sequence), so pieces are slices of one buffer.
        let bytes = Array(text.utf8)
        var offsets: [Int] = []
        offsets.reserveCapacity(scalars.count + 1)
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

    /// The end of the piece that starts at scalar `i`.
    static func pieceEnd(from i: Int, _ s: [Unicode.Scalar], _ k: [Kind], end n: Int) -> Int {
        if s[i] == "'" && i + 1 < n {
            if i + 2 < n, ["re", "ve", "ll"].contains(String(String.UnicodeScalarView([s[i + 1], s[i + 2]]))) {
                return i + 3
            }
            if ["s", "t", "m", "d"].contains(s[i + 1]) { return i + 2 }
        }
        // " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+": an optional space, then a run of one kind.
        for kind in [Kind.letter, .number, .other] {
            var j = i
            if s[j] == " " && j + 1 < n && k[j + 1] == kind { j += 1 }
            if k[j] == kind {
                while j < n && k[j] == kind { j += 1 }
                return j
            }
        }
        // Whitespace: the run, leaving its last character to the next piece when a non-space
        // follows ("\s+(?!\S)"), unless the run is that one character ("\s+").
        var e = i
        while e < n && k[e] == .space { e += 1 }
        return e < n && e - i > 1 ? e - 1 : e
    }
}
