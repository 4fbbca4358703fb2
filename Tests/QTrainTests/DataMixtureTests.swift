import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainTraining

/// Data mixtures (`data.mix`): draws by weight, the same global batch at any world size, a
/// run without a mixture unchanged, bitwise resume, per-source validation and metrics, and
/// sources of different tokenizers refused.
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
        let r = try QTrainBinary.run([
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=null", "--set",
            "data.mix={\(a.path): 1, \(b.path): 1}", "--set", "model.seq_len=16", "--set",
            "train.out_dir=\(dir.appendingPathComponent("run").path)"
        ])
        XCTAssertEqual(r.status, 3, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("error:") && r.stderr.contains("different tokenizers"), r.stderr)
    }

    /// Validation scores each source on its own fixed windows; the headline is their
    /// weighted mean.
    func testValidationReportsEachSourceAndTheWeightedMean() throws {
        let dir = temporaryDirectory(self)
        let a = try makeSet(in: dir, "a", letter: "a"), b = try makeSet(in: dir, "b", letter: "b")
        var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
        c.data = mixConfig([a: 3, b: 1])
        c.model.seqLen = 16
        c.train.outDir = dir.appendingPathComponent("run").path
        let trainer = try Trainer(config: c)
        let v = try trainer.validator.run(after: 0)
        let by = try XCTUnwrap(v.bySource)
        let la = try XCTUnwrap(by[a.path]), lb = try XCTUnwrap(by[b.path])
        XCTAssertEqual(v.loss, 0.75 * la + 0.25 * lb, accuracy: 1e-12)
        XCTAssertNotEqual(la, lb)
        XCTAssertNotNil(v.bitsPerByte)
        // Fixed windows: the same model scores the same.
        XCTAssertEqual(try trainer.validator.run(after: 0), v)
        XCTAssertEqual(trainer.validator.sources.map(\.windows.count), [16, 16])  // train.eval_sequences each
    }

    func args(_ data: [URL: Double], run: URL, _ extra: [String] = []) -> [String] {
        let mix = data.map { "\($0.key.path): \($0.value)" }.joined(separator: ", ")
        return [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=null", "--set",
            "data.mix={\(mix)}", "--set", "model.seq_len=16", "--set", "train.steps=12", "--set",
            "train.eval_every=6", "--set", "log.every=1", "--set", "log.progress=lines", "--set", "quant.mode=dqt",
            "--set", "train.out_dir=\(run.path)"
        ] + extra
    }

    /// N steps straight equal k steps, stop, resume, with a mixture; the metrics carry each
    /// source's tokens and validation loss, and the resumed run counts the same tokens.
    func testMixtureResumesBitwise() throws {
        let dir = temporaryDirectory(self)
        let data = [try makeSet(in: dir, "a", letter: "a"): 0.7, try makeSet(in: dir, "b", letter: "b"): 0.3]
        let straight = dir.appendingPathComponent("straight"), split = dir.appendingPathComponent("split")
        let r = try QTrainBinary.run(args(data, run: straight))
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("data: a mixture of 2 sources"), r.stdout)
        XCTAssertTrue(r.stdout.contains("weight 0.700"), r.stdout)
        XCTAssertEqual(try QTrainBinary.run(args(data, run: split, ["--stop-at", "5"])).status, 0)
        let resumed = try QTrainBinary.run(args(data, run: split))
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("at step 5"), resumed.stdout)
        XCTAssertFalse(resumed.stdout.contains("notice: the checkpoint was trained on"), resumed.stdout)
        func file(_ run: URL) throws -> Data {
            try Data(
                contentsOf: run.appendingPathComponent(Checkpointer.directoryName(step: 12))
                    .appendingPathComponent("model.safetensors"))
        }
        XCTAssertEqual(try file(straight), try file(split))
        let (s, p) = (
            try MetricsRecord.read(straight.appendingPathComponent("metrics.jsonl")),
            try MetricsRecord.read(split.appendingPathComponent("metrics.jsonl"))
        )
        let last = try XCTUnwrap(s.last), lastResumed = try XCTUnwrap(p.last)
        XCTAssertEqual(last.loss, lastResumed.loss)
        XCTAssertEqual(last.valLoss, lastResumed.valLoss)
        XCTAssertEqual(last.valLossBySource, lastResumed.valLossBySource)
        XCTAssertEqual(Set(try XCTUnwrap(last.valLossBySource).keys), Set(data.keys.map(\.path)))
        let tokens = try XCTUnwrap(last.dataTokens)
        XCTAssertEqual(tokens, lastResumed.dataTokens)
        XCTAssertEqual(tokens.values.reduce(0, +), 12 * 4 * 16)  // steps × micro_batch × seq_len
        XCTAssertEqual(s.first?.dataTokens?.values.reduce(0, +), 0)

        // Resuming with another mixture says so.
        let other = [data.keys.sorted { $0.path < $1.path }[0]: 1.0]
        let changed = try QTrainBinary.run(args(other, run: split, ["--set", "train.steps=14"]))
        XCTAssertEqual(changed.status, 0, changed.stdout + changed.stderr)
        XCTAssertTrue(changed.stdout.contains("notice: the checkpoint was trained on the mixture"), changed.stdout)
    }
}
