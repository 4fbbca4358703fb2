import ArgumentParser
import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainInference
import QTrainWeights

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss, perplexity and bits per byte of a checkpoint on validation data or a text.")

    @OptionGroup var inference: InferenceOptions

    @Option(
        help:
            "A prepared data directory (validation split), a .bin shard or a text file. Default: the run's data.dir (with data.mix, required unless the mixture has one directory)."
    )
    var data: String?

    @Option(help: "Evaluate at most this many windows (spread evenly). Default: all.")
    var sequences: Int?

    @Option(help: "Windows per forward pass.")
    var batch: Int = 8

    @Option(
        help: """
            Also write the tokens and logits of the first window to this safetensors file (for comparisons \
            with other implementations).
            """)
    var logitsOut: String?

    @Option(
        help: """
            Also write every scored window (its tokens and mean loss) to this JSON Lines file, so that \
            another implementation can score the same tokens in the same windows.
            """)
    var windowsOut: String?

    @Flag(
        help: """
            Print one JSON object (loss, perplexity, bits per byte, tokens, windows, checkpoint and \
            settings) instead of text.
            """)
    var json = false

    func run() throws {
        try reportingErrors {
            let ckpt = try LoadedCheckpoint(
                path: URL(fileURLWithPath: inference.checkpoint),
                log: { message in
                    if json { FileHandle.standardError.write(Data((message + "\n").utf8)) } else { print(message) }
                })
            Threads.configure(requested: ckpt.config.train.threads)
            let model = try ckpt.model(batch: batch, weights: inference.weights, compute: inference.compute)
            if inference.activationQuant == .off { model.quantizesActivations = false }
            if data == nil, let mix = ckpt.config.data.mix, mix.entries.count > 1 {
                throw QTrainError.config(
                    "the run trained on a mixture of \(mix.entries.count) data directories; eval scores one",
                    hint:
                        "name it with --data, e.g. --data \(mix.entries[0].path) (the mixture: \(mix.entries.map(\.path).joined(separator: ", ")))"
                )
            }
            let source = URL(fileURLWithPath: data ?? ckpt.config.data.firstDirectory)
            let tokens = try Evaluation.tokens(from: source, tokenizer: ckpt.tokenizer)
            var windows = ""
            let r = try Evaluation.run(
                model: model, tokens: tokens, tokenizer: ckpt.tokenizer, maxSequences: sequences,
                window: windowsOut == nil
                    ? nil
                    : { ids, loss in
                        windows +=
                            "{\"tokens\": [\(ids.map(String.init).joined(separator: ", "))], \"loss\": \(loss)}\n"
                    })
            if let windowsOut {
                do {
                    try writeDurably(Data(windows.utf8), to: URL(fileURLWithPath: windowsOut))
                } catch {
                    throw QTrainError(.io, "cannot write \(windowsOut): \(error)")
                }
            }
            if json {
                let obj: [String: Any] = [
                    "checkpoint": ckpt.directory.path, "step": ckpt.state.step, "quant": ckpt.config.quant.label,
                    "weights": inference.weights.rawValue,
                    "activation_quant": model.quantizesActivations ? "on" : "off",
                    "compute": model.backend.name, "data": source.path, "seq_len": ckpt.config.model.seqLen,
                    "windows": r.sequences, "tokens": r.tokens, "bytes": r.bytes, "loss": r.loss,
                    "perplexity": r.perplexity, "bits_per_byte": r.bitsPerByte.isFinite ? r.bitsPerByte : NSNull()
                ]
                let text = try JSONSerialization.data(
                    withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: text, as: UTF8.self))
            } else {
                print(
                    "checkpoint \(ckpt.directory.path) (step \(ckpt.state.step), \(ckpt.config.quant.label), weights \(inference.weights.rawValue), activation quantisation \(model.quantizesActivations ? "on" : "off"), compute \(model.backend.name))"
                )
                print("data \(source.path): \(r.sequences) windows of up to \(ckpt.config.model.seqLen) tokens")
                print(
                    String(
                        format: "loss %.4f | perplexity %.3f | bits per byte %.4f | tokens %d", r.loss, r.perplexity,
                        r.bitsPerByte, r.tokens))
            }
            if let logitsOut {
                let T = ckpt.config.model.seqLen, V = ckpt.config.model.vocabSize
                let window = Array(tokens.prefix(T))
                let logits = try model.logits(tokens: window)
                var file = SafetensorsWriter()
                file.tensors.append(.init(name: "tokens", dtype: .i32, shape: [window.count], values: window))
                file.tensors.append(.init(name: "logits", dtype: .f32, shape: [window.count, V], values: logits))
                try file.write(to: URL(fileURLWithPath: logitsOut))
                if !json { print("wrote the logits of \(window.count) tokens to \(logitsOut)") }
            }
        }
    }
}
