import XCTest

/// `export --format gguf`, read back with llama.cpp's `gguf` package (tools/check_gguf.py):
/// tensor types, shapes, values within the FP16 rounding of the block step, tokenizer metadata.
final class GGUFExportTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        guard TestPython.has(["gguf", "numpy"]) else {
            throw XCTSkip("no Python with the gguf package (launch/test.sh installs it)")
        }
        dir = temporaryDirectory(self)
    }

    /// A 1-layer model wide enough (256, SwiGLU 512) for TQ2_0's 256-code blocks.
    func train(_ name: String, data: URL, _ settings: [String]) throws -> URL {
        let run = dir.appendingPathComponent(name)
        var args = [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.dim=256", "--set", "model.n_heads=4", "--set", "model.ffn_dim=512", "--set",
            "model.n_layers=1",
            "--set", "model.seq_len=16", "--set", "train.micro_batch=2", "--set", "train.steps=2",
            "--set", "train.eval_every=0", "--set", "train.eval_sequences=2", "--set", "train.out_dir=\(run.path)"
        ]
        for s in settings { args += ["--set", s] }
        let r = try QTrainBinary.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        return run
    }

    /// Exports `run` and checks the file; returns the type of each tensor (Hugging Face names).
    func exportAndCheck(_ run: URL, _ extra: [String] = []) throws -> (types: [String: String], stdout: String) {
        let out = dir.appendingPathComponent(run.lastPathComponent + ".gguf")
        let e = try QTrainBinary.run(["export", run.path, "--format", "gguf", "--out", out.path] + extra)
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path + ".tmp"))
        let ternary = extra.contains("ternary") ? ["--ternary"] : []
        let r = try runProgram(
            URL(fileURLWithPath: TestPython.path!),
            [repositoryFile("tools/check_gguf.py"), out.path, run.path] + ternary, timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.hasSuffix("OK\n"), r.stdout)
        let json = try XCTUnwrap(r.stdout.split(separator: "\n").first)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return (try XCTUnwrap(obj["types"] as? [String: String]), e.stdout)
    }

    /// tools/read_checkpoint.py, which follows docs/checkpoint-format.md, gives exactly the
    /// weights of the Hugging Face export.
    func readerMatchesHuggingFaceExport(_ run: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let hf = dir.appendingPathComponent(run.lastPathComponent + "-hf")
        let e = try QTrainBinary.run(["export", run.path, "--format", "hf", "--out", hf.path])
        XCTAssertEqual(e.status, 0, e.stderr, file: file, line: line)
        let r = try TestPython.run(
            """
            import sys, numpy as np
            sys.path.insert(0, sys.argv[1])
            import read_checkpoint as rc
            ours = rc.load(sys.argv[2], forward=True)
            meta, hf = rc.read_safetensors(sys.argv[3] + "/model.safetensors")
            assert sorted(ours) == sorted(hf), (sorted(ours), sorted(hf))
            for name, (dtype, shape, raw) in hf.items():
                theirs = np.frombuffer(raw, dtype=np.float32).reshape(shape)
                assert np.array_equal(ours[name], theirs), name
            print("OK", len(hf))
            """, [repositoryFile("tools"), run.path, hf.path])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stdout.hasPrefix("OK"), r.stdout, file: file, line: line)
    }

    func matrixTypes(_ types: [String: String]) -> Set<String> {
        Set(types.filter { !$0.key.contains("norm") }.values)
    }

    func normTypes(_ types: [String: String]) -> Set<String> {
        Set(types.filter { $0.key.contains("norm") }.values)
    }

    func testTernaryAndIntegerGridsKeepTheirCodes() throws {
        let data = try makeSyntheticData(in: dir)
        let ternaryRun = try train("ternary", data: data, ["quant.mode=dqt"])
        try readerMatchesHuggingFaceExport(ternaryRun)
        let ternary = try exportAndCheck(ternaryRun)
        XCTAssertEqual(matrixTypes(ternary.types), ["TQ2_0"])
        XCTAssertEqual(normTypes(ternary.types), ["F32"])
        XCTAssertEqual(
            matrixTypes(try exportAndCheck(try train("q8", data: data, ["quant.mode=dqt", "quant.bits=8"])).types),
            ["Q8_0"])
        XCTAssertEqual(
            matrixTypes(try exportAndCheck(try train("q4", data: data, ["quant.mode=dqt", "quant.bits=4"])).types),
            ["Q4_0"])
        let q3 = try train("q3", data: data, ["quant.mode=dqt", "quant.bits=3"])
        try readerMatchesHuggingFaceExport(q3)
        XCTAssertEqual(matrixTypes(try exportAndCheck(q3).types), ["Q4_0"])
        XCTAssertEqual(
            matrixTypes(try exportAndCheck(try train("q6", data: data, ["quant.mode=dqt", "quant.bits=6"])).types),
            ["Q8_0"])
        // The rescale rule and gains under `scope: all` (norms still F32, as llama.cpp needs).
        let all = try exportAndCheck(
            try train("all", data: data, ["quant.mode=dqt", "quant.scope=all", "quant.scale=rescale"]))
        XCTAssertEqual(matrixTypes(all.types), ["TQ2_0"])
        XCTAssertEqual(normTypes(all.types), ["F32"])
    }

    func testBaselinesAndFallbacks() throws {
        let data = try makeSyntheticData(in: dir)
        // BitNet's forward weights are ternary codes times β; re-quantised 8-bit DQT is ternary too.
        let bitnet = try train("bitnet", data: data, ["quant.mode=bitnet"])
        try readerMatchesHuggingFaceExport(bitnet)
        XCTAssertEqual(matrixTypes(try exportAndCheck(bitnet).types), ["TQ2_0"])
        let q8 = try train("q8", data: data, ["quant.mode=dqt", "quant.bits=8"])
        try readerMatchesHuggingFaceExport(q8)
        XCTAssertEqual(matrixTypes(try exportAndCheck(q8, ["--weights", "ternary"]).types), ["TQ2_0"])
        let fp32 = try train("fp32", data: data, [])
        XCTAssertEqual(matrixTypes(try exportAndCheck(fp32).types), ["F32"])
        XCTAssertEqual(matrixTypes(try exportAndCheck(fp32, ["--dtype", "bf16"]).types), ["BF16"])
        // Rows of 32 do not fill TQ2_0's 256-code blocks: exact Q8_0, and the command says so.
        let narrow = try train(
            "narrow", data: data, ["quant.mode=dqt", "model.dim=32", "model.n_heads=2", "model.ffn_dim=96"])
        let n = try exportAndCheck(narrow)
        XCTAssertEqual(matrixTypes(n.types), ["Q8_0"])
        XCTAssertTrue(n.stdout.contains("not a multiple of 256 for TQ2_0, written Q8_0"), n.stdout)
    }

    func testTokenizersTravelInTheMetadata() throws {
        let corpus = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        var text = ""
        for d in 0..<8 {
            var doc = ""
            for j in 0..<60 {
                doc += "the \(["cat", "dog", "bird"][(j + d) % 3]) sat on the mat number \(j % 10) — ünï ✓.\n"
            }
            try doc.write(to: corpus.appendingPathComponent("doc\(d).txt"), atomically: true, encoding: .utf8)
            text += doc
        }
        let all = dir.appendingPathComponent("all.txt")
        try text.write(to: all, atomically: true, encoding: .utf8)
        // Byte-level BPE trained by prepare.
        let bpe = dir.appendingPathComponent("bpe")
        let p = try QTrainBinary.run([
            "prepare", "--corpus", corpus.path, "--out", bpe.path, "--tokenizer", "bpe:300", "--val-every", "4"
        ])
        XCTAssertEqual(p.status, 0, p.stderr)
        _ = try exportAndCheck(try train("bpe-run", data: bpe, ["quant.mode=dqt", "model.vocab_size=300"]))
        // A SentencePiece BPE model with byte fallback, trained by the sentencepiece library.
        guard TestPython.has(["sentencepiece"]) else { throw XCTSkip("no Python with sentencepiece") }
        let prefix = dir.appendingPathComponent("sp").path
        let t = try TestPython.run(
            """
            import sys, sentencepiece as spm
            spm.SentencePieceTrainer.train(input=sys.argv[1], model_prefix=sys.argv[2], vocab_size=320, model_type="bpe",
                                           byte_fallback=True, character_coverage=1.0,
                                           normalization_rule_name="identity")
            """, [all.path, prefix])
        XCTAssertEqual(t.status, 0, t.stderr)
        let sp = dir.appendingPathComponent("spdata")
        let q = try QTrainBinary.run([
            "prepare", "--corpus", corpus.path, "--out", sp.path, "--tokenizer", prefix + ".model", "--val-every", "4"
        ])
        XCTAssertEqual(q.status, 0, q.stderr)
        // A model vocabulary larger than the tokenizer's: the rest are unused pad tokens.
        _ = try exportAndCheck(
            try train("sp-run", data: sp, ["quant.mode=dqt", "quant.bits=8", "model.vocab_size=336"]))
    }
}
