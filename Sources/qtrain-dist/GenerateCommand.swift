import ArgumentParser
import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainInference
import QTrainModel
import QTrainWeights

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Sample text from a checkpoint, streaming tokens as they are produced (key/value cache).",
        discussion: """
            The prompt is cut to its last seq_len - 1 tokens. When prompt and output fill the \
            model's context (model.seq_len), generation goes on from the last seq_len / 2 tokens: \
            the cache is rebuilt from them, so text past the context length only sees that window.
            """)

    @OptionGroup var inference: InferenceOptions

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

    @Option(help: "Threads (default: the run's train.threads; 0: every core).")
    var threads: Int?

    @Flag(help: "Print the sampled token ids (one line, after the text) for comparisons with other implementations.")
    var printIds = false

    @Flag(
        help: """
            Print, to standard error, the prompt's and the generation's tokens per second (apart, as llama.cpp \
            does) and the time to the first token with its start-up phases.
            """)
    var timing = false

    @Flag(help: "With --timing, also the time per token by kind of operation.")
    var profile = false

    func validate() throws {
        guard (threads ?? 0) >= 0 else { throw ValidationError("--threads must be 0 or more") }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be 0 or more") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be 0 or more") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
    }

    func run() throws {
        try reportingErrors {
            let clock = PhaseClock()
            DecodeMatmul.preload()
            // Generation reads the model and the tokenizer only: the optimizer state is not hashed.
            let ckpt = try LoadedCheckpoint(
                path: URL(fileURLWithPath: inference.checkpoint), hashing: .modelAndTokenizer, clock: clock)
            Threads.configure(requested: threads ?? ckpt.config.train.threads)
            let model = try ckpt.model(batch: 1, weights: inference.weights)
            if inference.activationQuant == .off { model.quantizesActivations = false }
            clock.mark("weights load")
            let gen = Generator(
                weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations,
                useInt8: inference.compute != .fp32 && inference.compute != .reference)
            clock.mark("decoder build")
            var sampler = TokenSampler(
                temperature: temperature, topK: topK, topP: topP, seed: UInt64(bitPattern: Int64(seed)))
            FileHandle.standardOutput.write(Data(prompt.utf8))
            OpProfile.shared.enabled = profile
            var ids: [Int32] = []
            let stats = TextGeneration(generator: gen, tokenizer: ckpt.tokenizer)
                .run(prompt: prompt, maxTokens: maxTokens, sampler: &sampler, sampled: { ids.append($0) }, clock: clock)
            {
                FileHandle.standardOutput.write(Data($0))
            }
            print("")
            if printIds { print("ids: " + ids.map(String.init).joined(separator: " ")) }
            if timing {
                let lines = stats.report(clock: clock, compute: gen.computeName)
                FileHandle.standardError.write(Data(lines.map { $0 + "\n" }.joined().utf8))
                // Prompt and generated tokens together (the prompt's rows count once each).
                let tokens = stats.promptTokens + stats.generatedTokens
                for (op, seconds) in OpProfile.shared.report(steps: max(tokens, 1)) {
                    FileHandle.standardError.write(
                        Data(String(format: "  %@: %.3f ms per token\n", op, seconds * 1e3).utf8))
                }
            }
        }
    }
}
