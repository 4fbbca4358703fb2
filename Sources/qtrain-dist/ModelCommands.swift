import ArgumentParser
import Foundation
import QTrain

extension WeightChoice: ExpressibleByArgument {}
extension HuggingFaceExport.DType: ExpressibleByArgument {}

/// On or off, for options that switch something.
enum Switch: String, ExpressibleByArgument, CaseIterable {
    case on, off
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Loss, perplexity and bits per byte of a checkpoint on validation data or a text.")

    @Argument(help: "A run directory (its newest valid checkpoint) or a checkpoint directory.")
    var checkpoint: String

    @Option(help: "A prepared data directory (validation split), a .bin shard or a text file. Default: the run's data.dir.")
    var data: String?

    @Option(help: "stored, or ternary: re-quantise every quantised matrix to ternary (absmean) at load.")
    var weights: WeightChoice = .stored

    @Option(help: "on (as trained) or off: no int8 quantisation of linear-layer inputs, as a plain LLaMA computes.")
    var activationQuant: Switch = .on

    @Option(help: "Evaluate at most this many windows (spread evenly). Default: all.")
    var sequences: Int?

    @Option(help: "Windows per forward pass.")
    var batch: Int = 8

    @Option(help: "Also write the tokens and logits of the first window to this safetensors file (for comparisons with other implementations).")
    var logitsOut: String?

    func run() throws {
        try reportingErrors {
            let ckpt = try LoadedCheckpoint(path: URL(fileURLWithPath: checkpoint), log: { print($0) })
            Threads.configure(ckpt.config.train.threads > 0 ? ckpt.config.train.threads : Threads.availableCores)
            let model = try ckpt.model(batch: batch, weights: weights)
            if activationQuant == .off { model.quantizesActivations = false }
            let source = URL(fileURLWithPath: data ?? ckpt.config.data.dir)
            let tokens = try Evaluation.tokens(from: source, tokenizer: ckpt.tokenizer)
            let r = try Evaluation.run(model: model, tokens: tokens, tokenizer: ckpt.tokenizer, maxSequences: sequences)
            print("checkpoint \(ckpt.directory.path) (step \(ckpt.state.step), \(ckpt.config.quant.label), weights \(weights.rawValue), activation quantisation \(model.quantizesActivations ? "on" : "off"))")
            print("data \(source.path): \(r.sequences) windows of \(ckpt.config.model.seqLen) tokens")
            print(String(format: "loss %.4f | perplexity %.3f | bits per byte %.4f | tokens %d", r.loss, r.perplexity, r.bitsPerByte, r.tokens))
            if let logitsOut {
                let T = ckpt.config.model.seqLen, V = ckpt.config.model.vocabSize
                let window = Array(tokens.prefix(T))
                let logits = try model.logits(tokens: window)
                var file = SafetensorsWriter()
                file.tensors.append(.init(name: "tokens", dtype: .i32, shape: [window.count], values: window))
                file.tensors.append(.init(name: "logits", dtype: .f32, shape: [window.count, V], values: logits))
                try file.write(to: URL(fileURLWithPath: logitsOut))
                print("wrote the logits of \(window.count) tokens to \(logitsOut)")
            }
        }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Sample text from a checkpoint, streaming tokens as they are produced (key/value cache).")

    @Argument(help: "A run directory or a checkpoint directory.")
    var checkpoint: String

    @Option(help: "Text to continue.")
    var prompt: String = ""

    @Option(help: "Tokens to generate.")
    var maxTokens: Int = 200

    @Option(help: "Softmax temperature; 0 is greedy.")
    var temperature: Double = 0.8

    @Option(help: "Sample among the k most likely tokens (0: all).")
    var topK: Int = 50

    @Option(help: "Then among the smallest set with this much probability.")
    var topP: Double = 0.95

    @Option(help: "Random seed of the sampler.")
    var seed: Int = 1

    @Option(help: "stored, or ternary: re-quantise every quantised matrix to ternary at load.")
    var weights: WeightChoice = .stored

    @Flag(help: "Print tokens per second at the end (to standard error).")
    var timing = false

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be 0 or more") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be 0 or more") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
    }

    func run() throws {
        try reportingErrors {
            let ckpt = try LoadedCheckpoint(path: URL(fileURLWithPath: checkpoint))
            Threads.configure(ckpt.config.train.threads > 0 ? ckpt.config.train.threads : Threads.availableCores)
            let model = try ckpt.model(batch: 1, weights: weights)
            let T = ckpt.config.model.seqLen
            let gen = Generator(weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations)
            var context = ckpt.tokenizer.encode(prompt)
            if context.isEmpty { context = [ckpt.tokenizer.endOfText] }
            if context.count >= T { context = Array(context.suffix(T - 1)) }
            var sampler = TokenSampler(temperature: temperature, topK: topK, topP: topP, seed: UInt64(seed))
            let out = StreamingDecoder(tokenizer: ckpt.tokenizer, context: context)
            FileHandle.standardOutput.write(Data(prompt.utf8))
            var logits = UnsafeBufferPointer<Float>(start: nil, count: 0)
            for t in context { logits = gen.step(t) }
            let start = Date()
            var produced = 0
            while produced < maxTokens {
                let next = sampler.next(logits)
                produced += 1
                if next == ckpt.tokenizer.endOfText { break }
                out.emit(next)
                if gen.position >= gen.maxLength {
                    // The context is full: start again from the last half of it.
                    let keep = Array(out.history.suffix(gen.maxLength / 2))
                    gen.reset()
                    for t in keep.dropLast() { _ = gen.step(t) }
                    logits = gen.step(keep.last!)
                } else {
                    logits = gen.step(next)
                }
            }
            out.flush()
            print("")
            if timing {
                let s = Date().timeIntervalSince(start)
                FileHandle.standardError.write(Data(String(format: "%d tokens in %.2f s: %.1f tokens/s\n", produced, s, Double(produced) / max(s, 1e-9)).utf8))
            }
        }
    }
}

/// Writes tokens as soon as they form complete UTF-8 text.
///
/// It decodes the whole sequence, prompt included, each time and writes what is new, because
/// a token's text can depend on its neighbours (a byte split across tokens; SentencePiece's
/// leading space, which it drops only at the start of a text).
final class StreamingDecoder {
    let tokenizer: any Tokenizer
    /// The prompt's tokens, then every token emitted.
    private(set) var history: [Int32]
    private var written: Int
    private var waiting = 0

    /// `context` is the prompt, whose text the caller has already written.
    init(tokenizer: any Tokenizer, context: [Int32]) {
        self.tokenizer = tokenizer
        history = context
        written = tokenizer.decode(context).utf8.count
    }

    func emit(_ t: Int32) {
        history.append(t)
        waiting += 1
        let text = Array(tokenizer.decode(history).utf8)
        // An incomplete UTF-8 sequence decodes to U+FFFD (EF BF BD); wait up to 4 tokens for the rest.
        if text.count >= 3 && text.suffix(3) == [0xEF, 0xBF, 0xBD] && waiting < 4 { return }
        write(text)
    }

    func flush() { write(Array(tokenizer.decode(history).utf8)) }

    private func write(_ text: [UInt8]) {
        if text.count > written { FileHandle.standardOutput.write(Data(text[written...])) }
        written = max(written, text.count)
        waiting = 0
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a Hugging Face LLaMA folder (config.json, model.safetensors, tokenizer files).")

    @Argument(help: "A run directory or a checkpoint directory.")
    var checkpoint: String

    @Option(help: "Export format (hf: Hugging Face LlamaForCausalLM).")
    var format: String = "hf"

    @Option(help: "Output directory.")
    var out: String

    @Option(help: "Weight dtype: f32 or bf16.")
    var dtype: HuggingFaceExport.DType = .f32

    @Option(help: "stored, or ternary (re-quantised at export).")
    var weights: WeightChoice = .stored

    func validate() throws {
        guard format == "hf" else { throw ValidationError("--format: only hf (Hugging Face LLaMA) is supported") }
    }

    func run() throws {
        try reportingErrors {
            let ckpt = try LoadedCheckpoint(path: URL(fileURLWithPath: checkpoint))
            try HuggingFaceExport.write(ckpt, weights: weights, dtype: dtype, to: URL(fileURLWithPath: out))
            print("exported \(ckpt.directory.path) (step \(ckpt.state.step), \(ckpt.config.quant.label)) to \(out) as LlamaForCausalLM, \(dtype.rawValue)")
        }
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Summarise a checkpoint, run directory, data directory, shard, safetensors or tokenizer file.")

    @Argument(help: "What to inspect.")
    var path: String

    func run() throws {
        try reportingErrors { print(try Inspector.describe(URL(fileURLWithPath: path))) }
    }
}
