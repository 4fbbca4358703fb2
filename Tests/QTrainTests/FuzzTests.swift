import XCTest

@testable import QTrainData

/// A short fixed-seed run of the file-format fuzzer (launch/fuzz.sh runs the long one): every
/// mutated safetensors file, shard, state.json, tokenizer.json, SentencePiece model, config and
/// JSON Lines corpus (plain, gzip, zstd)
/// is either read or rejected with an error, never a crash.
final class FuzzTests: XCTestCase {
    func testEveryReaderSurvivesMutatedInputs() throws {
        let dir = temporaryDirectory(self)
        let text = dir.appendingPathComponent("text")
        try FileManager.default.createDirectory(at: text, withIntermediateDirectories: true)
        for i in 0..<12 {
            let line = (0..<(60 + i)).map { "the \(["cat", "dog", "bird"][$0 % 3]) sat on the mat number \($0 % 10)." }
            try line.joined(separator: " ").write(
                to: text.appendingPathComponent("doc\(i).txt"), atomically: true, encoding: .utf8)
        }
        let data = dir.appendingPathComponent("data"), run = dir.appendingPathComponent("run")
        var r = try QTrainBinary.run([
            "prepare", "--corpus", text.path, "--out", data.path, "--val-every", "4", "--tokenizer", "bpe:300"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try QTrainBinary.run([
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.seq_len=16", "--set", "model.vocab_size=300", "--set", "train.steps=2",
            "--set", "quant.mode=dqt", "--set", "train.out_dir=\(run.path)"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        var args = [
            "--run", run.path, "--data", data.path, "--iterations", "400", "--seed", "11",
            "--work", dir.appendingPathComponent("work").path
        ]
        // The run exported as GGUF seeds the import reader.
        let gguf = dir.appendingPathComponent("seed.gguf")
        r = try QTrainBinary.run(["export", run.path, "--format", "gguf", "--out", gguf.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        args += ["--gguf", gguf.path]
        var targets = ["yaml", "state", "safetensors", "shard", "tokenizer", "gguf", "jsonl", "jsonl-gz", "jsonl-zst"]
        // Mistral's SentencePiece model, when the SentencePiece tests have fetched it.
        if let sp = try? SentencePieceTokenizer.fetchMistralV1(cache: BPETests.cache, log: { _ in }) {
            let model = dir.appendingPathComponent("sp.model")
            try Data(sp.modelBytes).write(to: model)
            args += ["--sentencepiece", model.path]
            targets.append("sentencepiece")
        }
        let fuzz = QTrainBinary.url.deletingLastPathComponent().appendingPathComponent("qtrain-fuzz")
        let f = try runProgram(fuzz, args + ["--targets", targets.joined(separator: ",")], timeout: 600)
        XCTAssertEqual(f.status, 0, "a reader crashed; the input is in the work directory\n" + f.stdout + f.stderr)
        for t in targets {
            XCTAssertTrue(f.stdout.contains("\(t): 400 executions"), f.stdout)
        }
    }
}
