import Foundation
import QTrainCore

/// Saving, loading and fetching SentencePiece models.
extension SentencePieceTokenizer {
    /// Writes `tokenizer.json` holding the whole `.model` file (base64), so that the one file
    /// checkpoints copy is enough to rebuild the tokenizer.
    public func save(to directory: URL) throws {
        let obj: [String: Any] = [
            "qtrain_tokenizer": "sentencepiece", "vocab_size": vocabSize, "end_of_text": Int(endOfText),
            "model_base64": Data(modelBytes).base64EncodedString()
        ]
        try writeJSON(obj, to: directory.appendingPathComponent("tokenizer.json"))
    }

    /// Reads what ``save(to:)`` wrote (the parsed `tokenizer.json`).
    public init(tokenizerJSON obj: [String: Any]) throws {
        let hint = "the tokenizer.json is damaged; re-run `qtrain-dist prepare`"
        guard obj["qtrain_tokenizer"] as? String == "sentencepiece" else {
            throw QTrainError.data("tokenizer.json does not describe a SentencePiece tokenizer", hint: hint)
        }
        guard let base64 = obj["model_base64"] as? String, let data = Data(base64Encoded: base64) else {
            throw QTrainError.data("tokenizer.json has no valid model_base64", hint: hint)
        }
        do {
            try self.init(modelData: data)
        } catch let error as QTrainError {
            throw QTrainError.data("tokenizer.json holds a broken model: \(error.message)", hint: hint)
        }
        guard obj["vocab_size"] as? Int == vocabSize, obj["end_of_text"] as? Int == Int(endOfText) else {
            throw QTrainError.data(
                "tokenizer.json says vocab_size \(obj["vocab_size"] ?? "none"), end_of_text \(obj["end_of_text"] ?? "none"); "
                    + "its model has \(vocabSize) pieces and end of text \(endOfText)", hint: hint)
        }
    }

    /// Writes `tokenizer.model` with `tokenizer_config.json` and `special_tokens_map.json` for
    /// the `transformers` LlamaTokenizer (legacy mode, no BOS/EOS added), which then gives our ids.
    public func saveForHuggingFace(to directory: URL) throws {
        try Data(modelBytes).write(to: directory.appendingPathComponent("tokenizer.model"), options: .atomic)
        var special: [String: Any] = ["unk_token": pieceTexts[Int(unkID)], "eos_token": pieceTexts[Int(eosID)]]
        if bosID >= 0 && Int(bosID) < vocabSize { special["bos_token"] = pieceTexts[Int(bosID)] }
        var config = special
        config.merge([
            "tokenizer_class": "LlamaTokenizer", "add_bos_token": false, "add_eos_token": false, "legacy": true,
            "model_max_length": 1_000_000, "clean_up_tokenization_spaces": false
        ]) { a, _ in a }
        for (name, obj) in [("tokenizer_config.json", config), ("special_tokens_map.json", special)] {
            try writeJSON(obj, to: directory.appendingPathComponent(name))
        }
    }

    /// Mistral's first tokenizer (`tokenizer.model.v1` of the Apache-2.0 `mistral-common==1.13.1`
    /// wheel): BPE, 32,000 pieces, byte fallback, the layout of LLaMA's. The wheel is
    /// downloaded into `cache` unless it is there already.
    public static func fetchMistralV1(cache: URL, log: (String) -> Void) throws -> SentencePieceTokenizer {
        let member = "mistral_common/data/tokenizer.model.v1"
        let wheel = try CorpusFetcher.locateOrDownload(
            "mistral-common==1.13.1", prefix: "mistral_common-1.13.1", cache: cache, log: log)
        let out = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtrain-spm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        try CorpusFetcher.extract(wheel, members: member, into: out)
        let hint = "delete \(wheel.path) and try again to download a fresh copy"
        guard let data = try? Data(contentsOf: out.appendingPathComponent("tokenizer.model.v1")) else {
            throw QTrainError.data("\(wheel.lastPathComponent) has no \(member)", hint: hint)
        }
        // Pinned, so that a damaged or altered download cannot silently change the token ids.
        let expected = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
        let actual = SHA256.hex(data)
        guard actual == expected else {
            throw QTrainError.data(
                "\(member) in \(wheel.lastPathComponent) has SHA-256 \(actual), expected \(expected)", hint: hint)
        }
        return try SentencePieceTokenizer(modelData: data)
    }
}
