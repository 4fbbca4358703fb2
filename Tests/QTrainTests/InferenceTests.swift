import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainModel

/// What a finished run leaves: eval, generate (with its key/value cache), export, inspect.
final class InferenceTests: XCTestCase {
    var dir: URL!
    var data: URL!

    override func setUpWithError() throws {
        dir = temporaryDirectory(self)
        data = try makeSyntheticData(in: dir)
    }

    func trainRun(_ name: String, quant: [String], steps: Int = 30) throws -> URL {
        let run = dir.appendingPathComponent(name)
        let r = try QTrainBinary.run(
            [
                "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                "--set", "model.seq_len=16", "--set", "train.steps=\(steps)", "--set", "train.eval_every=0",
                "--set", "train.eval_sequences=24", "--set", "train.out_dir=\(run.path)"
            ] + quant)
        XCTAssertEqual(r.status, 0, r.stderr)
        return run
    }

    /// `eval` on the run's own validation windows reproduces the trainer's validation loss.
    func testEvalMatchesTrainerAndReportsBitsPerByte() throws {
        let run = try trainRun("e", quant: ["--set", "quant.mode=dqt", "--set", "quant.bits=4"])
        let metrics = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
            separator: "\n")
        let val = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(metrics.last!.utf8)) as? [String: Any])?["val_loss"] as? Double
        )
        let r = try QTrainBinary.run(["eval", run.path, "--sequences", "24", "--batch", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("loss ") })
        let fields = line.split(separator: " ")
        let loss = try XCTUnwrap(Double(fields[1])), bpb = try XCTUnwrap(Double(fields[9])),
            tokens = try XCTUnwrap(Int(fields[12]))
        XCTAssertEqual(loss, val, accuracy: 1e-4)
        XCTAssertEqual(tokens, 24 * 16)
        // Bytes: every target is one byte except <|endoftext|>, so bits per byte ≥ loss / ln 2.
        XCTAssertGreaterThanOrEqual(bpb, loss / log(2) - 1e-3)
        XCTAssertLessThan(bpb, loss / log(2) * 1.1)
        XCTAssertEqual(try XCTUnwrap(Double(fields[4])), exp(loss), accuracy: 1e-2 * exp(loss))
        // A text file works as data; ternary weights and activation quantisation off run.
        let text = dir.appendingPathComponent("t.txt")
        try String(repeating: "the dog sat on the mat number 3. ", count: 40).write(
            to: text, atomically: true, encoding: .utf8)
        for extra in [["--data", text.path], ["--weights", "ternary"], ["--activation-quant", "off"]] {
            let e = try QTrainBinary.run(["eval", run.path] + extra)
            XCTAssertEqual(e.status, 0, e.stderr)
            XCTAssertTrue(e.stdout.contains("bits per byte"), e.stdout)
        }
        let missing = try QTrainBinary.run(["eval", dir.appendingPathComponent("nothing").path])
        XCTAssertEqual(missing.status, 4)
        XCTAssertTrue(missing.stderr.contains("neither a checkpoint nor a run directory"), missing.stderr)
    }

    /// The key/value-cache decoder gives the same logits as the full forward pass, position by
    /// position, for stored and ternary weights.
    func testGeneratorMatchesFullForward() throws {
        let run = try trainRun("g", quant: ["--set", "quant.mode=dqt", "--set", "quant.bits=8"])
        let ckpt = try LoadedCheckpoint(path: run)
        for choice in WeightChoice.allCases {
            let model = try ckpt.model(batch: 1, weights: choice)
            let T = ckpt.config.model.seqLen, V = ckpt.config.model.vocabSize
            let tokens = ckpt.tokenizer.encode("the bird sat on").prefix(T).map { $0 }
            let n = tokens.count
            var padded = tokens + [Int32](repeating: 0, count: T - n)
            var targets = [Int32](repeating: 0, count: T)
            _ = try model.loss(tokens: &padded, targets: &targets, batch: 1, length: T)
            let gen = Generator(
                weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations)
            for p in 0..<n {
                let logits = Array(gen.step(tokens[p]))
                let full = (0..<V).map { Double(model.acts.logits[p * V + $0]) }
                XCTAssertLessThan(relativeError(logits.map(Double.init), full), 1e-4, "\(choice) position \(p)")
            }
            // The prompt in one pass (attention by GEMMs over the cached keys) gives the last position's logits.
            let batched = Generator(
                weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations)
            let last = Array(batched.feed(Array(tokens))).map(Double.init)
            XCTAssertEqual(batched.position, n)
            XCTAssertLessThan(
                relativeError(last, (0..<V).map { Double(model.acts.logits[(n - 1) * V + $0]) }), 1e-4,
                "\(choice) batched")
            // A prompt in two parts: the second part's queries see the first part's cached keys.
            batched.reset()
            _ = batched.feed(Array(tokens.prefix(2)))
            let split = Array(batched.feed(Array(tokens.dropFirst(2)))).map(Double.init)
            XCTAssertLessThan(relativeError(split, last), 1e-4, "\(choice) in two parts")
        }
    }

    /// A cache longer than the context (positions past seq_len, as the decoder has always
    /// allowed): a long prompt goes through in as many passes as the activations hold, and gives
    /// the logits of feeding it token by token.
    func testLongPromptPastTheContextMatchesTokenByToken() throws {
        let run = try trainRun("l", quant: ["--set", "quant.mode=dqt"])
        let ckpt = try LoadedCheckpoint(path: run)
        let model = try ckpt.model(batch: 1)
        let T = ckpt.config.model.seqLen
        let text = String(repeating: "the bird sat on the mat. ", count: 4 * T)
        let tokens = Array(ckpt.tokenizer.encode(text).prefix(2 * T - 1))
        XCTAssertEqual(tokens.count, 2 * T - 1)
        func generator() -> Generator {
            Generator(
                weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations,
                maxLength: 2 * T)
        }
        let stepwise = generator()
        var expected: [Double] = []
        for t in tokens { expected = Array(stepwise.step(t)).map(Double.init) }
        let batched = generator()
        let got = Array(batched.feed(tokens)).map(Double.init)
        XCTAssertEqual(batched.position, 2 * T - 1)
        XCTAssertLessThan(relativeError(got, expected), 1e-4)
    }

    /// Decoding on codes (exact integer matrix-vector products, one rescale; ternary tensors
    /// at 2 bits) gives the FP32 decoder's logits to FP32 rounding for ternary and 8-bit DQT
    /// and BitNet; an FP32 model (no codes) decodes in FP32.
    func testInt8DecodingMatchesFP32() throws {
        for (name, quant) in [
            ("t", ["--set", "quant.mode=dqt"]), ("8", ["--set", "quant.mode=dqt", "--set", "quant.bits=8"]),
            ("b", ["--set", "quant.mode=bitnet"]), ("f", [])
        ] {
            let ckpt = try LoadedCheckpoint(path: try trainRun(name, quant: quant, steps: 10))
            let model = try ckpt.model(batch: 1)
            let fast = Generator(
                weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations)
            let plain = Generator(
                weights: model.weights, config: ckpt.config.model, quantizesActivations: model.quantizesActivations,
                useInt8: false)
            XCTAssertEqual(plain.computeName, "fp32 (OpenBLAS)")
            let expected = ["t": "ternary 2-bit", "b": "ternary 2-bit", "8": "int8", "f": "fp32"][name]!
            XCTAssertTrue(fast.computeName.hasPrefix(expected), fast.computeName)
            for t in ckpt.tokenizer.encode("the bird sat on the mat").prefix(fast.maxLength) {
                let a = Array(fast.step(t)).map(Double.init), b = Array(plain.step(t)).map(Double.init)
                XCTAssertLessThan(relativeError(a, b), 1e-4, name)
                if name != "f" { XCTAssertNotEqual(a, b, "\(name): the int8 path ran (its rounding differs)") }
            }
        }
    }

    func testGenerateStreamsDeterministicText() throws {
        let run = try trainRun("s", quant: [], steps: 60)
        let args = ["generate", run.path, "--prompt", "the cat", "--max-tokens", "40", "--seed", "3"]
        let a = try QTrainBinary.run(args), b = try QTrainBinary.run(args)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stdout.hasPrefix("the cat"))
        XCTAssertGreaterThan(a.stdout.count, "the cat".count + 5)
        XCTAssertEqual(a.stdout, b.stdout, "the same seed gives the same text")
        let greedy = try QTrainBinary.run([
            "generate", run.path, "--prompt", "the ", "--temperature", "0", "--max-tokens", "20",
            "--weights", "ternary", "--timing"
        ])
        XCTAssertEqual(greedy.status, 0, greedy.stderr)
        XCTAssertTrue(greedy.stderr.contains("tokens/s"), greedy.stderr)
    }

    func testExportWritesAHuggingFaceFolder() throws {
        let run = try trainRun("x", quant: ["--set", "quant.mode=dqt"])
        let out = dir.appendingPathComponent("hf")
        let r = try QTrainBinary.run(["export", run.path, "--format", "hf", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in [
            "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"
        ] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
        let config = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json")))
                as? [String: Any])
        XCTAssertEqual(config["architectures"] as? [String], ["LlamaForCausalLM"])
        XCTAssertEqual(config["hidden_size"] as? Int, 32)
        XCTAssertEqual(config["tie_word_embeddings"] as? Bool, false)
        // Weights are the dequantised codes.
        let ckpt = try LoadedCheckpoint(path: run)
        let model = try ckpt.model(batch: 1)
        let file = try SafetensorsFile(url: out.appendingPathComponent("model.safetensors"))
        for spec in model.layout.specs {
            var expected = [Float](repeating: 0, count: spec.count)
            expected.withUnsafeMutableBufferPointer {
                model.weights.writeValues(of: spec.index, from: 0, count: spec.count, into: $0.baseAddress!)
            }
            XCTAssertEqual(try file.floats(spec.name), expected, spec.name)
            XCTAssertEqual(try file.entry(spec.name).shape, spec.shape)
        }
        let bf16 = try QTrainBinary.run([
            "export", run.path, "--out", dir.appendingPathComponent("hf16").path, "--dtype", "bf16"
        ])
        XCTAssertEqual(bf16.status, 0, bf16.stderr)
        XCTAssertEqual(
            try SafetensorsFile(url: dir.appendingPathComponent("hf16/model.safetensors")).entry("lm_head.weight")
                .dtype, .bf16)
        let bad = try QTrainBinary.run(["export", run.path, "--format", "onnx", "--out", out.path])
        XCTAssertNotEqual(bad.status, 0)

        // Hugging Face `tokenizers` loads the tokenizer unchanged and agrees with ours.
        if TestPython.has(["tokenizers"]) {
            let text = "Fellow-Citizens — ünï ✓\nthe end<|endoftext|>"
            let py = try TestPython.run(
                """
                import sys
                from tokenizers import Tokenizer
                t = Tokenizer.from_file(sys.argv[1])
                ids = t.encode(sys.argv[2]).ids
                print(" ".join(map(str, ids)))
                print(t.decode(ids[:-1]) == sys.argv[2][:-len("<|endoftext|>")])
                """, [out.appendingPathComponent("tokenizer.json").path, text])
            XCTAssertEqual(py.status, 0, py.stderr)
            let ids = py.stdout.split(separator: "\n")[0].split(separator: " ").compactMap { Int32($0) }
            XCTAssertEqual(ids, ByteTokenizer().encode(String(text.dropLast(13))) + [256])
            XCTAssertEqual(py.stdout.split(separator: "\n")[1], "True")
        }
    }

    /// With torch and transformers present, LlamaForCausalLM loads the export and its logits
    /// match ours with activation quantisation off (max abs diff < 1e-3).
    func testExportMatchesTransformersLogits() throws {
        guard TestPython.has(["torch", "transformers", "safetensors"]) else {
            throw XCTSkip("torch and transformers are not installed (see README: tools/check_hf_export.py)")
        }
        let run = try trainRun("t", quant: ["--set", "quant.mode=dqt", "--set", "quant.bits=8"])
        let out = dir.appendingPathComponent("hf")
        XCTAssertEqual(try QTrainBinary.run(["export", run.path, "--out", out.path]).status, 0)
        let r = try runProgram(
            URL(fileURLWithPath: TestPython.path!),
            [
                repositoryFile("tools/check_hf_export.py"), out.path,
                "--qtrain", QTrainBinary.url.path, "--checkpoint", run.path
            ], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("OK"), r.stdout)
    }

    func testInspectDescribesWhatQtrainWrites() throws {
        let run = try trainRun("i", quant: ["--set", "quant.mode=dqt", "--set", "quant.bits=4"], steps: 4)
        let c = try QTrainBinary.run(["inspect", run.path])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stdout.contains("step 4"), c.stdout)
        XCTAssertTrue(c.stdout.contains("4-bit codes [32, 32]"), c.stdout)
        XCTAssertTrue(c.stdout.contains("match their SHA-256"), c.stdout)
        let s = try QTrainBinary.run(["inspect", data.appendingPathComponent("val_000.bin").path])
        XCTAssertTrue(s.stdout.contains("token shard") && s.stdout.contains("begins:"), s.stdout)
        let d = try QTrainBinary.run(["inspect", data.path])
        XCTAssertTrue(d.stdout.contains("unigram entropy"), d.stdout)
        let t = try QTrainBinary.run(["inspect", data.appendingPathComponent("tokenizer.json").path])
        XCTAssertTrue(t.stdout.contains("vocabulary 257"), t.stdout)
        let none = try QTrainBinary.run(["inspect", "/nonexistent"])
        XCTAssertNotEqual(none.status, 0)
    }
}
