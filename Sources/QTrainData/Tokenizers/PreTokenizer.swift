/// GPT-2's pre-tokenizer: splits text into the pieces that byte-level BPE merges within,
/// exactly as the pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// does (first alternative that matches, at each position), written as a scanner over UTF-8
/// bytes (``GPT2PieceScanner``) so that no regular-expression engine is needed.
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

    /// Calls `body` with the UTF-8 bytes of each piece of `text`, in order (through
    /// ``GPT2PieceScanner``). With `isolatingDigits`, every number character is a piece of its
    /// own and the pattern runs on the text between them (Hugging Face's
    /// `Digits(individual_digits)` before `ByteLevel`; llama.cpp's `smollm` pre-tokenizer).
    public static func forEachPiece(
        in text: String, isolatingDigits: Bool = false, _ body: (ArraySlice<UInt8>) -> Void
    ) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = GPT2PieceScanner(buffer, isolatingDigits: isolatingDigits)
            while let piece = scanner.next() { body(bytes[piece]) }
        }
    }
}
