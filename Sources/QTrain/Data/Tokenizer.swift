import Foundation

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
}

extension Tokenizer {
    /// SHA-256 of ``identity``, as stored in shard headers.
    public var identityHash: [UInt8] {
        var h = SHA256()
        h.update(Array(identity.utf8))
        return h.finalize()
    }
}

/// Bytes as tokens: ids 0...255 are UTF-8 bytes, 256 is `<|endoftext|>`.
public struct ByteTokenizer: Tokenizer {
    public init() {}
    public var vocabSize: Int { 257 }
    public var endOfText: Int32 { 256 }
    public var identity: String { "qtrain-bytes-v1:257" }

    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }

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

    public func save(to directory: URL) throws {
        let json = """
            {"qtrain_tokenizer": "bytes", "vocab_size": 257, "end_of_text": 256}

            """
        try json.write(to: directory.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
    }
}

/// Loads the tokenizer a data directory was prepared with.
public enum TokenizerLoader {
    public static func load(from directory: URL) throws -> any Tokenizer {
        let file = directory.appendingPathComponent("tokenizer.json")
        guard let data = try? Data(contentsOf: file) else {
            throw QTrainError.data("no tokenizer at \(file.path)", hint: "run `qtrain-dist prepare` to create the data directory")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw QTrainError.data("\(file.path) is not valid JSON", hint: "re-run `qtrain-dist prepare`")
        }
        if obj["qtrain_tokenizer"] as? String == "bytes" { return ByteTokenizer() }
        throw QTrainError.data("\(file.path) describes a tokenizer this version cannot load",
                               hint: "re-run `qtrain-dist prepare`")
    }
}
