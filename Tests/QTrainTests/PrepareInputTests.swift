import Foundation
import XCTest

@testable import QTrainCore
@testable import QTrainData

/// Streaming `prepare`: every input format against Python's own readers, the report of what
/// cannot be read, identical shards for any thread count, text files in pieces, the
/// interrupted-and-rerun case, and the BPE's bounded sample.
final class PrepareInputTests: XCTestCase {
    /// Every document `DocumentReader` yields, as (file name, bytes), in order.
    func readAll(
        _ arguments: [String], field: String = "text", limit: Int = 64 << 20, problems: ProblemLog? = nil
    )
        throws -> [(String, [UInt8])]
    {
        let files = try InputFile.expand(arguments)
        let log = try problems ?? ProblemLog(url: nil, log: { _ in })
        let reader = DocumentReader(
            inputs: files, textField: field, maximumDocumentBytes: limit, problems: log,
            parquet: ParquetRunner(cache: BPETests.cache, log: { _ in }))
        var out: [(String, [UInt8])] = []
        while let d = try reader.next() { out.append((files[d.file].name, d.bytes)) }
        return out
    }

    func testEveryFormatReadsAsPythonsOwnReaders() throws {
        guard TestPython.has(["pyarrow", "zstandard"]) else { throw XCTSkip("needs pyarrow and zstandard") }
        let dir = temporaryDirectory(self)
        let corpus = dir.appendingPathComponent("corpus"), expectedFile = dir.appendingPathComponent("expected.json")
        let made = try runProgram(
            URL(fileURLWithPath: TestPython.path!),
            [repositoryFile("tools/make_corpus_formats.py"), corpus.path, expectedFile.path])
        XCTAssertEqual(made.status, 0, made.stderr)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: expectedFile)) as! [String: [String]]
        XCTAssertEqual(expected.count, 7)
        let read = try readAll([corpus.path])
        for (file, texts) in expected {
            let ours = read.filter { $0.0.hasSuffix("/" + file) }.map(\.1)
            XCTAssertEqual(ours, texts.map { Array($0.utf8) }, file)
        }
        XCTAssertEqual(read.count, expected.values.reduce(0) { $0 + $1.count })
        let parquet = corpus.appendingPathComponent("g.parquet").path
        XCTAssertThrowsError(try readAll([parquet], field: "content")) { error in
            XCTAssertEqual((error as? QTrainError)?.kind, .data)
            XCTAssertTrue("\(error)".contains("no column \"content\" (its columns: id, text)"), "\(error)")
        }

        // End to end: the shards hold exactly those texts (line ends normalised), split by document.
        let out = dir.appendingPathComponent("data")
        var options = PrepareOptions()
        options.valEvery = 4
        options.threads = 2
        _ = try DataPreparer.prepare(
            inputs: try InputFile.expand([corpus.path]), source: "formats", tokenizer: .bytes, cache: BPETests.cache,
            options: options, to: out, log: { _ in })
        var train = "", validation = ""
        for (i, (_, bytes)) in read.enumerated() {
            let text = Document.normalizedText(Data(bytes)) + "<|endoftext|>"
            if DataPreparer.isValidation(i, valEvery: 4) { validation += text } else { train += text }
        }
        for (split, text) in [("train", train), ("val", validation)] {
            let data = try TokenDataset(directory: out, split: split, seqLen: 1)
            let ids = data.shards.flatMap { s in (0..<s.count).map { s[$0] } }
            XCTAssertEqual(ByteTokenizer().decode(ids), text, split)
        }
    }

    func testBadRecordsAreCountedAndListedWithFileAndLine() throws {
        let dir = temporaryDirectory(self)
        let file = dir.appendingPathComponent("bad.jsonl")
        var lines: [[UInt8]] = [
            Array(#"{"body": "good one"}"#.utf8),
            Array("not json at all".utf8),
            Array(#"{"title": "no body"}"#.utf8),
            Array(#"{"body": 42}"#.utf8),
            Array(#"{"body": null}"#.utf8),
            Array(#"{"body": "bad byte: "#.utf8) + [0xFF, 0x22, 0x7D],
            Array(#"{"body": "lone \ud800 surrogate"}"#.utf8),
            Array(#"{"body": "truncated"#.utf8),
            Array(("{\"body\": \"" + String(repeating: "y", count: 5000) + "\"}").utf8),
            [],
            Array(#"  {"body": "good two", "n": [1, {"x": -2.5e3}], "ok": true}  "#.utf8),
            Array(#"["an", "array"]"#.utf8),
            Array(#"{"body": "overlong: "#.utf8) + [0xC0, 0xAF, 0x22, 0x7D]
        ]
        lines.append(Array(#"{"body": "good three"}"#.utf8))
        try Data(lines.map { $0 + [0x0A] }.joined()).write(to: file)
        let out = dir.appendingPathComponent("data")
        var options = PrepareOptions()
        options.textField = "body"
        options.valEvery = 2
        options.maximumDocumentBytes = 1000
        var logged: [String] = []
        let (meta, _) = try DataPreparer.prepare(
            inputs: try InputFile.expand([file.path]), source: "bad", tokenizer: .bytes, cache: BPETests.cache,
            options: options, to: out, log: { logged.append($0) })
        XCTAssertEqual(meta.trainDocumentCount + meta.valDocumentCount, 3)
        XCTAssertEqual(
            meta.skipped,
            ["not_json": 4, "missing_field": 1, "field_not_string": 2, "invalid_utf8": 2, "too_long": 1])
        let listed = try String(contentsOf: out.appendingPathComponent("skipped.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(listed.count, 10)
        for (line, reason) in [
            (2, "is not a JSON object"), (3, "has no field \"body\""), (4, "is a number, not a string"),
            (5, "is a null, not a string"), (6, "is not valid UTF-8"), (7, "lone surrogate"),
            (8, "unterminated string"), (9, "over the document limit"), (12, "a JSON value that is not an object"),
            (13, "is not valid UTF-8")
        ] {
            XCTAssertTrue(
                listed.contains { $0.contains("bad.jsonl: line \(line)") && $0.contains(reason) },
                "line \(line): \(reason) in \(listed)")
        }
        XCTAssertTrue(logged.contains { $0.hasPrefix("skipped 10 records") }, "\(logged)")
        let ids = try ["train", "val"].flatMap { split in
            try TokenDataset(directory: out, split: split, seqLen: 1).shards.flatMap { s in (0..<s.count).map { s[$0] }
            }
        }
        let text = ByteTokenizer().decode(ids)
        for good in ["good one", "good two", "good three"] { XCTAssertTrue(text.contains(good), text) }
    }

    func testTruncatedCompressedFilesAreRefusedByName() throws {
        guard TestPython.has(["zstandard"]) else { throw XCTSkip("needs zstandard") }
        let dir = temporaryDirectory(self)
        let made = try TestPython.run(
            """
            import gzip, sys, zstandard
            data = ("{\\"text\\": \\"%s\\"}\\n" % ("words " * 5000)).encode() * 20
            open(sys.argv[1] + "/t.jsonl.gz", "wb").write(gzip.compress(data)[:-len(gzip.compress(data)) // 2])
            open(sys.argv[1] + "/t.jsonl.zst", "wb").write(zstandard.ZstdCompressor().compress(data)[:-40])
            open(sys.argv[1] + "/g.jsonl.gz", "wb").write(b"this is not gzip at all")
            """, [dir.path])
        XCTAssertEqual(made.status, 0, made.stderr)
        for (name, words) in [
            ("t.jsonl.gz", "is truncated"), ("t.jsonl.zst", "is truncated"), ("g.jsonl.gz", "is not valid gzip")
        ] {
            XCTAssertThrowsError(try readAll([dir.appendingPathComponent(name).path])) { error in
                XCTAssertEqual((error as? QTrainError)?.kind, .data, "\(error)")
                XCTAssertTrue("\(error)".contains(name) && "\(error)".contains(words), "\(error)")
            }
        }
    }

    /// A corpus with some variety: documents of different lengths and words.
    func writeCorpus(_ dir: URL, documents: Int, seed: UInt64 = 1) throws -> URL {
        let words = ["the", "State", "of", "Union", "1790", "Congress", "peace", "war", "ça", "über", "—", "'s", "\n\n"]
        var rng = seed
        func next() -> Int {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(rng >> 33)
        }
        let file = dir.appendingPathComponent("corpus.jsonl")
        var text = ""
        for d in 0..<documents {
            var doc = "Document \(d):"
            for _ in 0..<(20 + next() % 400) { doc += " " + words[next() % words.count] }
            text += String(decoding: try JSONSerialization.data(withJSONObject: ["text": doc]), as: UTF8.self) + "\n"
        }
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    func testShardsAreByteIdenticalForAnyThreadCount() throws {
        let dir = temporaryDirectory(self)
        let corpus = try writeCorpus(dir, documents: 600)
        var outputs: [[String: Data]] = []
        for threads in [1, 2, 3] {
            var options = PrepareOptions()
            options.threads = threads
            options.shardTokens = 20_000
            let out = dir.appendingPathComponent("t\(threads)")
            _ = try DataPreparer.prepare(
                inputs: try InputFile.expand([corpus.path]), source: "c", tokenizer: .bpe(vocabSize: 400),
                cache: BPETests.cache, options: options, to: out, log: { _ in })
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: out.path) {
                files[name] = try Data(contentsOf: out.appendingPathComponent(name))
            }
            outputs.append(files)
        }
        XCTAssertGreaterThan(outputs[0].keys.filter { $0.hasPrefix("train_") }.count, 3)
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(outputs[0], outputs[2])
    }

    func testTextFileLongerThanTheLimitEncodesInPiecesAsAWhole() throws {
        let dir = temporaryDirectory(self)
        var text = ""
        for i in 0..<3000 {
            text += ["Line \(i) of the text,", "  indented \(i)", "", "café \(i)'s end.", "\t(\(i))"][i % 5] + "\n"
        }
        let file = dir.appendingPathComponent("long.txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let tokenizer = try BPETrainer.train(on: [text], vocabSize: 500)
        let pieces = try readAll([file.path], limit: 2048)
        XCTAssertGreaterThan(pieces.count, 10)
        XCTAssertEqual(Array(pieces.map(\.1).joined()), Array(text.utf8))
        let encoder = tokenizer.makeDocumentEncoder()
        var ids: [Int32] = []
        for (_, bytes) in pieces {
            XCTAssertLessThanOrEqual(bytes.count, 2048 + 1)
            bytes.withUnsafeBufferPointer { encoder.encode(utf8: $0, appendingTo: &ids) }
        }
        XCTAssertEqual(ids, tokenizer.encode(text))
        // Windows line ends and lines that start with non-ASCII letters cut as well.
        let crlf = dir.appendingPathComponent("crlf.txt")
        let windows = text.replacingOccurrences(of: "\n", with: "\r\n").replacingOccurrences(of: "Line", with: "Строка")
        try windows.write(to: crlf, atomically: true, encoding: .utf8)
        let crlfPieces = try readAll([crlf.path], limit: 2048)
        XCTAssertGreaterThan(crlfPieces.count, 10)
        var crlfIds: [Int32] = []
        for (_, bytes) in crlfPieces {
            let normalized = Array(Document.normalizedText(Data(bytes)).utf8)
            normalized.withUnsafeBufferPointer { encoder.encode(utf8: $0, appendingTo: &crlfIds) }
        }
        XCTAssertEqual(crlfIds, tokenizer.encode(Document.normalizedText(Data(windows.utf8))))
        // And through prepare: one document, one end-of-text.
        var options = PrepareOptions()
        options.maximumDocumentBytes = 2048
        let other = dir.appendingPathComponent("other.txt")
        try "a second document".write(to: other, atomically: true, encoding: .utf8)
        options.valEvery = 2
        let (meta, _) = try DataPreparer.prepare(
            inputs: try InputFile.expand([file.path, other.path]), source: "long", tokenizer: .bytes,
            cache: BPETests.cache, options: options, to: dir.appendingPathComponent("data"), log: { _ in })
        XCTAssertEqual(meta.trainDocumentCount, 1)
        XCTAssertEqual(meta.trainTokens, text.utf8.count + 1)
    }

    func testInterruptedPrepareIsRefusedThenRerunCompletes() throws {
        let dir = temporaryDirectory(self)
        // Enough text that prepare is still writing when its first shard appears.
        let line = String(repeating: "streaming text for the interrupted prepare. ", count: 200)
        let record = String(decoding: try JSONSerialization.data(withJSONObject: ["text": line]), as: UTF8.self) + "\n"
        let corpus = dir.appendingPathComponent("big.jsonl")
        try String(repeating: record, count: 6000).write(to: corpus, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("data")
        let arguments = [
            "prepare", "--corpus", corpus.path, "--out", out.path, "--threads", "1", "--shard-tokens", "100000"
        ]
        let run = try SpawnedProgram(QTrainBinary.url, arguments)
        let first = out.appendingPathComponent("train_000.bin")
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: first.path) && run.isRunning && Date() < deadline {
            usleep(1000)
        }
        run.send(SIGKILL)
        let killed = run.wait(timeout: 30)
        XCTAssertEqual(killed.status, 128 + SIGKILL, "prepare finished before it could be interrupted")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(".prepare-incomplete").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("meta.json").path))
        XCTAssertThrowsError(try TokenDataset(directory: out, split: "train", seqLen: 8)) { error in
            XCTAssertEqual((error as? QTrainError)?.kind, .data)
            XCTAssertTrue("\(error)".contains("did not finish"), "\(error)")
        }

        let again = try QTrainBinary.run(arguments)
        XCTAssertEqual(again.status, 0, again.stderr)
        let clean = dir.appendingPathComponent("clean")
        var cleanArguments = arguments
        cleanArguments[4] = clean.path
        XCTAssertEqual(try QTrainBinary.run(cleanArguments).status, 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: clean.path).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), names)
        XCTAssertGreaterThan(names.filter { $0.hasPrefix("train_") }.count, 5)
        for name in names where name != "meta.json" {
            XCTAssertEqual(
                try Data(contentsOf: out.appendingPathComponent(name)),
                try Data(contentsOf: clean.appendingPathComponent(name)), name)
        }
        XCTAssertNoThrow(try TokenDataset(directory: out, split: "train", seqLen: 8))
    }

    /// Under mpirun only rank 0 writes the directory (every rank writing it would collide).
    func testOnlyRankZeroPreparesUnderMpirun() throws {
        let dir = temporaryDirectory(self)
        let corpus = try writeCorpus(dir, documents: 40)
        let out = dir.appendingPathComponent("data")
        let arguments = ["prepare", "--corpus", corpus.path, "--out", out.path]
        let other = try QTrainBinary.run(arguments, environment: ["OMPI_COMM_WORLD_RANK": "1"])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let first = try QTrainBinary.run(arguments, environment: ["OMPI_COMM_WORLD_RANK": "0"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertNoThrow(try TokenDataset(directory: out, split: "train", seqLen: 8))
    }

    func testBPESampleIsUniformDeterministicAndWithinBudget() throws {
        let docs = (0..<2000).map {
            Document(name: "d\($0)", text: "document \($0) " + String(repeating: "w", count: $0 % 50))
        }
        func sample(_ budget: Int) throws -> [Document] {
            try TrainingSample.documents(of: MemoryDocuments(docs), valEvery: 10, budget: budget, log: { _ in })
        }
        let all = try sample(1 << 30)
        XCTAssertEqual(all.map(\.text), try DataPreparer.split(docs, valEvery: 10).train.map(\.text))
        let small = try sample(10_000)
        // Each kept document costs its text and a fixed overhead.
        let cost = small.reduce(0) { $0 + $1.text.utf8.count + TrainingSample.entryOverhead }
        XCTAssertLessThanOrEqual(cost, 10_000)
        XCTAssertGreaterThan(cost, 9_000)
        XCTAssertEqual(small.map(\.text), try sample(10_000).map(\.text))
        // Spread over the corpus, not its start.
        let indices = small.map { Int($0.name)! }
        XCTAssertLessThan(indices.min()!, 200)
        XCTAssertGreaterThan(indices.max()!, 1800)
        XCTAssertEqual(indices, indices.sorted())
    }

    func testInputFilesExpandDirectoriesAndPatternsInOrder() throws {
        let dir = temporaryDirectory(self)
        for name in ["b.jsonl", "a.txt", "sub/c.jsonl.gz", "sub/d.parquet", ".hidden.txt", "notes.bin", "e.txt.zst"] {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data().write(to: url)
        }
        let files = try InputFile.expand([dir.path])
        XCTAssertEqual(
            files.map { ($0.url.lastPathComponent, $0.format.rawValue, $0.compression.rawValue) }.map { "\($0)" },
            [
                "(\"a.txt\", \"text\", \"none\")", "(\"b.jsonl\", \"jsonl\", \"none\")",
                "(\"e.txt.zst\", \"text\", \"zstd\")", "(\"c.jsonl.gz\", \"jsonl\", \"gzip\")",
                "(\"d.parquet\", \"parquet\", \"none\")"
            ])
        XCTAssertEqual(
            try InputFile.expand([dir.path + "/*.jsonl", dir.path + "/a.txt"]).map(\.url.lastPathComponent),
            ["b.jsonl", "a.txt"])
        XCTAssertThrowsError(try InputFile.expand([dir.path + "/*.nothing"])) {
            XCTAssertTrue("\($0)".contains("no file matches"), "\($0)")
        }
        XCTAssertThrowsError(try InputFile.expand([dir.path + "/missing.jsonl"])) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
    }
}
