import XCTest

@testable import QTrainData

/// Byte-level BPE: GPT-2's pre-tokenizer, GPT-2's real tokenizer against ids from two
/// independent implementations (committed fixture), training on the real corpus, and files
/// that Hugging Face `tokenizers` loads and encodes identically.
final class BPETests: XCTestCase {
    /// Downloads are kept here between runs.
    static var cache: URL { URL(fileURLWithPath: repositoryFile(".build/test-cache")) }

    func pieces(_ text: String) -> [String] {
        var out: [String] = []
        GPT2PreTokenizer.forEachPiece(in: text) { out.append(String(decoding: $0, as: UTF8.self)) }
        return out
    }

    func testPreTokenizerFollowsGPT2Pattern() {
        XCTAssertEqual(
            pieces("don't  stop\n\nnow 123abc"), ["don", "'t", " ", " stop", "\n", "\n", "now", " 123", "abc"])
        XCTAssertEqual(pieces("Hi!! 'x' they're  "), ["Hi", "!!", " '", "x", "'", " they", "'re", "  "])
        XCTAssertEqual(pieces(" Ωμέγα 你好 3.5"), [" Ωμέγα", " 你好", " 3", ".", "5"])
        XCTAssertEqual(pieces(""), [])
        XCTAssertEqual(pieces("a\u{a0}b"), ["a", "\u{a0}", "b"])
    }

    func testGPT2MatchesTwoReferenceImplementations() throws {
        let gpt2 = try BPETokenizer.fetchGPT2(cache: Self.cache, log: { _ in })
        XCTAssertEqual(gpt2.vocabSize, 50_257)
        XCTAssertEqual(gpt2.endOfText, 50_256)
        XCTAssertEqual(gpt2.merges.count, 50_000)
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: "gpt2_tokens", withExtension: "json", subdirectory: "Fixtures"))
        let fixture = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try XCTUnwrap(fixture["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 22)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int]).map(Int32.init)
            XCTAssertEqual(gpt2.encode(text), ids, text.debugDescription)
            XCTAssertEqual(gpt2.decode(ids), text)
            XCTAssertEqual(ids.reduce(0) { $0 + gpt2.byteCount(of: $1) }, text.utf8.count)
        }
        // Long pieces take the heap path: the same merges as rescanning, on random letters.
        var rng = TestRandom(9)
        for _ in 0..<100 {
            let bytes = (0..<(49 + Int(rng.next() * 400))).map { _ in UInt8(97 + Int(rng.next() * 26)) }
            var scanned = bytes.map { gpt2.byteTokens[Int($0)] }, heaped = scanned
            gpt2.mergeByScanning(&scanned)
            gpt2.mergeWithHeap(&heaped)
            XCTAssertEqual(heaped, scanned)
        }
        // Saved as Hugging Face JSON and read back: the same tokenizer.
        let dir = temporaryDirectory(self)
        try gpt2.save(to: dir)
        let back = try XCTUnwrap(try TokenizerLoader.load(from: dir) as? BPETokenizer)
        XCTAssertEqual(back.identity, gpt2.identity)
        XCTAssertEqual(back.encode("don't  stop 123"), gpt2.encode("don't  stop 123"))
    }

    /// A BPE learned from the real corpus compresses it, round-trips every document, is the
    /// same on every run, and Hugging Face `tokenizers` reads its file and gives the same ids.
    func testTrainedBPEOnTheRealCorpus() throws {
        let docs = try CorpusFetcher.documents(of: .sotu, cache: Self.cache, log: { _ in })
        let (trainDocs, valDocs) = try DataPreparer.split(docs, valEvery: 20)
        let train = trainDocs.map(\.text), val = valDocs.map(\.text)
        let bpe = try BPETrainer.train(on: train, vocabSize: 1024)
        XCTAssertEqual(bpe.vocabSize, 1024)
        XCTAssertEqual(bpe.endOfText, 1023)
        XCTAssertEqual(try BPETrainer.train(on: train, vocabSize: 1024).identity, bpe.identity)
        var tokens = 0, bytes = 0
        for text in val {
            let ids = bpe.encode(text)
            XCTAssertEqual(bpe.decode(ids), text)
            XCTAssertEqual(ids.reduce(0) { $0 + bpe.byteCount(of: $1) }, text.utf8.count)
            tokens += ids.count
            bytes += text.utf8.count
        }
        XCTAssertLessThan(Double(tokens) / Double(bytes), 0.35, "a 1k BPE should average about 3 bytes per token")

        let dir = temporaryDirectory(self)
        try bpe.save(to: dir)
        let back = try XCTUnwrap(try TokenizerLoader.load(from: dir) as? BPETokenizer)
        XCTAssertEqual(back.identity, bpe.identity)
        guard TestPython.has(["tokenizers"]) else {
            throw XCTSkip("no Python with tokenizers (launch/test.sh provides one)")
        }
        let sample = val[0].prefix(20_000) + " café 你好 🤖 don't\n\n  x"
        let textFile = dir.appendingPathComponent("sample.txt")
        try String(sample).write(to: textFile, atomically: true, encoding: .utf8)
        let script = """
            import sys, json
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            text = open(sys.argv[2], encoding="utf-8", newline="").read()
            print(json.dumps(t.encode(text).ids))
            print(t.token_to_id("<|endoftext|>"))
            """
        let r = try TestPython.run(script, [dir.appendingPathComponent("tokenizer.json").path, textFile.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        let ids = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [Int])
        XCTAssertEqual(ids.map(Int32.init), bpe.encode(String(sample)))
        XCTAssertEqual(String(lines[1]), "1023")
    }

    /// The trainer against a plain transcription of BPE training (recount every pair after
    /// every merge), on real text plus one long piece without spaces.
    func testTrainerMatchesAPlainReference() throws {
        let docs = try CorpusFetcher.documents(of: .sotu, cache: Self.cache, log: { _ in }).prefix(6).map(\.text)
        var rng = TestRandom(4)
        let long = String((0..<3000).map { _ in Character(Unicode.Scalar(UInt8(97 + Int(rng.next() * 4)))) })
        let corpus = docs + [long]
        let bpe = try BPETrainer.train(on: corpus, vocabSize: 700)

        var counts: [[UInt8]: Int] = [:]
        for d in corpus { GPT2PreTokenizer.forEachPiece(in: d) { counts[Array($0), default: 0] += 1 } }
        var words = counts.map { ($0.key.map(Int32.init), $0.value) }
        var tokens = byteLevelAlphabet().map { String($0) }
        var merges: [(Int32, Int32)] = []
        while tokens.count < 699 {
            var pairs: [UInt64: Int] = [:]
            for (w, c) in words where w.count > 1 {
                for i in 0..<(w.count - 1) {
                    pairs[UInt64(UInt32(w[i])) << 32 | UInt64(UInt32(w[i + 1])), default: 0] += c
                }
            }
            guard let best = pairs.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }),
                best.value >= 2
            else { break }
            let (a, b) = (Int32(best.key >> 32), Int32(truncatingIfNeeded: best.key))
            let text = tokens[Int(a)] + tokens[Int(b)]
            let id = Int32(tokens.firstIndex(of: text) ?? tokens.count)
            if id == tokens.count { tokens.append(text) }
            merges.append((a, b))
            words = words.map { w, c in
                var out: [Int32] = []
                var i = 0
                while i < w.count {
                    if i + 1 < w.count && w[i] == a && w[i + 1] == b {
                        out.append(id)
                        i += 2
                    } else {
                        out.append(w[i])
                        i += 1
                    }
                }
                return (out, c)
            }
        }
        XCTAssertEqual(bpe.tokens, tokens + ["<|endoftext|>"])
        XCTAssertEqual(bpe.merges.map { [$0.0, $0.1] }, merges.map { [$0.0, $0.1] })
    }

    func testBadTokenizerChoicesAndFiles() throws {
        XCTAssertEqual(try TokenizerChoice("bpe:4096"), .bpe(vocabSize: 4096))
        XCTAssertEqual(try TokenizerChoice("gpt2"), .gpt2)
        for bad in ["bpe:many", "no-such-tokenizer"] {
            XCTAssertThrowsError(try TokenizerChoice(bad)) { XCTAssertTrue("\($0)".contains(bad), "\($0)") }
        }
        XCTAssertThrowsError(try BPETrainer.train(on: ["abc"], vocabSize: 100)) {
            XCTAssertTrue("\($0)".contains("258"), "\($0)")
        }
        let dir = temporaryDirectory(self)
        let file = dir.appendingPathComponent("tokenizer.json")
        // A BPE whose vocabulary lacks most single-byte tokens is not byte-level.
        let broken: [String: Any] = [
            "model": ["type": "BPE", "vocab": ["a": 0, "<|endoftext|>": 1], "merges": [String]()],
            "pre_tokenizer": ["type": "ByteLevel"]
        ]
        try JSONSerialization.data(withJSONObject: broken).write(to: file)
        XCTAssertThrowsError(try TokenizerLoader.load(from: dir)) {
            XCTAssertTrue("\($0)".contains(file.path) && "\($0)".contains("byte token"), "\($0)")
        }
        let wordPiece: [String: Any] = ["model": ["type": "WordPiece", "vocab": ["a": 0]]]
        try JSONSerialization.data(withJSONObject: wordPiece).write(to: file)
        XCTAssertThrowsError(try TokenizerLoader.load(from: dir)) {
            XCTAssertTrue("\($0)".contains("no BPE model"), "\($0)")
        }
    }
}
