import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainImport
@testable import QTrainModel
@testable import QTrainWeights

/// Importing pretrained models: GGUF files against llama.cpp's own `gguf` package
/// (tools/make_gguf_fixture.py: every tensor type qtrain reads, Q/K in llama.cpp's row order, a
/// SmolLM2-style tokenizer), Hugging Face folders against transformers' logits
/// (tools/make_hf_llama.py: grouped-query attention, tied embeddings, BF16 shards), export →
/// import round trips, every weight policy as a starting point, and what is refused.
final class ImportTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        guard TestPython.has(["gguf", "numpy", "safetensors", "tokenizers"]) else {
            throw XCTSkip("no Python with gguf, numpy, safetensors and tokenizers (launch/test.sh installs them)")
        }
        dir = temporaryDirectory(self)
    }

    /// tools/make_gguf_fixture.py's file for `variant`.
    func fixture(_ variant: String = "normal") throws -> URL {
        let out = dir.appendingPathComponent("\(variant).gguf")
        if FileManager.default.fileExists(atPath: out.path) { return out }
        let r = try runProgram(
            URL(fileURLWithPath: TestPython.path!),
            [repositoryFile("tools/make_gguf_fixture.py"), out.path, "--variant", variant], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        return out
    }

    /// Every tensor comes out as ggml dequantises it, in Hugging Face's row order (Q and K
    /// un-permuted per query and per key/value head), and the shape keys become the config.
    func testGGUFTensorsMatchLlamaCppDequantisation() throws {
        for variant in ["normal", "untied"] {
            let url = try fixture(variant)
            let model = try PretrainedModel.open(url.path)
            let c = model.config
            XCTAssertEqual(
                [c.dim, c.nLayers, c.nHeads, c.kvHeads, c.hiddenDim, c.vocabSize, c.seqLen],
                [256, 1, 4, 2, 256, 268, 512])
            XCTAssertEqual(c.ropeTheta, 50_000)
            XCTAssertEqual(c.tieEmbeddings, variant == "normal")
            let reference = try SafetensorsFile(
                url: dir.appendingPathComponent("\(variant).reference.safetensors"))
            let layout = ParameterLayout(c)
            XCTAssertEqual(Set(layout.specs.map(\.name)), Set(reference.entries.keys))
            XCTAssertEqual(Set(model.sourceTypes.values), ["Q8_0", "Q4_1", "Q4_0", "F16", "BF16", "TQ2_0", "F32"])
            for spec in layout.specs {
                var got = [Float](repeating: 0, count: spec.count)
                try got.withUnsafeMutableBufferPointer { try model.values(of: spec, into: $0.baseAddress!) }
                let expected = try reference.floats(spec.name)
                XCTAssertEqual(got, expected, "\(variant) \(spec.name)")
            }
        }
    }

    /// The GGUF's tokenizer (pre-tokenizer `smollm`: digits one by one) gives the ids of Hugging
    /// Face `tokenizers` with the same vocabulary, merges and pre-tokenizers.
    func testGGUFTokenizerMatchesTokenizers() throws {
        let url = try fixture()
        let ours = try PretrainedModel.open(url.path).tokenizer()
        XCTAssertTrue(ours.identity.hasSuffix(":digits"))
        let texts = [
            "the theme 2024 and then, in 1999: thé année", "  in  the\n\nend 3.14159 ", "an and and\tthe 12ab34",
            "Ω≈ç√∫ 😀 the", "then\u{4}x"
        ]
        let r = try TestPython.run(
            """
            import json, sys
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            print(json.dumps([t.encode(x, add_special_tokens=False).ids for x in json.loads(sys.argv[2])]))
            """,
            [
                dir.appendingPathComponent("normal.tokenizer.json").path,
                String(decoding: try JSONEncoder().encode(texts), as: UTF8.self)
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = try JSONDecoder().decode([[Int32]].self, from: Data(r.stdout.utf8))
        for (text, ids) in zip(texts, expected) {
            XCTAssertEqual(ours.encode(text), ids, text.debugDescription)
        }
        // `prepare --tokenizer MODEL.gguf` writes shards with the model's tokenizer.
        let corpus = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        for i in 0..<8 {
            try String(repeating: "the cat sat on the mat in 2024 and then \(i). ", count: 40).write(
                to: corpus.appendingPathComponent("d\(i).txt"), atomically: true, encoding: .utf8)
        }
        let data = dir.appendingPathComponent("data")
        let p = try QTrainBinary.run([
            "prepare", "--corpus", corpus.path, "--tokenizer", url.path, "--out", data.path, "--val-every", "4"
        ])
        XCTAssertEqual(p.status, 0, p.stdout + p.stderr)
        XCTAssertEqual(try TokenizerLoader.load(from: data).identity, ours.identity)
    }

    /// A Hugging Face LlamaForCausalLM with grouped-query attention and tied embeddings, saved
    /// in BF16 as shards: qtrain's forward on the imported weights gives transformers' FP32 logits.
    func testHuggingFaceImportMatchesTransformers() throws {
        guard TestPython.has(["torch", "transformers"]) else {
            throw XCTSkip("torch and transformers are not installed (launch/test.sh installs them)")
        }
        for (name, args) in [("gqa-tied", ["--tied"]), ("mha-f16", ["--kv-heads", "4", "--dtype", "float16"])] {
            let folder = dir.appendingPathComponent(name)
            let r = try runProgram(
                URL(fileURLWithPath: TestPython.path!),
                [repositoryFile("tools/make_hf_llama.py"), folder.path] + args, timeout: 600)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            if name == "gqa-tied" {
                XCTAssertTrue(
                    FileManager.default.fileExists(
                        atPath: folder.appendingPathComponent("model.safetensors.index.json").path), "sharded")
            }
            let source = try PretrainedModel.open(folder.path)
            XCTAssertEqual(source.config.tieEmbeddings, name == "gqa-tied")
            var config = source.config
            let oracle = try XCTUnwrap(
                JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("logits.json")))
                    as? [String: Any])
            let tokens = (oracle["tokens"] as! [Int]).map(Int32.init)
            let expected = (oracle["logits"] as! [Double])
            config.seqLen = tokens.count
            let model = Model(config: config, quant: QuantConfig(), batch: 1, ledger: nil)
            let report = try source.load(into: model.weights, scale: .search)
            XCTAssertEqual(report.map(\.relativeError).max(), 0, "fp32 holds the imported values exactly")
            let logits = try model.logits(tokens: tokens).map(Double.init)
            XCTAssertLessThan(relativeError(logits, expected), 1e-4, name)
        }
    }

    /// Export then import gives back the forward weights: exactly from a Hugging Face folder
    /// (F32), within the FP16 rounding of the block step from GGUF (Q8_0 codes).
    func testExportThenImportRoundTrips() throws {
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent("run")
        var args = [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "train.steps=4", "--set", "train.eval_every=0", "--set", "train.eval_sequences=4",
            "--set", "train.out_dir=\(run.path)"
        ]
        for s in GroupedQueryTiedTests.shape + ["quant.mode=dqt", "quant.bits=8"] { args += ["--set", s] }
        XCTAssertEqual(try QTrainBinary.run(args).status, 0)
        let ckpt = try LoadedCheckpoint(path: run)
        let trained = try ckpt.model(batch: 1)
        let hf = dir.appendingPathComponent("hf"), gguf = dir.appendingPathComponent("m.gguf")
        XCTAssertEqual(try QTrainBinary.run(["export", run.path, "--format", "hf", "--out", hf.path]).status, 0)
        XCTAssertEqual(try QTrainBinary.run(["export", run.path, "--format", "gguf", "--out", gguf.path]).status, 0)
        for (source, bound) in [(hf, 0.0), (gguf, pow(2.0, -11) * 1.0001)] {
            let imported = try PretrainedModel.open(source.path)
            XCTAssertEqual(imported.config.kvHeads, 2)
            XCTAssertTrue(imported.config.tieEmbeddings)
            for spec in trained.layout.specs {
                var mine = [Float](repeating: 0, count: spec.count), back = mine
                trained.weights.writeValues(of: spec.index, from: 0, count: spec.count, into: &mine)
                try back.withUnsafeMutableBufferPointer { try imported.values(of: spec, into: $0.baseAddress!) }
                for i in 0..<spec.count {
                    XCTAssertLessThanOrEqual(
                        abs(Double(back[i]) - Double(mine[i])), bound * abs(Double(mine[i])),
                        "\(source.lastPathComponent) \(spec.name)[\(i)]")
                }
            }
        }
    }

    /// A searched step rounds no worse than absmean's or absmax's, at every width; `auto` is
    /// absmax at 8 bits and absmean for ternary.
    func testScaleRules() throws {
        let source = try PretrainedModel.open(try fixture().path)
        var config = source.config
        config.seqLen = 16
        for bits in [1.58, 4, 8] {
            var errors: [ImportScale: Double] = [:], codes: [ImportScale: [Int8]] = [:]
            for rule in ImportScale.allCases {
                var quant = QuantConfig()
                quant.mode = .dqt
                quant.bits = bits
                let weights = ModelWeights(layout: ParameterLayout(config), quant: quant, ledger: nil)
                let report = try source.load(into: weights, scale: rule)
                errors[rule] = report.filter { !$0.name.hasSuffix("norm.weight") }.map(\.relativeError).reduce(0, +)
                codes[rule] = weights.codes(weights.layout.blocks[0].up)!.codes()
            }
            XCTAssertLessThanOrEqual(errors[.search]!, errors[.absmean]! * 1.000001, "\(bits) bits")
            XCTAssertLessThanOrEqual(errors[.search]!, errors[.absmax]! * 1.000001, "\(bits) bits")
            XCTAssertEqual(codes[.auto], codes[bits == 8 ? .absmax : bits == 1.58 ? .absmean : .search], "\(bits) bits")
        }
    }

    /// `import` then `train`: every weight policy starts from the imported weights (the first
    /// validation loss is the imported model's, not a random model's), resumes bitwise, and a
    /// run whose data has another tokenizer is refused.
    func testFineTuningStartsFromTheImportedWeights() throws {
        let gguf = try fixture()
        let tokenizer = try PretrainedModel.open(gguf.path).tokenizer()
        let data = try makeSyntheticData(in: dir, tokenizer: tokenizer, name: "model-data")
        func importRun(_ name: String, _ settings: [String]) throws -> URL {
            let run = dir.appendingPathComponent(name)
            var args = [
                "import", gguf.path, "--out", run.path, "--quiet", "--config", repositoryFile("configs/tiny.yaml")
            ]
            for s in settings + [
                "data.dir=\(data.path)", "model.seq_len=16", "train.steps=6", "train.eval_every=3",
                "train.eval_sequences=4", "train.micro_batch=2", "log.every=1", "optim.warmup_steps=0",
                "optim.lr=1e-4"
            ] {
                args += ["--set", s]
            }
            let r = try QTrainBinary.run(args)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertTrue(r.stdout.contains("wrote \(run.path)/config.yaml"), r.stdout)
            return run
        }
        func train(_ run: URL, _ extra: [String] = []) throws -> CommandResult {
            let r = try QTrainBinary.run(
                ["train", "--config", run.appendingPathComponent("config.yaml").path] + extra, timeout: 300)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            return r
        }
        for (name, settings) in [
            ("fp32", ["quant.mode=fp32"]), ("bitnet", ["quant.mode=bitnet"]), ("ternary", ["quant.mode=dqt"]),
            ("dqt8", ["quant.mode=dqt", "quant.bits=8", "optim.grad_dtype=bf16", "optim.state_dtype=int8"])
        ] {
            let run = try importRun(name, settings)
            let straight = try train(run)
            XCTAssertTrue(straight.stdout.contains("initialised from \(gguf.path)"), straight.stdout)
            if name == "fp32" {
                // Six small steps from the imported weights stay close to them.
                let reference = try SafetensorsFile(url: dir.appendingPathComponent("normal.reference.safetensors"))
                let saved = try SafetensorsFile(url: run.appendingPathComponent("step-0000006/model.safetensors"))
                for (tensor, _) in reference.entries {
                    let a = try reference.floats(tensor).map(Double.init), b = try saved.floats(tensor).map(Double.init)
                    XCTAssertLessThan(relativeError(b, a), 0.05, tensor)
                }
            }
            let split = try importRun(name + "-split", settings)
            _ = try train(split, ["--stop-at", "3"])
            let resumed = try train(split)
            XCTAssertFalse(resumed.stdout.contains("initialised from"), "a resumed run does not import again")
            for file in ["model.safetensors", "optimizer.safetensors"] {
                XCTAssertEqual(
                    try Data(contentsOf: run.appendingPathComponent("step-0000006/\(file)")),
                    try Data(contentsOf: split.appendingPathComponent("step-0000006/\(file)")), "\(name) \(file)")
            }
        }
        // Two ranks with ZeRO-1 and BF16 gradients: every rank imports the same weights (the
        // replica check at step 0 passes) and only rank 0 reports it.
        let zero = try importRun("zero", ["quant.mode=dqt", "dist.shard_optimizer=true", "optim.grad_dtype=bf16"])
        let mpi = try runProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"),
            ["-n", "2", QTrainBinary.url.path, "train", "--config", zero.appendingPathComponent("config.yaml").path],
            environment: DistributedTests.mpiEnvironment, timeout: 300)
        XCTAssertEqual(mpi.status, 0, mpi.stdout + mpi.stderr)
        XCTAssertEqual(mpi.stdout.components(separatedBy: "initialised from").count, 2, mpi.stdout)
        XCTAssertTrue(
            FileManager.default.fileExists(
                atPath: zero.appendingPathComponent("step-0000006/optimizer-rank-0001.safetensors").path))
        // Data prepared with another tokenizer cannot fine-tune this model.
        let bytes = try makeSyntheticData(in: dir, name: "byte-data")
        let wrong = try importRun("wrong", ["quant.mode=fp32"])
        let r = try QTrainBinary.run([
            "train", "--config", wrong.appendingPathComponent("config.yaml").path, "--set", "data.dir=\(bytes.path)"
        ])
        XCTAssertEqual(r.status, 3, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("prepare --tokenizer \(gguf.path)"), r.stderr)
    }

    /// What cannot be imported faithfully stops with one `error:` line naming it, exit 4, and
    /// leaves no run directory behind.
    func testUnimportableModelsAreRefused() throws {
        var cases: [(URL, String)] = [
            (try fixture("gemma"), "it is a `gemma` model"),
            (try fixture("q5_0"), "blk.0.attn_q.weight is stored as ggml type 6 (Q5_0)"),
            (try fixture("bias"), "it has biases (blk.0.attn_q.bias)"),
            (try fixture("rope-scaling"), "RoPE scaling"),
            (try fixture("big-vocab"), "the tokenizer has 276 tokens but the model only 268 embeddings")
        ]
        // A file cut short.
        let whole = try Data(contentsOf: try fixture())
        let truncated = dir.appendingPathComponent("truncated.gguf")
        try whole.prefix(whole.count / 2).write(to: truncated)
        cases.append((truncated, "not a readable GGUF file"))
        // Not a GGUF file at all.
        let text = dir.appendingPathComponent("notes.gguf")
        try "hello".write(to: text, atomically: true, encoding: .utf8)
        cases.append((text, "not a readable GGUF file"))
        // A Hugging Face folder whose tokenizer (a SentencePiece tokenizer.model, read as such)
        // is larger than its embedding: the tiny run exported, its tokenizer.json swapped.
        if let sp = try? SentencePieceTokenizer.fetchMistralV1(cache: BPETests.cache, log: { _ in }) {
            let data = try makeSyntheticData(in: dir), run = dir.appendingPathComponent("tiny")
            XCTAssertEqual(
                try QTrainBinary.run([
                    "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                    "--set", "train.steps=1", "--set", "train.eval_every=0", "--set", "train.eval_sequences=2",
                    "--set", "train.out_dir=\(run.path)"
                ]).status, 0)
            let folder = dir.appendingPathComponent("sp-hf")
            XCTAssertEqual(try QTrainBinary.run(["export", run.path, "--format", "hf", "--out", folder.path]).status, 0)
            try FileManager.default.removeItem(at: folder.appendingPathComponent("tokenizer.json"))
            try Data(sp.modelBytes).write(to: folder.appendingPathComponent("tokenizer.model"))
            cases.append((folder, "the tokenizer has 32000 tokens but the model only 257 embeddings"))
        }
        if TestPython.has(["torch", "transformers"]) {
            let folder = dir.appendingPathComponent("rope-hf")
            let r = try runProgram(
                URL(fileURLWithPath: TestPython.path!),
                [repositoryFile("tools/make_hf_llama.py"), folder.path, "--rope-scaling"], timeout: 600)
            XCTAssertEqual(r.status, 0, r.stderr)
            cases.append((folder, "it uses RoPE scaling (config.json: linear, factor 2.0)"))
        }
        for (source, message) in cases {
            let run = dir.appendingPathComponent("refused-\(source.lastPathComponent)")
            let r = try QTrainBinary.run(["import", source.path, "--out", run.path])
            XCTAssertEqual(r.status, 4, "\(source.lastPathComponent): \(r.stdout + r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(message), "\(source.lastPathComponent): \(r.stderr)")
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: run.path), "nothing written for \(source.lastPathComponent)")
        }
    }
}
