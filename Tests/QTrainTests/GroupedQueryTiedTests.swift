import XCTest

@testable import QTrainBench
@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainTraining
@testable import QTrainWeights

/// Grouped-query attention (`model.n_kv_heads`) and tied embeddings (`model.tie_embeddings`)
/// through the whole trainer: every weight policy and memory option trains and resumes
/// bitwise, ZeRO-1/2 over two ranks, the memory plan, the decoder's cache, and both exports.
/// The layers' gradients are checked in GradientCheckTests and the NumPy fixture.
final class GroupedQueryTiedTests: XCTestCase {
    var dir: URL!
    var data: URL!

    /// 4 query heads over 2 key/value heads (head size 8), the head tied to the embedding.
    static let shape = [
        "model.n_heads=4", "model.n_kv_heads=2", "model.tie_embeddings=true", "model.seq_len=16"
    ]

    override func setUpWithError() throws {
        dir = temporaryDirectory(self)
        data = try makeSyntheticData(in: dir)
    }

    func args(_ run: String, _ settings: [String], steps: Int = 12) -> [String] {
        var a = [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "train.steps=\(steps)", "--set", "train.eval_every=6", "--set", "train.eval_sequences=8",
            "--set", "log.every=1", "--set", "train.out_dir=\(dir.appendingPathComponent(run).path)"
        ]
        for s in Self.shape + settings { a += ["--set", s] }
        return a
    }

    @discardableResult
    func train(_ run: String, _ settings: [String], extra: [String] = []) throws -> CommandResult {
        let r = try QTrainBinary.run(args(run, settings) + extra, timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        return r
    }

    func checkpointFile(_ run: String, _ name: String, step: Int = 12) -> URL {
        dir.appendingPathComponent(run).appendingPathComponent(Checkpointer.directoryName(step: step))
            .appendingPathComponent(name)
    }

    func assertSameFiles(_ a: String, _ b: String, _ names: [String], _ label: String) throws {
        for name in names {
            XCTAssertEqual(
                try Data(contentsOf: checkpointFile(a, name)), try Data(contentsOf: checkpointFile(b, name)),
                "\(label): \(name)")
        }
    }

    /// fp32, bitnet, ternary and 8-bit DQT (the latter on the int8/BF16 path with BF16 gradients,
    /// 8-bit state and activation checkpointing): one embedding tensor, K/V of kvHeads·d rows,
    /// and stop-at-6-then-resume equal to a straight run, byte for byte.
    func testEveryPolicyTrainsAndResumesBitwise() throws {
        let variants: [(String, [String])] = [
            ("fp32", ["quant.mode=fp32"]), ("bitnet", ["quant.mode=bitnet"]), ("ternary", ["quant.mode=dqt"]),
            (
                "dqt8",
                [
                    "quant.mode=dqt", "quant.bits=8", "quant.compute=int8-bf16", "optim.grad_dtype=bf16",
                    "optim.state_dtype=int8", "train.activation_checkpointing=blocks"
                ]
            )
        ]
        for (name, settings) in variants {
            let straight = try train(name, settings)
            XCTAssertTrue(straight.stdout.contains("4 heads (2 key/value)"), straight.stdout)
            XCTAssertTrue(straight.stdout.contains("tied embeddings"), straight.stdout)
            try train(name + "-split", settings, extra: ["--stop-at", "6"])
            try train(name + "-split", settings)
            try assertSameFiles(name, name + "-split", ["model.safetensors", "optimizer.safetensors"], name)
            let model = try SafetensorsFile(url: checkpointFile(name, "model.safetensors"))
            XCTAssertNil(model.entries["lm_head.weight"], name)
            if ["fp32", "bitnet"].contains(name) {  // codes are stored packed, as bytes
                XCTAssertEqual(model.entries["model.layers.0.self_attn.k_proj.weight"]?.shape, [16, 32], name)
            }
        }
    }

    /// Two ranks with ZeRO-1 and with ZeRO-2 (BF16 gradients, reduced to their owner as they
    /// are made): the tied table's gradient is summed over both uses and both ranks, resume is
    /// bitwise, and both match the replicated run to rounding.
    func testZeROOverTwoRanks() throws {
        func mpirun(_ run: String, _ settings: [String], extra: [String] = []) throws {
            let r = try runProgram(
                URL(fileURLWithPath: "/usr/bin/mpirun"),
                ["-n", "2", QTrainBinary.url.path] + args(run, ["quant.mode=dqt", "quant.bits=8"] + settings) + extra,
                environment: DistributedTests.mpiEnvironment, timeout: 300)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        }
        let zero2 = ["dist.shard_optimizer=true", "dist.shard_gradients=true", "optim.grad_dtype=bf16"]
        try mpirun("z2", zero2)
        try mpirun("z2-split", zero2, extra: ["--stop-at", "6"])
        try mpirun("z2-split", zero2)
        try assertSameFiles(
            "z2", "z2-split",
            ["model.safetensors", "optimizer-rank-0000.safetensors", "optimizer-rank-0001.safetensors"], "ZeRO-2")
        try mpirun("z1", ["dist.shard_optimizer=true"])
        try mpirun("replicated", [])
        func lastLoss(_ run: String) throws -> Double {
            let text = try String(
                contentsOf: dir.appendingPathComponent(run).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            return try XCTUnwrap(
                text.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
                }.last)
        }
        let reference = try lastLoss("replicated")
        XCTAssertEqual(try lastLoss("z1"), reference, accuracy: 1e-6 * reference)
        XCTAssertEqual(try lastLoss("z2"), reference, accuracy: 0.01 * reference)
    }

    /// The memory plan (made before anything is allocated) within 10% of the allocations.
    func testMemoryPlanMatchesAllocations() throws {
        var c = try RunConfig.load(path: repositoryFile("configs/small.yaml"))
        c.model.nHeads = 4
        c.model.nKVHeads = 1
        c.model.tieEmbeddings = true
        for mode in [QuantMode.dqt, .bitnet] {
            c.quant.mode = mode
            let plan = MemoryPlan(c, microBatch: c.train.microBatch)
            let session = try BenchSession(config: c, comm: SingleProcessCommunicator())
            XCTAssertEqual(plan.parameters, Double(session.model.layout.count), accuracy: 1)
            let total = Double(session.ledger.totalBytes)
            XCTAssertEqual(plan.totalBytes, total, accuracy: 0.1 * total, "\(mode)")
        }
    }

    /// The key/value cache holds only the key/value heads, and decoding (token by token, and a
    /// prompt in one pass, FP32 and on codes) gives the full forward's logits.
    func testDecoderMatchesFullForward() throws {
        try train("d", ["quant.mode=dqt"])
        let ckpt = try LoadedCheckpoint(path: dir.appendingPathComponent("d"))
        let config = ckpt.config.model
        XCTAssertEqual(KeyValueCache(config: config, capacity: 16).K, 16)
        let model = try ckpt.model(batch: 1)
        let T = config.seqLen, V = config.vocabSize
        let tokens = Array(ckpt.tokenizer.encode("the bird sat on the mat").prefix(T))
        var padded = tokens + [Int32](repeating: 0, count: T - tokens.count)
        var targets = [Int32](repeating: 0, count: T)
        _ = try model.loss(tokens: &padded, targets: &targets, batch: 1, length: T)
        let full = (0..<tokens.count).map { p in (0..<V).map { Double(model.acts.logits[p * V + $0]) } }
        let stepwise = Generator(
            weights: model.weights, config: config, quantizesActivations: model.quantizesActivations)
        for (p, t) in tokens.enumerated() {
            XCTAssertLessThan(relativeError(Array(stepwise.step(t)).map(Double.init), full[p]), 1e-4, "position \(p)")
        }
        let batched = Generator(
            weights: model.weights, config: config, quantizesActivations: model.quantizesActivations)
        XCTAssertLessThan(relativeError(Array(batched.feed(tokens)).map(Double.init), full.last!), 1e-4, "one pass")
        let generated = try QTrainBinary.run(["generate", dir.appendingPathComponent("d").path, "--max-tokens", "8"])
        XCTAssertEqual(generated.status, 0, generated.stderr)
    }

    /// Hugging Face export says `num_key_value_heads` and `tie_word_embeddings` and writes no
    /// `lm_head.weight`; GGUF says `head_count_kv`, writes no `output.weight`, and its K rows
    /// are permuted per key/value head (tools/check_gguf.py reads it back against the checkpoint).
    func testExportsCarryTheShape() throws {
        try train("e", ["quant.mode=dqt", "quant.bits=8"])
        let run = dir.appendingPathComponent("e"), hf = dir.appendingPathComponent("hf")
        let e = try QTrainBinary.run(["export", run.path, "--format", "hf", "--out", hf.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        let config = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: hf.appendingPathComponent("config.json")))
                as? [String: Any])
        XCTAssertEqual(config["num_key_value_heads"] as? Int, 2)
        XCTAssertEqual(config["num_attention_heads"] as? Int, 4)
        XCTAssertEqual(config["tie_word_embeddings"] as? Bool, true)
        let weights = try SafetensorsFile(url: hf.appendingPathComponent("model.safetensors"))
        XCTAssertNil(weights.entries["lm_head.weight"])
        guard TestPython.has(["gguf", "numpy"]) else { return }
        let gguf = dir.appendingPathComponent("e.gguf")
        XCTAssertEqual(try QTrainBinary.run(["export", run.path, "--format", "gguf", "--out", gguf.path]).status, 0)
        let r = try runProgram(
            URL(fileURLWithPath: TestPython.path!), [repositoryFile("tools/check_gguf.py"), gguf.path, run.path],
            timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let read = try TestPython.run(
            """
            import sys, gguf
            r = gguf.GGUFReader(sys.argv[1])
            names = [t.name for t in r.tensors]
            assert "output.weight" not in names, names
            print(r.fields["llama.attention.head_count_kv"].contents())
            """, [gguf.path])
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "2", read.stderr)
        if TestPython.has(["torch", "transformers", "safetensors"]) {
            let check = try runProgram(
                URL(fileURLWithPath: TestPython.path!),
                [
                    repositoryFile("tools/check_hf_export.py"), hf.path, "--qtrain", QTrainBinary.url.path,
                    "--checkpoint", run.path
                ], timeout: 600)
            XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        }
    }
}
