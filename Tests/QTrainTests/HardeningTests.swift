import XCTest

@testable import QTrainBench
@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainModel
@testable import QTrainOptim
@testable import QTrainTraining
@testable import QTrainWeights

/// Crafted inputs that used to crash or pass silently end in one clear error.
final class HardeningTests: XCTestCase {
    /// A shard whose token count is crafted so that count × width wraps past the size check.
    func testShardCountThatWrapsIsRejected() throws {
        let dir = temporaryDirectory(self)
        let url = dir.appendingPathComponent("train-000.bin")
        try ShardWriter.write([1, 2, 3, 4], vocabSize: 257, tokenizerHash: [UInt8](repeating: 7, count: 32), to: url)
        var bytes = try [UInt8](Data(contentsOf: url))
        // 2^63 + 4 tokens of 2 bytes: the product wraps to 8, exactly the bytes present.
        let count = UInt64(1) << 63 | 4
        for i in 0..<8 { bytes[24 + i] = UInt8(truncatingIfNeeded: count >> (8 * UInt64(i))) }
        try Data(bytes).write(to: url)
        XCTAssertThrowsError(try MappedShard(url: url)) { error in
            XCTAssertTrue("\(error)".contains("header promises \(count) tokens"), "\(error)")
        }
    }

    /// Shards from another tokenizer (a validation shard from another preparation, a swapped
    /// tokenizer.json, a zeroed tokenizer hash) stop train with exit 3 instead of training on
    /// the wrong token ids.
    func testShardsFromAnotherTokenizerAreRefused() throws {
        let dir = temporaryDirectory(self)
        let bytes = try makeSyntheticData(in: dir.appendingPathComponent("a"))
        let text = dir.appendingPathComponent("text")
        try FileManager.default.createDirectory(at: text, withIntermediateDirectories: true)
        try String(repeating: "the cat sat on the mat. ", count: 400).write(
            to: text.appendingPathComponent("d1.txt"), atomically: true, encoding: .utf8)
        try String(repeating: "a dog ran in the park. ", count: 400).write(
            to: text.appendingPathComponent("d2.txt"), atomically: true, encoding: .utf8)
        let bpe = dir.appendingPathComponent("bpe")
        let p = try QTrainBinary.run([
            "prepare", "--corpus", text.path, "--out", bpe.path, "--val-every", "2", "--tokenizer", "bpe:280"
        ])
        XCTAssertEqual(p.status, 0, p.stderr)
        func train(_ data: URL) throws -> CommandResult {
            try QTrainBinary.run([
                "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                "--set", "model.seq_len=16", "--set", "model.vocab_size=300", "--set", "train.steps=2",
                "--set", "train.out_dir=\(dir.appendingPathComponent("run-\(UUID().uuidString)").path)"
            ])
        }
        XCTAssertEqual(try train(bytes).status, 0)
        let fm = FileManager.default
        // A validation shard from the BPE preparation in the byte-tokenized directory.
        let mixed = dir.appendingPathComponent("mixed")
        try fm.copyItem(at: bytes, to: mixed)
        try fm.removeItem(at: mixed.appendingPathComponent("val_000.bin"))
        try fm.copyItem(at: bpe.appendingPathComponent("val_000.bin"), to: mixed.appendingPathComponent("val_000.bin"))
        var r = try train(mixed)
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(
            r.stderr.contains(
                "the val shards in \(mixed.path) were made with a different tokenizer than the train shards"), r.stderr)
        // The BPE tokenizer.json beside byte-tokenized shards.
        let swapped = dir.appendingPathComponent("swapped")
        try fm.copyItem(at: bytes, to: swapped)
        try fm.removeItem(at: swapped.appendingPathComponent("tokenizer.json"))
        try fm.copyItem(
            at: bpe.appendingPathComponent("tokenizer.json"), to: swapped.appendingPathComponent("tokenizer.json"))
        r = try train(swapped)
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.contains("were made with a different tokenizer than its tokenizer.json"), r.stderr)
        // A zeroed tokenizer hash.
        let url = dir.appendingPathComponent("zero.bin")
        try ShardWriter.write([1, 2, 3, 4], vocabSize: 257, tokenizerHash: [UInt8](repeating: 0, count: 32), to: url)
        let zero = dir.appendingPathComponent("zero")
        try fm.createDirectory(at: zero, withIntermediateDirectories: true)
        try fm.copyItem(at: url, to: zero.appendingPathComponent("train_000.bin"))
        XCTAssertThrowsError(try TokenDataset(directory: zero, split: "train", seqLen: 2)) { error in
            XCTAssertTrue("\(error)".contains("records no tokenizer"), "\(error)")
        }
    }

    /// A full disk while appending metrics.jsonl (/dev/full answers every write with ENOSPC)
    /// is noted once and training goes on: no crash, no exception.
    func testMetricsOnAFullDiskWarnOnceAndGoOn() throws {
        let writer = try MetricsWriter(url: URL(fileURLWithPath: "/dev/full"), append: true, enabled: true)
        XCTAssertNil(writer.failure)
        var record = MetricsRecord(step: 1)
        record.loss = 2.5
        writer.write(record)
        let first = try XCTUnwrap(writer.failure, "the failed write was noticed")
        record.step = 2
        writer.write(record)
        XCTAssertEqual(writer.failure, first)
    }

    /// A tokenizer.json with a negative id (which filled the id table's gap check) is refused.
    func testTokenizerWithNegativeIdIsRejected() throws {
        let obj: [String: Any] = [
            "model": ["type": "BPE", "vocab": ["a": -1, "b": 1, "<|endoftext|>": 2], "merges": [String]()],
            "pre_tokenizer": ["type": "ByteLevel"]
        ]
        XCTAssertThrowsError(try BPETokenizer(huggingFaceJSON: obj, source: "t.json")) { error in
            XCTAssertTrue("\(error)".contains("token id -1 is outside"), "\(error)")
        }
    }

    /// Ternary bytes 243–255 (not five base-3 codes) and a non-finite scale are refused on load.
    func testOutOfRangeTernaryBytesAndBadScalesAreRejected() throws {
        var config = try RunConfig.load(path: repositoryFile("configs/tiny.yaml")).model
        config.seqLen = 8
        var quant = QuantConfig()
        quant.mode = .dqt
        let model = Model(config: config, quant: quant, batch: 1, ledger: nil)
        model.weights.initialize(seed: 1, std: 0.05)
        let dir = temporaryDirectory(self)
        let url = dir.appendingPathComponent("model.safetensors")
        let name = model.layout.specs[model.layout.blocks[0].q].name
        for tamper in ["code", "scale"] {
            try CheckpointFormat.modelWriter(model.weights).write(to: url)
            let file = try SafetensorsFile(url: url)
            let headerEnd =
                8
                + Int(
                    try [UInt8](Data(contentsOf: url)).prefix(8).enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
                )
            var bytes = try [UInt8](Data(contentsOf: url))
            if tamper == "code" {
                bytes[headerEnd + (try file.entry(name)).range.lowerBound + 3] = 250
            } else {
                let at = headerEnd + (try file.entry(name + ".scale")).range.lowerBound
                withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for i in 0..<4 { bytes[at + i] = $0[i] } }
            }
            try Data(bytes).write(to: url)
            let fresh = Model(config: config, quant: quant, batch: 1, ledger: nil)
            XCTAssertThrowsError(try CheckpointFormat.loadModel(fresh.weights, from: SafetensorsFile(url: url))) {
                error in
                XCTAssertTrue(
                    "\(error)".contains(
                        tamper == "code" ? "holds byte 250 at offset 3" : "not one finite positive number"), "\(error)")
            }
        }
    }

    /// `generate --seed=-1` samples instead of trapping.
    func testGenerateTakesANegativeSeed() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent("run")
        let t = try QTrainBinary.run([
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.seq_len=16", "--set", "train.steps=2", "--set", "train.out_dir=\(run.path)"
        ])
        XCTAssertEqual(t.status, 0, t.stderr)
        let g = try QTrainBinary.run(["generate", run.path, "--seed=-1", "--max-tokens", "5", "--prompt", "the"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.hasPrefix("the"), g.stdout)
    }

    /// `state.json` is validated as a whole: its step matches its directory and is not
    /// negative, and it lists exactly the files a checkpoint holds (none can be dropped from
    /// the checksum check); moments that are not finite are refused even with a matching checksum.
    func testStateAndMomentsAreValidated() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent("run")
        let t = try QTrainBinary.run([
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.seq_len=16", "--set", "train.steps=2", "--set", "quant.mode=dqt",
            "--set", "train.out_dir=\(run.path)"
        ])
        XCTAssertEqual(t.status, 0, t.stderr)
        let ckpt = run.appendingPathComponent("step-0000002"), stateURL = ckpt.appendingPathComponent("state.json")
        let original = try Data(contentsOf: stateURL)
        func edit(_ change: (inout [String: Any]) throws -> Void) throws {
            var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: original) as? [String: Any])
            try change(&obj)
            try JSONSerialization.data(withJSONObject: obj).write(to: stateURL)
        }
        let cases: [(String, (inout [String: Any]) throws -> Void)] = [
            ("says step -5", { $0["step"] = -5 }),
            ("says step 1, but the checkpoint directory is step-0000002", { $0["step"] = 1 }),
            ("lists no checksum for model.safetensors", { $0["files"] = [String: String]() }),
            (
                "lists a file this format does not have: extra",
                { obj in
                    var files = obj["files"] as! [String: String]
                    files["extra"] = "00"
                    obj["files"] = files
                }
            ),
            ("impossible world size 0", { $0["world_size"] = 0 }),
            ("key 'step' is missing", { $0["step"] = nil }),
            ("key 'seed' has the wrong type", { $0["seed"] = "many" }),
            ("the configuration stored in \(stateURL.path) cannot be read", { $0["config"] = "model: [unclosed" })
        ]
        for (message, change) in cases {
            try edit(change)
            XCTAssertThrowsError(try Checkpointer.verify(ckpt), message) {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
            }
        }
        // A NaN first moment with a checksum that matches it.
        try original.write(to: stateURL)
        let opt = ckpt.appendingPathComponent("optimizer.safetensors")
        let file = try SafetensorsFile(url: opt)
        var bytes = try [UInt8](Data(contentsOf: opt))
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
        let at = 8 + headerLength + (try file.entry("m")).range.lowerBound + 4 * 5
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for i in 0..<4 { bytes[at + i] = $0[i] } }
        try Data(bytes).write(to: opt)
        let digest = try sha256(of: opt)
        try edit { obj in
            var files = obj["files"] as! [String: String]
            files["optimizer.safetensors"] = digest
            obj["files"] = files
        }
        XCTAssertNoThrow(try Checkpointer.verify(ckpt))
        let r = try QTrainBinary.run([
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.seq_len=16", "--set", "train.steps=4", "--set", "quant.mode=dqt",
            "--set", "train.out_dir=\(run.path)", "--set", "checkpoint.resume=true", "--resume", ckpt.path
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("m in \(opt.path) holds nan at element 5"), r.stderr)
    }

    /// A quantised run whose loss climbs far above its start warns (and stops with --debug);
    /// one whose codes stop changing warns too.
    func testDivergenceAndFrozenCodesAreFlagged() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        func train(_ name: String, _ extra: [String]) throws -> CommandResult {
            try QTrainBinary.run(
                [
                    "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                    "--set", "model.seq_len=16", "--set", "quant.mode=dqt", "--set", "log.progress=lines",
                    "--set", "train.eval_every=0", "--set", "train.out_dir=\(dir.appendingPathComponent(name).path)"
                ] + extra)
        }
        // DQT shrugs off even lr 0.9 on this data, so the loss rule is driven with crafted step results.
        func result(_ loss: Double, changed: Int) -> TrainStep.Result {
            var c = CodeChangeStats()
            c.changed[.mlp] = changed
            c.total[.mlp] = 100
            return TrainStep.Result(
                loss: loss, lr: 1e-3, gradNorm: 1, codeChanges: c, phases: [:], communicationWait: 0)
        }
        var lines: [String] = []
        let watch = DivergenceWatch(quant: QuantConfig.dqtForTests, debug: false, log: { lines.append($0) })
        watch.start(reference: 5.5)
        try watch.check(step: 1, result(6.8, changed: 3))  // within reference + max(1, 25%)
        XCTAssertTrue(lines.isEmpty)
        try watch.check(step: 2, result(48_000, changed: 3))
        try watch.check(step: 3, result(50_000, changed: 3))
        XCTAssertEqual(lines.count, 1, "warns once: \(lines)")
        XCTAssertTrue(
            lines[0].hasPrefix(
                "warning: the training loss 48000.0000 at step 2 is far above where the run started (5.5000)"), lines[0]
        )
        let strict = DivergenceWatch(quant: QuantConfig.dqtForTests, debug: true, log: { _ in })
        strict.start(reference: 5.5)
        XCTAssertThrowsError(try strict.check(step: 2, result(48_000, changed: 3))) {
            XCTAssertTrue("\($0)".contains("it is diverging"), "\($0)")
        }
        XCTAssertNoThrow(
            try DivergenceWatch(quant: QuantConfig(), debug: true, log: { _ in }).check(
                step: 2, result(48_000, changed: 0)),
            "fp32 runs are left to the non-finite check")
        let frozen = try train(
            "frozen", ["--set", "optim.lr=1e-12", "--set", "train.steps=\(DivergenceWatch.patience + 5)"])
        XCTAssertEqual(frozen.status, 0, frozen.stderr)
        XCTAssertTrue(
            frozen.stdout.contains("no weight code has changed for \(DivergenceWatch.patience) steps"), frozen.stdout)
        // A healthy run says neither.
        let healthy = try train("healthy", ["--set", "train.steps=30"])
        XCTAssertFalse(healthy.stdout.contains("warning:"), healthy.stdout)
    }

    /// `--weights ternary` on a model that is already ternary (BitNet's forward, ternary DQT)
    /// leaves its forward weights exactly as they were; an 8-bit model is re-quantised.
    func testTernaryWeightsPassThroughAlreadyTernaryModels() throws {
        var config = try RunConfig.load(path: repositoryFile("configs/tiny.yaml")).model
        config.seqLen = 8
        var ternary = QuantConfig.dqtForTests
        ternary.bits = 1.58
        for (mode, bits) in [(QuantMode.bitnet, nil), (.dqt, 1.58), (.dqt, 8.0)] as [(QuantMode, Double?)] {
            var q = QuantConfig()
            q.mode = mode
            q.bits = bits
            let src = Model(config: config, quant: q, batch: 1, ledger: nil)
            src.weights.initialize(seed: 4, std: 0.05)
            let dst = Model(config: config, quant: ternary, batch: 1, ledger: nil)
            Ternarizer.convert(from: src.weights, to: dst.weights)
            let p = src.layout.blocks[0].gate, n = src.layout.specs[p].count
            var a = [Float](repeating: 0, count: n), b = a
            src.weights.writeValues(of: p, from: 0, count: n, into: &a)
            dst.weights.writeValues(of: p, from: 0, count: n, into: &b)
            if bits == 8 {
                XCTAssertNotEqual(a, b, "8-bit weights are re-quantised")
                XCTAssertLessThanOrEqual(Set(b).count, 3)
                // Absmean: the ternary step is mean|W| of the 8-bit weights.
                let beta = a.reduce(0) { $0 + abs($1) } / Float(n)
                XCTAssertEqual(
                    b.map { abs($0) }.max()!, beta, accuracy: 1e-5 * beta, "8-bit weights take the absmean step")
            } else {
                XCTAssertEqual(a, b, "\(mode) weights pass through unchanged")
            }
        }
    }

    /// A checksum-consistent malformed safetensors header makes a checkpoint invalid by the same
    /// rule as a checksum mismatch: automatic resume skips it for the older one, and the length
    /// is reported as the unsigned number it is.
    func testMalformedHeaderFallsBackLikeAChecksumMismatch() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent("run")
        func train(_ steps: Int) throws -> CommandResult {
            try QTrainBinary.run([
                "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                "--set", "model.seq_len=16", "--set", "train.steps=\(steps)", "--set", "checkpoint.every=1",
                "--set", "quant.mode=dqt", "--set", "train.out_dir=\(run.path)"
            ])
        }
        XCTAssertEqual(try train(2).status, 0)
        let ckpt = run.appendingPathComponent("step-0000002"), model = ckpt.appendingPathComponent("model.safetensors")
        var bytes = try [UInt8](Data(contentsOf: model))
        for i in 0..<8 { bytes[i] = i == 7 ? 0x80 : 0 }
        try Data(bytes).write(to: model)
        let stateURL = ckpt.appendingPathComponent("state.json")
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any])
        var files = obj["files"] as! [String: String]
        files["model.safetensors"] = try sha256(of: model)
        obj["files"] = files
        try JSONSerialization.data(withJSONObject: obj).write(to: stateURL)
        XCTAssertThrowsError(try Checkpointer.verify(ckpt)) {
            XCTAssertTrue("\($0)".contains("header length 9223372036854775808 does not fit the file"), "\($0)")
        }
        let r = try train(3)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("warning: skipping checkpoint step-0000002"), r.stdout)
        XCTAssertTrue(r.stdout.contains("resumed from \(run.path)/step-0000001 at step 1"), r.stdout)
    }

    /// Sizes no machine can hold end in one message with the numbers, before any allocation;
    /// the estimate stays close to what the ledger then allocates for a real config.
    func testOversizedConfigsAreRefusedBeforeAllocating() throws {
        for override in [
            "model.dim=4294967296", "model.vocab_size=1000000000000", "train.micro_batch=1000000000",
            "model.n_layers=100000000"
        ] {
            let r = try QTrainBinary.run(
                ["bench", "--config", repositoryFile("configs/tiny.yaml"), "--set", override, "--steps", "1"],
                timeout: 60)
            XCTAssertEqual(r.status, 2, "\(override): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("this run needs about"), "\(override): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        }
        // Sizes whose products overflow Int are planned in Float64 (the fuzzer found Int products
        // in the scratch and window sizes trapping): the plan just says they cannot fit.
        var huge = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
        (huge.model.dim, huge.model.ffnDim, huge.model.seqLen) = (1 << 40, 1 << 40, 1 << 30)
        (huge.quant.mode, huge.optim.gradDtype, huge.quant.compute) = (.dqt, .bf16, .int8BF16)
        XCTAssertGreaterThan(MemoryPlan(huge, microBatch: 1 << 30).totalBytes, 1e30)
        XCTAssertThrowsError(try MemoryPlan(huge, microBatch: 1 << 30).check(ranksPerNode: 1))
        // The plan follows the ledger for the baseline and for every memory option.
        for variant in ["dqt", "dqt+bf16-grad+int8-state+ckpt", "bitnet"] {
            var c = try RunConfig.load(path: repositoryFile("configs/small.yaml"))
            c.quant.mode = variant == "bitnet" ? .bitnet : .dqt
            if variant.contains("+") {
                c.optim.gradDtype = .bf16
                c.optim.stateDtype = .int8
                c.train.activationCheckpointing = .blocks
            }
            let B = c.train.microBatch
            let plan = MemoryPlan(c, microBatch: B)
            let session = try BenchSession(config: c, comm: SingleProcessCommunicator())
            let ledger = session.ledger
            let state = Double(ledger.totalBytes - ledger.bytes(.activations))
            XCTAssertEqual(plan.parameters, Double(session.model.layout.count), accuracy: 1)
            XCTAssertEqual(
                plan.totalBytes, Double(ledger.totalBytes), accuracy: 0.1 * Double(ledger.totalBytes),
                "\(variant) B=\(B)")
            XCTAssertEqual(plan.stateBytes, state, accuracy: 0.1 * state, variant)
        }
    }

    /// A corpus too small for a validation split fails in prepare, naming what to change.
    func testPrepareRefusesAnEmptyValidationSplit() throws {
        let docs = (0..<3).map { Document(name: "d\($0).txt", text: "text \($0)") }
        XCTAssertThrowsError(try DataPreparer.split(docs, valEvery: 10)) { error in
            XCTAssertTrue(
                "\(error)".contains("3 documents with --val-every 10 leave no document for validation"), "\(error)")
            XCTAssertTrue("\(error)".contains("use --val-every 4 or fewer"), "\(error)")
        }
        let (train, validation) = try DataPreparer.split(docs, valEvery: 4)
        XCTAssertEqual(validation.map(\.name), ["d2.txt"])
        XCTAssertEqual(train.count, 2)
    }
}

extension QuantConfig {
    static var dqtForTests: QuantConfig {
        var q = QuantConfig()
        q.mode = .dqt
        return q
    }
}
