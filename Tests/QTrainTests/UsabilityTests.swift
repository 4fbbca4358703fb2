import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainReport

/// The command line as a new user meets it: mistyped commands, --version, the config a run
/// records, eval's JSON and short texts, generate's comparison switches, tokenizer parity.
final class UsabilityTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = temporaryDirectory(self) }

    func oneLineError(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try QTrainBinary.run(args, in: dir, timeout: 60)
        XCTAssertEqual(r.status, 2, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
        for m in mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' not in: \(r.stderr)", file: file, line: line) }
    }

    func testMistypedCommandsGetSuggestions() throws {
        try oneLineError(["trian"], mentions: ["unknown command 'trian'", "Did you mean 'train'?"])
        try oneLineError(["evaluate", "runs/x"], mentions: ["Did you mean 'eval'?"])
        try oneLineError(["exprot", "--format", "gguf"], mentions: ["Did you mean 'export'?"])
        try oneLineError(
            ["configs/small.yaml"], mentions: ["give it with --config", "qtrain-dist train --config configs/small.yaml"]
        )
        try oneLineError(["frobnicate"], mentions: ["unknown command 'frobnicate'", "eval"])
        let v = try QTrainBinary.run(["--version"])
        XCTAssertEqual(v.status, 0)
        XCTAssertEqual(v.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "qtrain-dist \(QTrainVersion.string)")
        // Commands and options still parse as before.
        XCTAssertEqual(try QTrainBinary.run(["help", "export"]).status, 0)
    }

    func trainTiny(_ name: String, _ settings: [String]) throws -> URL {
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent(name)
        var args = [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.seq_len=16", "--set", "train.steps=2", "--set", "train.eval_every=0",
            "--set", "train.eval_sequences=2", "--set", "train.out_dir=\(run.path)"
        ]
        for s in settings { args += ["--set", s] }
        let r = try QTrainBinary.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        return run
    }

    func testRunConfigIsWrittenPlainlyAndCompletely() throws {
        let run = try trainTiny("q8", ["quant.mode=dqt", "quant.bits=8"])
        let text = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        for line in ["norm_eps: 1e-05", "bits: 8", "scale: fixed", "lr: 0.003", "eps: 1e-06", "rope_theta: 10000"] {
            XCTAssertTrue(text.contains("  \(line)\n"), "'\(line)' not in:\n\(text)")
        }
        XCTAssertFalse(text.contains("e+0"), text)
        XCTAssertFalse(text.contains("0000000"), text)
        // The file reads back as the configuration that ran.
        let reread = try RunConfig.load(path: run.appendingPathComponent("config.yaml").path)
        XCTAssertEqual(reread.yaml(), text)
        XCTAssertEqual(reread.quant.bits, 8)
        XCTAssertEqual(reread.model.normEps, 1e-5)
        let ternary = try RunConfig.load(path: nil, overrides: ["quant.mode=dqt"]).yaml()
        XCTAssertTrue(ternary.contains("  bits: 1.58\n"), ternary)
        XCTAssertTrue(
            try RunConfig.load(path: nil, overrides: ["quant.mode=bitnet"]).yaml().contains("  latent_dtype: fp32\n"))
    }

    func testEvalScoresEveryTokenAndSpeaksJSON() throws {
        let run = try trainTiny("e", ["quant.mode=dqt"])
        func eval(_ text: String) throws -> [String: Any] {
            let file = dir.appendingPathComponent("text-\(text.utf8.count).txt")
            try Data(text.utf8).write(to: file)
            let r = try QTrainBinary.run(["eval", run.path, "--data", file.path, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        }
        // 40 bytes with seq_len 16: two whole windows (32 targets) and a tail of 7.
        let long = String(repeating: "the cat sat on the mat. ", count: 2).prefix(40)
        let a = try eval(String(long))
        XCTAssertEqual(a["tokens"] as? Int, 39)
        XCTAssertEqual(a["windows"] as? Int, 3)
        XCTAssertEqual(a["bytes"] as? Int, 39)
        XCTAssertNotNil(a["loss"] as? Double)
        XCTAssertNotNil(a["bits_per_byte"] as? Double)
        // Shorter than one window: scored, not refused.
        let b = try eval("the cat")
        XCTAssertEqual(b["tokens"] as? Int, 6)
        XCTAssertEqual(b["windows"] as? Int, 1)
        // Windows line ends read as prepare reads them.
        let crlf = try eval("the cat\r\nsat on the mat\r\n"), lf = try eval("the cat\nsat on the mat\n")
        XCTAssertEqual(crlf["tokens"] as? Int, lf["tokens"] as? Int)
        XCTAssertEqual(try XCTUnwrap(crlf["loss"] as? Double), try XCTUnwrap(lf["loss"] as? Double), accuracy: 1e-12)
        let one = dir.appendingPathComponent("one.txt")
        try Data("x".utf8).write(to: one)
        let r = try QTrainBinary.run(["eval", run.path, "--data", one.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("at least 2 are needed"), r.stderr)
    }

    func testGenerateWithoutActivationQuantisationPrintsIds() throws {
        let run = try trainTiny("g", ["quant.mode=dqt", "quant.bits=8"])
        let args = ["generate", run.path, "--prompt", "the ", "--max-tokens", "40", "--temperature", "0", "--print-ids"]
        let on = try QTrainBinary.run(args), off = try QTrainBinary.run(args + ["--activation-quant", "off"])
        XCTAssertEqual(on.status, 0, on.stderr)
        XCTAssertEqual(off.status, 0, off.stderr)
        let ids = try XCTUnwrap(off.stdout.split(separator: "\n").last { $0.hasPrefix("ids: ") })
        let tokens = ids.dropFirst(5).split(separator: " ").compactMap { Int32($0) }
        XCTAssertFalse(tokens.isEmpty)
        XCTAssertTrue(tokens.count <= 40)
        // 40 tokens after a 4-token prompt run past seq_len 16: the window restarts, and the
        // text printed is the prompt plus the ids' text.
        let text = off.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast(2).joined(
            separator: "\n")
        XCTAssertEqual(text, "the " + ByteTokenizer().decode(tokens.filter { $0 != 256 }))
    }

    func testSpecialTokensTypedInTextAreTheirIds() throws {
        XCTAssertEqual(ByteTokenizer().encode("a<|endoftext|>b"), [97, 256, 98])
        XCTAssertEqual(ByteTokenizer().encode("<|endoftext|><|endoftext|>"), [256, 256])
        XCTAssertEqual(ByteTokenizer().encode("a<|endoftext"), Array("a<|endoftext".utf8).map(Int32.init))
        let docs = (0..<6).map {
            Document(name: "d\($0).txt", text: String(repeating: "the cat sat on the mat. ", count: 20))
        }
        let bpe = try BPETrainer.train(on: docs.map(\.text), vocabSize: 280)
        let ids = bpe.encode("the cat<|endoftext|>the mat")
        XCTAssertEqual(ids, bpe.encode("the cat") + [bpe.endOfText] + bpe.encode("the mat"))
        XCTAssertEqual(bpe.decode(ids), "the cat<|endoftext|>the mat")
    }

    func testReportDrawsEveryPanelAndRefusesUnknownFormats() throws {
        let a = try trainTiny("a", ["quant.mode=dqt"]), b = try trainTiny("b", ["quant.mode=dqt", "quant.bits=8"])
        let html = dir.appendingPathComponent("r.html"), svg = dir.appendingPathComponent("r.svg")
        XCTAssertEqual(try QTrainBinary.run(["report", a.path, b.path, "--out", html.path, "--x", "tokens"]).status, 0)
        XCTAssertEqual(try QTrainBinary.run(["report", a.path, b.path, "--out", svg.path]).status, 0)
        let page = try String(contentsOf: html, encoding: .utf8), picture = try String(contentsOf: svg, encoding: .utf8)
        for panel in [
            "validation loss", "learning rate", "gradient norm", "share of codes changed", "codes changed by role",
            "throughput"
        ] {
            XCTAssertTrue(picture.contains(panel), panel)
            XCTAssertTrue(page.contains(panel), panel)
        }
        for column in ["tokens seen", "wall time", "best val loss", "val bits/byte", "B/param", "quant.bits"] {
            XCTAssertTrue(page.contains(column), column)
        }
        XCTAssertTrue(page.contains(">tokens</text>"))
        // Bits per byte: with the byte tokenizer every target is one byte but <|endoftext|> (none),
        // so it is the loss in bits, a little more.
        let series = try Report.Series(runDirectory: a)
        let (valStep, valLoss) = try XCTUnwrap(series.valLoss.last),
            (bpbStep, bpb) = try XCTUnwrap(series.valBitsPerByte.last)
        XCTAssertEqual(valStep, bpbStep)
        XCTAssertGreaterThanOrEqual(bpb, valLoss / log(2) * (1 - 1e-12))
        XCTAssertLessThan(bpb, valLoss / log(2) * 1.02)
        XCTAssertTrue(page.contains(String(format: "<td>%.4f</td>", bpb)), "bits per byte \(bpb) not in the table")
        let perParameter = try XCTUnwrap(series.bytesPerParameter)
        XCTAssertTrue(
            page.contains(String(format: "<td>%.2f</td>", perParameter)), "B/param \(perParameter) not in the table")
        // PNG: the same panels drawn at twice the SVG's size, with content (a blank page compresses to a few KB).
        let png = dir.appendingPathComponent("r.png")
        XCTAssertEqual(try QTrainBinary.run(["report", a.path, b.path, "--out", png.path]).status, 0)
        let bytes = [UInt8](try Data(contentsOf: png))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func be32(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        func attribute(_ name: String) -> Int? {
            picture.range(of: " \(name)=\"").flatMap { Int(picture[$0.upperBound...].prefix { $0.isNumber }) }
        }
        XCTAssertEqual(be32(16), 2 * (try XCTUnwrap(attribute("width"))))
        XCTAssertEqual(be32(20), 2 * (try XCTUnwrap(attribute("height"))))
        XCTAssertGreaterThan(bytes.count, 40_000)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir.path).contains { $0.contains(".tmp-") })
        // Round tick values only (no 6.09-style labels on the learning-rate axis).
        XCTAssertEqual(Report.ticks(5.5, 8.5), [6, 7, 8])
        XCTAssertEqual(Report.ticks(0, 0.0031, count: 3), [0, 0.002])
        try oneLineError(
            ["report", a.path, "--out", dir.appendingPathComponent("r.pdf").path],
            mentions: ["cannot write '.pdf'", ".svg, .png or .html"])
        try oneLineError(
            ["report", a.path, "--out", dir.appendingPathComponent("r.jpeg").path], mentions: ["cannot write '.jpeg'"])
    }

    /// `report --group-seeds`: runs that differ only in -seedN become one row whose final loss
    /// is the mean ± sd of the seeds' (computed here from their metrics.jsonl), with the band
    /// between the seeds drawn and the eval.jsonl numbers in the table.
    func testReportGroupsSeedsIntoMeanAndSpread() throws {
        let runs =
            try [1, 2, 3].map {
                try trainTiny("t-dqt-seed\($0)", ["quant.mode=dqt", "train.seed=\($0)", "train.steps=4"])
            }
            + [try trainTiny("t-bitnet-seed1", ["quant.mode=bitnet", "train.seed=1", "train.steps=4"])]
        func lastValLoss(_ run: URL) throws -> Double {
            let lines = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
                separator: "\n")
            return try XCTUnwrap(
                lines.compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["val_loss"] as? Double
                }.last)
        }
        let finals = try runs.prefix(3).map(lastValLoss)
        XCTAssertGreaterThan(Set(finals).count, 1, "the seeds should differ")
        let mean = finals.reduce(0, +) / 3
        let sd = (finals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
        // An evaluation line per seed, as the sweep writes them.
        for (i, run) in runs.prefix(3).enumerated() {
            let line =
                #"{"data":"sotu","weights":"stored","result":{"loss":\#(2.0 + Double(i)),"perplexity":\#(exp(2.0 + Double(i))),"bits_per_byte":1.5}}"#
            try (line + "\n").write(to: run.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
        }
        let html = dir.appendingPathComponent("g.html"), png = dir.appendingPathComponent("g.png")
        let r = try QTrainBinary.run(["report"] + runs.map(\.path) + ["--group-seeds", "--out", html.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            try QTrainBinary.run(["report"] + runs.map(\.path) + ["--group-seeds", "--out", png.path]).status, 0)
        let page = try String(contentsOf: html, encoding: .utf8)
        XCTAssertTrue(page.contains("<td>t-dqt</td><td>3</td>"), page)
        XCTAssertTrue(page.contains("<td>t-bitnet</td><td>1</td>"))
        XCTAssertTrue(page.contains(String(format: "<td>%.4f ± %.4f</td>", mean, sd)), "mean ± sd \(mean) \(sd)")
        XCTAssertTrue(page.contains("<td>3.0000 ± 1.0000</td>"), "eval loss mean ± sd")
        XCTAssertTrue(page.contains("sotu perplexity"))
        XCTAssertTrue(page.contains("fill-opacity=\"0.18\""), "no seed band drawn")
        XCTAssertEqual(
            page.components(separatedBy: "fill-opacity=\"0.18\"").count - 1, 1, "one band: only the group with seeds")
        XCTAssertFalse(page.contains("<th>train.seed</th>"))
    }

    /// A published run keeps metrics, config and at most a copy of the final state.json (no
    /// checkpoints): its tokens and B/param must still be those of the run it came from.
    func testReportReadsAPublishedRunWithoutCheckpoints() throws {
        let run = try trainTiny(
            "p-dqt", ["quant.mode=dqt", "train.steps=3", "train.micro_batch=2", "train.grad_accum=2"])
        let original = try Report.Series(runDirectory: run)
        let tokens = try XCTUnwrap(original.tokensPerStep)
        XCTAssertEqual(tokens, 2 * 2 * 16, "micro_batch × grad_accum × seq_len")
        let bytes = try XCTUnwrap(original.bytesPerParameter)
        let latest = try String(contentsOf: run.appendingPathComponent("latest"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for withState in [false, true] {
            let published = dir.appendingPathComponent("published-\(withState)")
            try FileManager.default.createDirectory(at: published, withIntermediateDirectories: true)
            for name in ["metrics.jsonl", "config.yaml"] {
                try FileManager.default.copyItem(
                    at: run.appendingPathComponent(name), to: published.appendingPathComponent(name))
            }
            if withState {
                try FileManager.default.copyItem(
                    at: run.appendingPathComponent(latest + "/state.json"),
                    to: published.appendingPathComponent("state.json"))
            }
            let series = try Report.Series(runDirectory: published)
            XCTAssertEqual(series.tokensPerStep, tokens, "state.json copied: \(withState)")
            XCTAssertEqual(series.bytesPerParameter, bytes, "state.json copied: \(withState)")
        }
        // A multi-rank run's metrics (comm_wait_share) without its state: the world size is
        // known only from train.global_batch, and unknown without it.
        let ranks = dir.appendingPathComponent("published-ranks")
        try FileManager.default.createDirectory(at: ranks, withIntermediateDirectories: true)
        try #"{"step":1,"loss":5,"comm_wait_share":0.1}"#.write(
            to: ranks.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        let yaml = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        try yaml.write(to: ranks.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        XCTAssertNil(try Report.Series(runDirectory: ranks).tokensPerStep)
        try yaml.replacingOccurrences(of: "global_batch: 0", with: "global_batch: 8")
            .write(to: ranks.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        XCTAssertEqual(
            try Report.Series(runDirectory: ranks).tokensPerStep, 8 * 16, "global_batch × seq_len over 2 ranks")
    }

    /// Shares of changed codes span decades (ternary 1e-4, 8-bit 0.5): the panel draws them on
    /// a log scale with a tick per power of ten, and the zoom keeps only the end of training.
    func testReportPanelsDrawDecadesAndZoom() {
        let line = Report.Line(points: [(0, 0), (10, 2e-4), (20, 0.5)], color: "#000")
        let log = Report.panel("codes", [line], x0: 0, y0: 0, w: 100, h: 100, xLabel: "step", logY: true)
        for tick in [">0.001<", ">0.01<", ">0.1<"] { XCTAssertTrue(log.contains(tick), "no tick \(tick) in \(log)") }
        XCTAssertFalse(log.contains(">0.2<"), "linear ticks on a log panel")
        XCTAssertEqual(
            log.components(separatedBy: "L").count - 1, 1, "the zero share is left out: two points, one segment")
        let zoom = Report.panel(
            "end", [Report.Line(points: [(0, 8), (50, 5), (100, 4.5)], color: "#000")],
            x0: 0, y0: 0, w: 100, h: 100, xLabel: "step", fromX: 50)
        XCTAssertFalse(zoom.contains(">8<"), "the start of training sets the zoomed range: \(zoom)")
        XCTAssertTrue(zoom.contains(">60<") && !zoom.contains(">0<"), "the x axis starts where the zoom does: \(zoom)")
    }
}
