import XCTest
@testable import QTrain

/// The command line as a user meets it: bad input ends with one clear `error:` line and a
/// non-zero exit status.
final class CommandLineTests: XCTestCase {
    func expectFailure(_ args: [String], in dir: URL, status: Int32, mentions: [String], file: StaticString = #filePath,
                       line: UInt = #line) throws {
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
        try expectFailure(["--config", try config(dir, "train:\n  micro_btch: 4\n")], in: dir, status: 2,
                          mentions: ["train.micro_btch", "did you mean 'train.micro_batch'"])
        try expectFailure(["--config", try config(dir, "optim:\n  lr: fast\n")], in: dir, status: 2,
                          mentions: ["optim.lr", "'fast'"])
        try expectFailure(["--config", try config(dir, "model:\n  n_layers: 0\n")], in: dir, status: 2,
                          mentions: ["model.n_layers", "out of range"])
        try expectFailure(["train", "--config", "missing.yaml"], in: dir, status: 2, mentions: ["missing.yaml", "does not exist"])
        try expectFailure(["--config", try config(dir, "model:\n  dim: 32\n"), "--set", "optim.warmup=3"], in: dir, status: 2,
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
}
