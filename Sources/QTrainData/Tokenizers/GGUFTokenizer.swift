import Foundation
import QTrainCore

extension BPETokenizer {
    /// The tokenizer a GGUF file carries (`tokenizer.ggml.*`), as llama.cpp builds it: a
    /// byte-level BPE (`model = gpt2`) with GPT-2's pre-tokenizer or SmolLM2's (`pre = smollm`:
    /// digits one by one first); control and user-defined tokens are specials, never made from
    /// text. Documents are separated by `<|endoftext|>` when the vocabulary has it, else by the
    /// end-of-sequence token.
    public init(gguf: GGUFReader) throws {
        let file = gguf.url.lastPathComponent
        func fail(_ what: String, hint: String? = nil) -> QTrainError {
            QTrainError(.checkpoint, "\(file): \(what)", hint: hint)
        }
        let model = gguf.metadata["tokenizer.ggml.model"]?.string
        guard model == "gpt2" else {
            throw fail(
                "its tokenizer is \(model.map { "`\($0)`" } ?? "missing") (tokenizer.ggml.model); qtrain reads the byte-level BPE kind (gpt2) from GGUF files",
                hint: model == "llama"
                    ? "pass the model's SentencePiece tokenizer.model to --tokenizer instead" : nil)
        }
        let pre = gguf.metadata["tokenizer.ggml.pre"]?.string ?? "default"
        let digits: Bool
        switch pre {
        case "default", "gpt-2", "gpt2": digits = false
        case "smollm": digits = true
        default:
            throw fail(
                "its pre-tokenizer `\(pre)` (tokenizer.ggml.pre) is not one qtrain implements",
                hint: "qtrain tokenizes like llama.cpp's gpt-2 and smollm pre-tokenizers")
        }
        guard let tokens = gguf.metadata["tokenizer.ggml.tokens"]?.strings, !tokens.isEmpty else {
            throw fail("it has no token list (tokenizer.ggml.tokens)")
        }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.integers ?? []
        guard types.isEmpty || types.count == tokens.count else {
            throw fail("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        var specials = Set<Int32>()
        for (i, t) in types.enumerated() where t == 3 || t == 4 { specials.insert(Int32(i)) }
        let merges: [(String, String)] = try (gguf.metadata["tokenizer.ggml.merges"]?.strings ?? []).map { m in
            guard let space = m.firstIndex(of: " ") else { throw fail("the merge \(m.debugDescription) has no space") }
            return (String(m[..<space]), String(m[m.index(after: space)...]))
        }
        let eos = gguf.metadata["tokenizer.ggml.eos_token_id"]?.integer
        guard let separator = tokens.firstIndex(of: "<|endoftext|>") ?? eos, tokens.indices.contains(separator)
        else { throw fail("it has neither <|endoftext|> nor an end-of-sequence token to separate documents") }
        specials.insert(Int32(separator))
        try self.init(
            tokens: tokens, merges: merges, specials: specials, endOfText: Int32(separator), isolatesDigits: digits,
            source: file)
    }
}
