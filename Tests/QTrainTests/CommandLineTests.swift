import XCTest

@testable import QTrainData

/// The command line as a user meets it: bad input ends with one clear `error:` line and a
/// non-zero exit status.
final class CommandLineTests: XCTestCase {
    func expectFailure(
        _ args: [String], in dir: URL, status: Int32, mentions: [String], file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let r = try QTrainBinary.run(args, in: dir, timeout: 120)
        XCTAssertEqual(r.status, status, "stderr: \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "expected one line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' not in: \(r.stderr)", file: file, line: line) }
    }

    func config(_ dir: URL, _ yaml: String) throws -> String {
        let url = dir.appendingPathComponent("run.yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testBadConfigs() throws {
        let dir = temporaryDirectory(self)
        try expectFailure(
            ["--config", try config(dir, "train:\n  micro_btch: 4\n")], in: dir, status: 2,
            mentions: ["train.micro_btch", "did you mean 'train.micro_batch'"])
        try expectFailure(
            ["--config", try config(dir, "optim:\n  lr: fast\n")], in: dir, status: 2,
            mentions: ["optim.lr", "'fast'"])
        try expectFailure(
            ["--config", try config(dir, "model:\n  n_layers: 0\n")], in: dir, status: 2,
            mentions: ["model.n_layers", "out of range"])
        try expectFailure(
            ["train", "--config", "missing.yaml"], in: dir, status: 2, mentions: ["missing.yaml", "does not exist"])
        try expectFailure(
            ["--config", try config(dir, "model:\n  dim: 32\n"), "--set", "optim.warmup=3"], in: dir, status: 2,
            mentions: ["optim.warmup", "did you mean 'optim.warmup_steps'"])
    }

    func testMissingAndCorruptData() throws {
        let dir = temporaryDirectory(self)
        let path = try config(dir, "data:\n  dir: nowhere\n")
        try expectFailure(["--config", path], in: dir, status: 3, mentions: ["nowhere", "qtrain-dist prepare"])

        let data = try makeSyntheticData(in: dir)
        let shard = data.appendingPathComponent("train_000.bin")
        var bytes = try Data(contentsOf: shard)
        try bytes.prefix(bytes.count - 3).write(to: shard)
        let good = try config(dir, "data:\n  dir: \(data.path)\nmodel:\n  seq_len: 16\n")
        try expectFailure(["--config", good], in: dir, status: 3, mentions: [shard.path, "truncated"])
        bytes[1] = 0
        try bytes.write(to: shard)
        try expectFailure(["--config", good], in: dir, status: 3, mentions: [shard.path, "wrong magic"])
    }

    func testVocabularyLargerThanModel() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let path = try config(dir, "data:\n  dir: \(data.path)\nmodel:\n  vocab_size: 100\n")
        try expectFailure(["--config", path], in: dir, status: 2, mentions: ["model.vocab_size", "257"])
    }

    /// `prepare --tokenizer bpe:N` learns a BPE from the training split; training, eval
    /// (bits per byte over the BPE's bytes) and generation all run on it.
    func testPrepareWithALearnedBPE() throws {
        let dir = temporaryDirectory(self)
        let corpus = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        for i in 0..<8 {
            var text = ""
            for j in 0..<(80 + 7 * i) {
                text += "the \(["cat", "dog", "bird"][j % 3]) sat on mat \(j % 10); it's fine. "
            }
            try text.write(to: corpus.appendingPathComponent("doc\(i).txt"), atomically: true, encoding: .utf8)
        }
        try expectFailure(
            ["prepare", "--corpus", corpus.path, "--out", "d", "--tokenizer", "bpe:lots"], in: dir, status: 2,
            mentions: ["bpe:lots", "bpe:4096"])
        let prep = try QTrainBinary.run(
            ["prepare", "--corpus", corpus.path, "--out", "bpe", "--tokenizer", "bpe:300", "--val-every", "4"],
            in: dir)
        XCTAssertEqual(prep.status, 0, prep.stderr)
        // This small corpus runs out of pairs before 300 tokens, which the log says.
        XCTAssertTrue(prep.stdout.contains("trained a byte-level BPE of 293 tokens"), prep.stdout)
        XCTAssertTrue(prep.stdout.contains("fewer than 300"), prep.stdout)
        let run = [
            "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=bpe", "--set", "model.vocab_size=300",
            "--set", "model.seq_len=16", "--set", "train.steps=30", "--set", "train.out_dir=run", "--set",
            "log.progress=lines"
        ]
        let train = try QTrainBinary.run(run, in: dir)
        XCTAssertEqual(train.status, 0, train.stderr)
        let eval = try QTrainBinary.run(["eval", "run"], in: dir)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("bits per byte"), eval.stdout)
        let gen = try QTrainBinary.run(
            ["generate", "run", "--prompt", "the cat", "--max-tokens", "12", "--seed", "3"], in: dir)
        XCTAssertEqual(gen.status, 0, gen.stderr)
        XCTAssertTrue(gen.stdout.hasPrefix("the cat"), gen.stdout)
        XCTAssertGreaterThan(gen.stdout.count, "the cat".count + 10, gen.stdout)
        let inspect = try QTrainBinary.run(["inspect", "bpe"], in: dir)
        XCTAssertTrue(inspect.stdout.contains("byte-level-bpe:293"), inspect.stdout)
        // The Hugging Face export carries the same tokenizer.
        let export = try QTrainBinary.run(["export", "run", "--format", "hf", "--out", "hf"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertEqual(
            try TokenizerLoader.load(from: dir.appendingPathComponent("hf")).identity,
            try TokenizerLoader.load(from: dir.appendingPathComponent("bpe")).identity)
    }
}
