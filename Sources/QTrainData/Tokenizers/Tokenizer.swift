import Foundation
import QTrainCore

/// Text ↔ token ids.
public protocol Tokenizer: Sendable {
    /// Number of distinct ids; every id is below it.
    var vocabSize: Int { get }
    /// The id that separates documents.
    var endOfText: Int32 { get }
    /// A stable description of the tokenizer; its SHA-256 identifies it in shard headers.
    var identity: String { get }
    func encode(_ text: String) -> [Int32]
    func decode(_ tokens: [Int32]) -> String
    /// Writes the tokenizer's file (`tokenizer.json`) into `directory`.
    func save(to directory: URL) throws
    /// UTF-8 bytes of text that `token` stands for (0 for special tokens), for bits per byte.
    func byteCount(of token: Int32) -> Int
    /// Writes the files Hugging Face loads the tokenizer from (`tokenizer.json` for BPE,
    /// `tokenizer.model` for SentencePiece; `tokenizer_config.json`, `special_tokens_map.json`).
    func saveForHuggingFace(to directory: URL) throws
    /// The tokens with their kinds, as GGUF files list them.
    var vocabulary: TokenizerVocabulary { get }
    /// A new encoder for one thread of `prepare`; it may keep what it learns (a BPE's merged
    /// pieces) from one document to the next, so it is never shared between threads.
    func makeDocumentEncoder() -> any DocumentEncoder
}

/// Encodes many documents on one thread, as ``Tokenizer/encode(_:)`` would encode each.
public protocol DocumentEncoder: AnyObject {
    /// Appends the tokens of `text` (valid UTF-8) to `tokens`: exactly the ids
    /// ``Tokenizer/encode(_:)`` gives for the same text.
    func encode(utf8 text: UnsafeBufferPointer<UInt8>, appendingTo tokens: inout [Int32])
}

/// The encoder of a tokenizer without a faster one: each document through ``Tokenizer/encode(_:)``.
final class StringDocumentEncoder: DocumentEncoder {
    let tokenizer: any Tokenizer

    init(_ tokenizer: any Tokenizer) { self.tokenizer = tokenizer }

    func encode(utf8 text: UnsafeBufferPointer<UInt8>, appendingTo tokens: inout [Int32]) {
        tokens += tokenizer.encode(String(decoding: text, as: UTF8.self))
    }
}

extension Tokenizer {
    public func makeDocumentEncoder() -> any DocumentEncoder { StringDocumentEncoder(self) }

    /// SHA-256 of ``identity``, as stored in shard headers.
    public var identityHash: [UInt8] {
        var h = SHA256()
        h.update(data: Array(identity.utf8))
        return Array(h.finalize())
    }
}

/// Bytes as tokens: ids 0...255 are UTF-8 bytes, 256 is `<|endoftext|>`.
public struct ByteTokenizer: Tokenizer {
    public init() {}

    /// GPT-2's byte alphabet and `<|endoftext|>`, no merges.
    public var vocabulary: TokenizerVocabulary {
        TokenizerVocabulary(
            model: .byteLevelBPE, tokens: byteLevelAlphabet().map { String($0) } + ["<|endoftext|>"],
            types: Array(repeating: .normal, count: 256) + [.control])
    }
    public var vocabSize: Int { 257 }
    public var endOfText: Int32 { 256 }
    public var identity: String { "qtrain-bytes-v1:257" }

    /// A literal `<|endoftext|>` in the text is the end-of-text id, as in the exported tokenizer.
    public func encode(_ text: String) -> [Int32] {
        encodeSplittingSpecials(text, specials: [("<|endoftext|>", 256)]) { piece, _ in piece.utf8.map { Int32($0) } }
    }

    public func decode(_ tokens: [Int32]) -> String {
        var bytes: [UInt8] = []
        var out = ""
        for t in tokens {
            if t >= 0 && t < 256 {
                bytes.append(UInt8(t))
            } else {
                out += String(decoding: bytes, as: UTF8.self)
                bytes.removeAll()
                if t == endOfText { out += "<|endoftext|>" }
            }
        }
        return out + String(decoding: bytes, as: UTF8.self)
    }

    public func byteCount(of token: Int32) -> Int { token >= 0 && token < 256 ? 1 : 0 }

    /// A byte-level BPE with no merges: the ByteLevel pre-tokenizer maps each byte to one
    /// printable character (GPT-2's table) and the vocabulary gives that character the byte's
    /// id, so Hugging Face `tokenizers` produces exactly our ids.
    public func saveForHuggingFace(to directory: URL) throws {
        var vocab: [String: Int] = [:]
        for (b, ch) in byteLevelAlphabet().enumerated() { vocab[String(ch)] = b }
        let special: [String: Any] = [
            "id": 256, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        ]
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": [special],
            "normalizer": NSNull(),
            "pre_tokenizer": [
                "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false
            ],
            "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": [String]()
            ] as [String: Any]
        ]
        try writeHuggingFaceTokenizer(tokenizer, endOfText: "<|endoftext|>", to: directory)
    }

    public func save(to directory: URL) throws {
        let json = """
            {"qtrain_tokenizer": "bytes", "vocab_size": 257, "end_of_text": 256}

            """
        try json.write(to: directory.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
    }
}

/// Loads the tokenizer a data directory (or checkpoint) was prepared with.
public enum TokenizerLoader {
    /// Reads `directory/tokenizer.json`: qtrain's byte tokenizer, a SentencePiece model wrapped
    /// by qtrain, or a Hugging Face byte-level BPE (what `prepare --tokenizer bpe:N|gpt2`
    /// writes, or one made elsewhere).
    public static func load(from directory: URL, file name: String = "tokenizer.json") throws -> any Tokenizer {
        let file = directory.appendingPathComponent(name)
        guard let data = try? Data(contentsOf: file) else {
            throw QTrainError.data(
                "no tokenizer at \(file.path)", hint: "run `qtrain-dist prepare` to create the data directory")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw QTrainError.data("\(file.path) is not valid JSON", hint: "re-run `qtrain-dist prepare`")
        }
        if obj["qtrain_tokenizer"] as? String == "bytes" { return ByteTokenizer() }
        if obj["qtrain_tokenizer"] as? String == "sentencepiece" {
            return try SentencePieceTokenizer(tokenizerJSON: obj)
        }
        if obj["model"] != nil { return try BPETokenizer(huggingFaceJSON: obj, source: file.path) }
        throw QTrainError.data(
            "\(file.path) describes a tokenizer this version cannot load",
            hint: "re-run `qtrain-dist prepare`")
    }
}

/// GPT-2's byte-to-character table: printable bytes map to themselves, the rest to
/// characters from U+0100 on, so every byte is one visible character.
package func byteLevelAlphabet() -> [Character] {
    var printable = Array(33...126) + Array(161...172) + Array(174...255)
    var chars = printable
    var n = 0
    for b in 0..<256 where !printable.contains(b) {
        printable.append(b)
        chars.append(256 + n)
        n += 1
    }
    var table = [Character](repeating: " ", count: 256)
    for (b, c) in zip(printable, chars) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
    return table
}

/// Encodes `text` with special tokens typed in it as their ids (what Hugging Face `tokenizers`
/// does with added special tokens): the text between them goes through `plain` piece by piece,
/// told whether the piece starts the text. Training data, evaluation texts and prompts
/// therefore tokenize as the exported tokenizer does.
func encodeSplittingSpecials(
    _ text: String, specials: [(text: String, id: Int32)],
    plain: (_ piece: String, _ startsText: Bool) -> [Int32]
) -> [Int32] {
    guard specials.contains(where: { !$0.text.isEmpty && text.contains($0.text) }) else { return plain(text, true) }
    var out: [Int32] = []
    var rest = text[...]
    while !rest.isEmpty {
        var first: (range: Range<Substring.Index>, id: Int32)?
        for s in specials where !s.text.isEmpty {
            if let r = rest.range(of: s.text),
                first == nil || r.lowerBound < first!.range.lowerBound
                    || (r.lowerBound == first!.range.lowerBound && r.upperBound > first!.range.upperBound)
            {
                first = (r, s.id)
            }
        }
        guard let hit = first else {
            out += plain(String(rest), rest.startIndex == text.startIndex)
            break
        }
        if hit.range.lowerBound > rest.startIndex {
            out += plain(String(rest[..<hit.range.lowerBound]), rest.startIndex == text.startIndex)
        }
        out.append(hit.id)
        rest = rest[hit.range.upperBound...]
    }
    return out
}
