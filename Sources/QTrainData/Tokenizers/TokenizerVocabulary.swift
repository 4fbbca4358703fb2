/// A tokenizer as a list of tokens with their kinds — the form llama.cpp's GGUF files hold
/// (`tokenizer.ggml.*`), so that an export writes any tokenizer without knowing its type.
public struct TokenizerVocabulary: Sendable, Equatable {
    /// How the tokens are used: SentencePiece's BPE over pieces (`llama`) or a byte-level BPE
    /// (`gpt2`).
    public enum Model: String, Sendable {
        case sentencePiece = "llama"
        case byteLevelBPE = "gpt2"
    }

    /// A token's kind, numbered as SentencePiece and GGUF number them.
    public enum TokenType: Int32, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public var model: Model
    /// Token text by id (byte-level BPE: bytes as GPT-2's printable characters).
    public var tokens: [String]
    public var types: [TokenType]
    /// SentencePiece's piece scores.
    public var scores: [Float]?
    /// Byte-level BPE merges in priority order, as `left right`.
    public var merges: [String] = []
    /// Special ids, where the tokenizer has them.
    public var unknown: Int32?
    public var beginning: Int32?
    /// SentencePiece: whether a space is put before the text.
    public var addsSpacePrefix: Bool?
    /// Byte-level BPE: llama.cpp's name of the pre-tokenizer (`gpt-2`, `smollm`).
    public var preTokenizer: String?
}
