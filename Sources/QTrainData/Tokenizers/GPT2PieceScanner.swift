/// GPT-2's pre-tokenizer over UTF-8 bytes: the pieces of
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (first alternative that matches, at each position), as byte ranges of one buffer.
///
/// ASCII is classified by a 256-entry table; other scalars are decoded in place and classified
/// by ``GPT2PreTokenizer/kind(_:)`` (through a table for the Basic Multilingual Plane), so no
/// `String` or scalar array is built. Bytes that are not valid UTF-8 count as one "other"
/// character each: the encoders are given valid UTF-8, and this keeps a bad byte in bounds.
struct GPT2PieceScanner {
    // Kinds as bytes, so that the tables are flat.
    static let letter: UInt8 = 0
    static let number: UInt8 = 1
    static let space: UInt8 = 2
    static let other: UInt8 = 3
    /// In ``asciiKinds``: a byte of a multi-byte scalar, decoded to be classified.
    static let multiByte: UInt8 = 4

    static let asciiKinds = KindTable(count: 256) { b in
        b < 0x80 ? code(GPT2PreTokenizer.kind(Unicode.Scalar(UInt8(b)))) : multiByte
    }

    /// The kind of every scalar below U+10000 (surrogates: other); computed once, 64 KiB.
    static let bmpKinds = KindTable(count: 0x10000) { v in
        Unicode.Scalar(UInt32(v)).map { code(GPT2PreTokenizer.kind($0)) } ?? other
    }

    /// A table filled once and never freed (so its address stays valid), read from any thread.
    struct KindTable: @unchecked Sendable {
        let base: UnsafePointer<UInt8>

        init(count: Int, _ kind: (Int) -> UInt8) {
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
            for i in 0..<count { p[i] = kind(i) }
            base = UnsafePointer(p)
        }
    }

    static func code(_ kind: GPT2PreTokenizer.Kind) -> UInt8 {
        switch kind {
        case .letter: return letter
        case .number: return number
        case .space: return space
        case .other: return other
        }
    }

    private let bytes: UnsafePointer<UInt8>
    private let end: Int
    private let ascii: UnsafePointer<UInt8>
    private let bmp: UnsafePointer<UInt8>
    /// With it, every number character is a piece of its own and the pattern runs on the text
    /// between them (Hugging Face's `Digits(individual_digits)` before `ByteLevel`, SmolLM2).
    private let isolatesDigits: Bool
    /// Where the next piece starts.
    private var position = 0

    /// Scans `text`, which must outlive the scanner.
    init(_ text: UnsafeBufferPointer<UInt8>, isolatingDigits: Bool) {
        // A dangling but never-read address for an empty text.
        bytes = text.baseAddress ?? UnsafePointer(bitPattern: 1)!
        end = text.count
        ascii = Self.asciiKinds.base
        bmp = Self.bmpKinds.base
        isolatesDigits = isolatingDigits
    }

    /// The byte range of the next piece, or nil at the end of the text.
    @inline(__always)
    mutating func next() -> Range<Int>? {
        guard position < end else { return nil }
        let start = position
        position = pieceEnd(from: start)
        return start..<position
    }

    /// The kind of the scalar at byte `i` (< end) and its length in bytes.
    @inline(__always)
    private func kind(at i: Int) -> (kind: UInt8, length: Int) {
        let k = ascii[Int(bytes[i])]
        return k != Self.multiByte ? (k, 1) : decodedKind(at: i)
    }

    private func decodedKind(at i: Int) -> (kind: UInt8, length: Int) {
        let b0 = UInt32(bytes[i])
        // Length from the lead byte; a stray continuation byte or an invalid lead is one byte.
        let length = b0 >= 0xF0 ? (b0 <= 0xF4 ? 4 : 0) : b0 >= 0xE0 ? 3 : b0 >= 0xC2 ? 2 : 0
        guard length > 0, i + length <= end else { return (Self.other, 1) }
        var v = b0 & (0x7F >> UInt32(length))
        for j in 1..<length {
            let b = UInt32(bytes[i + j])
            guard b & 0xC0 == 0x80 else { return (Self.other, 1) }
            v = v << 6 | (b & 0x3F)
        }
        if v < 0x10000 { return (bmp[Int(v)], length) }
        guard let s = Unicode.Scalar(v) else { return (Self.other, 1) }
        return (Self.code(GPT2PreTokenizer.kind(s)), length)
    }

    /// Whether the next scalar ends the fragment the pattern runs on: a number character when
    /// digits are isolated (the pattern then sees the text end there).
    @inline(__always)
    private func isFragmentEnd(_ kind: UInt8) -> Bool { isolatesDigits && kind == Self.number }

    /// The end of the piece that starts at byte `i`.
    private func pieceEnd(from i: Int) -> Int {
        let b = bytes[i]
        // The contractions; their letters are ASCII, so bytes are characters here.
        if b == UInt8(ascii: "'") && i + 1 < end {
            if i + 2 < end {
                let pair = UInt16(bytes[i + 1]) << 8 | UInt16(bytes[i + 2])
                if pair == 0x7265 || pair == 0x7665 || pair == 0x6C6C { return i + 3 }  // re, ve, ll
            }
            switch bytes[i + 1] {
            case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"): return i + 2
            default: break
            }
        }
        var (k, length) = kind(at: i)
        if isFragmentEnd(k) { return i + length }
        var j = i + length
        // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional U+0020, then a run of one kind.
        if b == 0x20 && j < end {
            let (k2, length2) = kind(at: j)
            if k2 != Self.space && !isFragmentEnd(k2) {
                k = k2
                j += length2
            }
        }
        if k != Self.space {
            while j < end {
                let (kj, lj) = kind(at: j)
                if kj != k { break }
                j += lj
            }
            return j
        }
        // Whitespace: the run, leaving its last character to the next piece when a non-space
        // follows ("\s+(?!\S)"), unless the run is that one character ("\s+").
        var last = i
        while j < end {
            let (kj, lj) = kind(at: j)
            if kj != Self.space {
                return last > i && !isFragmentEnd(kj) ? last : j
            }
            last = j
            j += lj
        }
        return j
    }
}
