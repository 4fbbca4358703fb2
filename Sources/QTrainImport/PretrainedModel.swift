import Foundation
import QTrainCore
import QTrainData

/// A pretrained LLaMA-architecture model to start from (`train.init_from`, `qtrain-dist
/// import`): a GGUF file or a Hugging Face folder, read as qtrain's architecture — its
/// ``config`` (the context length as `seq_len`), every tensor under qtrain's (Hugging Face's)
/// name and layout as FP32, and its tokenizer. Whatever qtrain's model cannot represent
/// faithfully (another architecture, RoPE scaling, biases, an unknown tensor or type) is refused
/// when the source is opened, before anything is written.
public struct PretrainedModel {
    public enum Format: String, Sendable {
        case gguf = "GGUF"
        case huggingFace = "Hugging Face"
    }

    public let url: URL
    public let format: Format
    /// The model's own name for itself, when it has one.
    public let name: String?
    /// The architecture, with `seq_len` the context it was trained for.
    public let config: ModelConfig
    /// Each tensor's storage type in the source (`Q4_1`, `BF16`, …), by qtrain name.
    public let sourceTypes: [String: String]
    let reader: (ParameterSpec, UnsafeMutablePointer<Float>) throws -> Void
    let tokenizerReader: () throws -> any Tokenizer

    /// Opens `path`: a `.gguf` file, a folder with `config.json`, or the name of a model of
    /// ``ModelCatalog`` (`smollm2`), fetched into `cache` the first time.
    public static func open(
        _ path: String, cache: URL = URL(fileURLWithPath: "data/.cache"), log: (String) -> Void = { _ in }
    ) throws -> PretrainedModel {
        if let entry = ModelCatalog.entry(path), !FileManager.default.fileExists(atPath: path) {
            return try open(ModelCatalog.locate(entry, cache: cache, log: log).path)
        }
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw QTrainError(
                .checkpoint, "\(path) does not exist",
                hint: "give a GGUF file, a Hugging Face model folder (with config.json) or a model name ("
                    + ModelCatalog.entries.map(\.name).joined(separator: ", ") + ")")
        }
        if isDirectory.boolValue { return try huggingFace(url) }
        return try gguf(url)
    }

    /// The FP32 values of tensor `spec` of ``config``'s layout, in Hugging Face's layout.
    public func values(of spec: ParameterSpec, into out: UnsafeMutablePointer<Float>) throws {
        try reader(spec, out)
    }

    /// The model's tokenizer, checked to fit its vocabulary.
    public func tokenizer() throws -> any Tokenizer {
        let t = try tokenizerReader()
        guard t.vocabSize <= config.vocabSize else {
            throw QTrainError(
                .checkpoint,
                "\(url.lastPathComponent): the tokenizer has \(t.vocabSize) tokens but the model only \(config.vocabSize) embeddings",
                hint: "the tokenizer and the weights do not belong together")
        }
        return t
    }

    /// e.g. `GGUF Smollm2 135M (30 layers, d 576, …)`.
    public var summary: String {
        "\(format.rawValue) \(name.map { "\($0) " } ?? "")(\(config.summary()))"
    }

    /// The one message of a source qtrain cannot import.
    static func refuse(_ url: URL, _ what: String, hint: String? = nil) -> QTrainError {
        QTrainError(.checkpoint, "cannot import \(url.lastPathComponent): \(what)", hint: hint)
    }

    /// Checks the assembled architecture as a config would be.
    static func checked(_ config: ModelConfig, _ url: URL) throws -> ModelConfig {
        do { try config.validate(path: "model") } catch let e as QTrainError {
            throw refuse(url, "its shape is not one qtrain's model takes (\(e.message))")
        }
        return config
    }
}
