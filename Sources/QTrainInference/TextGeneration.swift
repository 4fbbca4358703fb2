import Foundation
import QTrainCore
import QTrainData
import QTrainModel

/// Continues a prompt token by token from a checkpoint's model (`generate`): the prompt goes
/// through the key/value cache once, then each sampled token costs one cached step. When the
/// context is full, the cache restarts from the last half of the text so far. Text leaves as
/// soon as it is complete UTF-8 (``StreamingDecoder``).
public struct TextGeneration {
    public let generator: Generator
    public let tokenizer: any Tokenizer

    public init(generator: Generator, tokenizer: any Tokenizer) {
        self.generator = generator
        self.tokenizer = tokenizer
    }

    /// Generates up to `maxTokens` tokens after `prompt` (stopping early at end-of-text),
    /// passing the new UTF-8 bytes to `output` as they become complete; returns what it did
    /// and how long each part took. `sampled` sees every sampled token id, end-of-text
    /// included; `clock` (the caller's start-up) gets a mark after the prompt and after the
    /// first token.
    @discardableResult
    public func run(
        prompt: String, maxTokens: Int, sampler: inout TokenSampler, sampled: (Int32) -> Void = { _ in },
        clock: PhaseClock? = nil, output: @escaping ([UInt8]) -> Void
    ) -> GenerationStats {
        let gen = generator
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds(since t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9 }
        var context = tokenizer.encode(prompt)
        if context.isEmpty { context = [tokenizer.endOfText] }
        if context.count >= gen.maxLength { context = Array(context.suffix(gen.maxLength - 1)) }
        let out = StreamingDecoder(tokenizer: tokenizer, context: context, output: output)
        // The prompt in one forward pass.
        var logits = gen.feed(context)
        var stats = GenerationStats(promptTokens: context.count, promptSeconds: seconds(since: start))
        clock?.mark("prompt")
        let generating = DispatchTime.now().uptimeNanoseconds
        var produced = 0
        while produced < maxTokens {
            let next = sampler.next(logits)
            produced += 1
            if produced == 1 { clock?.mark("first token") }
            sampled(next)
            if next == tokenizer.endOfText { break }
            out.emit(next)
            // The last token's own step would only feed a token nobody samples after.
            if produced == maxTokens { break }
            if gen.position >= gen.maxLength {
                // The context is full: start again from the last half of it.
                let keep = Array(out.history.suffix(gen.maxLength / 2))
                gen.reset()
                logits = gen.feed(keep)
            } else {
                logits = gen.step(next)
            }
        }
        out.flush()
        stats.generatedTokens = produced
        stats.generationSeconds = seconds(since: generating)
        return stats
    }
}

/// What one ``TextGeneration/run(prompt:maxTokens:sampler:sampled:clock:output:)`` did, timed
/// as llama.cpp reports it: the prompt's forward pass (tokenizing it included) apart from the
/// generated tokens (each a sample and, but the last, a cached step).
public struct GenerationStats: Sendable, Equatable {
    public var promptTokens: Int
    public var promptSeconds: Double
    public var generatedTokens = 0
    public var generationSeconds = 0.0

    public var promptTokensPerSecond: Double { Double(promptTokens) / max(promptSeconds, 1e-9) }
    public var generationTokensPerSecond: Double { Double(generatedTokens) / max(generationSeconds, 1e-9) }

    /// `generate --timing`'s report: the prompt, the generation, and the time to the first
    /// token with each start-up phase of `clock` (the command's, marked through the first token).
    public func report(clock: PhaseClock, compute: String) -> [String] {
        let first = clock.phases.reduce(0) { $0 + $1.seconds }
        let phases = clock.phases.map { String(format: "%@ %.3f s", $0.name, $0.seconds) }
        return [
            String(
                format: "prompt: %d tokens in %.3f s: %.1f tokens/s", promptTokens, promptSeconds,
                promptTokensPerSecond),
            String(
                format: "generation: %d tokens in %.3f s: %.1f tokens/s", generatedTokens, generationSeconds,
                generationTokensPerSecond),
            String(format: "time to first token: %.3f s (", first) + phases.joined(separator: ", ") + ")",
            "compute: " + compute
        ]
    }
}

/// Hands on tokens as soon as they form complete UTF-8 text.
///
/// It decodes the whole sequence, prompt included, each time and passes on what is new,
/// because a token's text can depend on its neighbours (a byte split across tokens;
/// SentencePiece's leading space, which it drops only at the start of a text).
public final class StreamingDecoder {
    let tokenizer: any Tokenizer
    /// The prompt's tokens, then every token emitted.
    public private(set) var history: [Int32]
    private var written: Int
    private var waiting = 0
    private let output: ([UInt8]) -> Void

    /// `context` is the prompt, whose text the caller has already shown.
    public init(tokenizer: any Tokenizer, context: [Int32], output: @escaping ([UInt8]) -> Void) {
        self.tokenizer = tokenizer
        history = context
        written = tokenizer.decode(context).utf8.count
        self.output = output
    }

    public func emit(_ t: Int32) {
        history.append(t)
        waiting += 1
        let text = Array(tokenizer.decode(history).utf8)
        // An incomplete UTF-8 sequence decodes to U+FFFD (EF BF BD); wait up to 4 tokens for the rest.
        if text.count >= 3 && text.suffix(3) == [0xEF, 0xBF, 0xBD] && waiting < 4 { return }
        write(text)
    }

    public func flush() { write(Array(tokenizer.decode(history).utf8)) }

    private func write(_ text: [UInt8]) {
        if text.count > written { output(Array(text[written...])) }
        written = max(written, text.count)
        waiting = 0
    }
}
