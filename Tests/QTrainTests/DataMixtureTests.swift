import XCTest

@testable import QTrainCore
@testable import QTrainData

/// Data mixtures (`data.mix`): draws by weight, the same global batch at any world size, a
/// run without a mixture unchanged, and sources of different tokenizers refused.
final class DataMixtureTests: XCTestCase {
    /// A prepared set whose text is one letter repeated, so a window tells its source.
    func makeSet(
        in dir: URL, _ name: String, letter: Character, tokenizer: (([String]) throws -> any Tokenizer)? = nil
    ) throws -> URL {
        let texts = (0..<8).map { i in String(repeating: "\(letter)\(letter)\(letter) ", count: 40 + i) }
        let docs = texts.enumerated().map { Document(name: String(format: "doc%03d.txt", $0.offset), text: $0.element) }
        let out = dir.appendingPathComponent(name)
        _ = try DataPreparer.prepare(
            documents: docs, source: name, tokenizer: try tokenizer?(texts) ?? ByteTokenizer(), valEvery: 4, to: out,
            log: { _ in })
        return out
    }

    func mixConfig(_ weights: [URL: Double]) -> DataConfig {
        var c = DataConfig()
        c.mix = DataMix(Dictionary(uniqueKeysWithValues: weights.map { ($0.key.path, $0.value) }))
        return c
    }

    func testDrawsFollowTheWeights() {
        let sampler = MixtureSampler(seed: 1337, weights: [0.7, 0.2, 0.1])
        var counts = [0, 0, 0]
        for step in 0..<100 {
            for (i, n) in sampler.counts(step: step, sequences: 100).enumerated() { counts[i] += n }
        }
        XCTAssertEqual(counts.reduce(0, +), 10_000)
        for (n, w) in zip(counts, [0.7, 0.2, 0.1]) {
            XCTAssertLessThan(abs(Double(n) / 10_000 - w), 0.01, "\(counts)")
        }
        // Weights are normalised: 7, 2, 1 draws the same.
        let scaled = MixtureSampler(seed: 1337, weights: [7, 2, 1])
        XCTAssertEqual(
            (0..<20).map { scaled.counts(step: $0, sequences: 50) },
            (0..<20).map { sampler.counts(step: $0, sequences: 50) })
        // One draw agrees with the counts, and another seed draws differently.
        XCTAssertEqual(
            (0..<100).reduce(into: [0, 0, 0]) { $0[sampler.source(step: 3, sequence: $1)] += 1 },
            sampler.counts(step: 3, sequences: 100))
        XCTAssertNotEqual(
            MixtureSampler(seed: 1, weights: [0.7, 0.2, 0.1]).counts(step: 3, sequences: 100),
            sampler.counts(step: 3, sequences: 100))
    }

    /// A global batch of 8 sequences is the same split over 1, 2 or 4 ranks, with or without
    /// accumulation.
    func testGlobalBatchIsIndependentOfWorldSize() throws {
        let dir = temporaryDirectory(self)
        let data = try TrainingData(
            config: mixConfig([
                try makeSet(in: dir, "a", letter: "a"): 0.5, try makeSet(in: dir, "b", letter: "b"): 0.3,
                try makeSet(in: dir, "c", letter: "c"): 0.2
            ]), seqLen: 16)
        let sampler = data.sampler(seed: 1337), sets = data.sources.map(\.train), T = 16
        func globalBatch(step: Int, world: Int, accum: Int) -> [Int32] {
            let B = 8 / world / accum
            var out = [Int32](repeating: -1, count: 8 * T), tokens = [Int32](repeating: 0, count: B * T)
            var targets = tokens
            for micro in 0..<accum {
                for rank in 0..<world {
                    sampler.fill(
                        tokens: &tokens, targets: &targets, from: sets, step: step, micro: micro, rank: rank,
                        world: world, batch: B)
                    let first = (micro * world + rank) * B
                    out.replaceSubrange(first * T..<(first + B) * T, with: tokens)
                }
            }
            return out
        }
        var letters = Set<Int32>()
        for step in 0..<4 {
            let one = globalBatch(step: step, world: 1, accum: 1)
            XCTAssertFalse(one.contains(-1))
            for (world, accum) in [(2, 1), (4, 1), (2, 2), (1, 4)] {
                XCTAssertEqual(
                    globalBatch(step: step, world: world, accum: accum), one, "world \(world) accum \(accum)")
            }
            // Each sequence comes from the source the sampler chose for it.
            for j in 0..<8 {
                let letter = Int32(Character(["a", "b", "c"][sampler.source(step: step, sequence: j)]).asciiValue!)
                let seq = one[j * T..<(j + 1) * T]
                XCTAssertTrue(
                    seq.contains(letter) && seq.allSatisfy { $0 == letter || $0 == 32 || $0 == 256 }, "\(seq)")
                letters.insert(letter)
            }
        }
        XCTAssertEqual(letters.count, 3)
    }

    /// Without `data.mix` the windows are `BatchSampler`'s, as before mixtures; so are a
    /// mixture of one directory's.
    func testOneDirectoryDrawsTheWindowsOfBatchSampler() throws {
        let dir = temporaryDirectory(self)
        let a = try makeSyntheticData(in: dir)
        var plain = DataConfig()
        plain.dir = a.path
        for config in [plain, mixConfig([a: 2])] {
            let data = try TrainingData(config: config, seqLen: 16)
            let mixed = data.sampler(seed: 7), before = BatchSampler(seed: 7), train = data.sources[0].train
            var x = [Int32](repeating: 0, count: 3 * 16), y = x, bx = x, by = x
            for step in 0..<5 {
                for (micro, rank) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    mixed.fill(
                        tokens: &x, targets: &y, from: [train], step: step, micro: micro, rank: rank, world: 2, batch: 3
                    )
                    before.fill(
                        tokens: &bx, targets: &by, from: train, step: step, micro: micro, rank: rank, world: 2, batch: 3
                    )
                    XCTAssertEqual(x, bx)
                    XCTAssertEqual(y, by)
                }
            }
        }
    }

    func testDifferentTokenizersAreRefused() throws {
        let dir = temporaryDirectory(self)
        let a = try makeSet(in: dir, "bytes", letter: "a")
        let b = try makeSet(in: dir, "bpe", letter: "b") { try BPETrainer.train(on: $0, vocabSize: 260) }
        XCTAssertThrowsError(try TrainingData(config: mixConfig([a: 1, b: 1]), seqLen: 16)) {
            let e = $0 as? QTrainError
            XCTAssertEqual(e?.kind, .data)
            XCTAssertTrue(e?.message.contains(a.path) == true && e?.message.contains(b.path) == true, "\($0)")
            XCTAssertTrue(e?.message.contains("different tokenizers") == true, "\($0)")
        }
    }
}
