import Foundation
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
    /// passing the new UTF-8 bytes to `output` as they become complete; returns the number of
    /// tokens sampled.
    @discardableResult
    /// `sampled` sees every sampled token id, end-of-text included.
    public func run(
        prompt: String, maxTokens: Int, sampler: inout TokenSampler, sampled: (Int32) -> Void = { _ in },
        output: @escaping ([UInt8]) -> Void
    ) -> Int {
        let gen = generator
        var context = tokenizer.encode(prompt)
        if context.isEmpty { context = [tokenizer.endOfText] }
        if context.count >= gen.maxLength { context = Array(context.suffix(gen.maxLength - 1)) }
        let out = StreamingDecoder(tokenizer: tokenizer, context: context, output: output)
        // The prompt in one forward pass.
        var logits = gen.feed(context)
        var produced = 0
        while produced < maxTokens {
            let next = sampler.next(logits)
            produced += 1
            sampled(next)
            if next == tokenizer.endOfText { break }
            out.emit(next)
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
        return produced
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
