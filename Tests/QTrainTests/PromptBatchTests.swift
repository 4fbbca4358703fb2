import XCTest

@testable import QKernels
@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainInference
@testable import QTrainModel
@testable import QTrainWeights

/// Prompt processing: a prompt chunk's rows multiply the weights in one integer GEMM
/// (``DecodeMatmul/gemmRows`` rows or more) and give the row-by-row products' logits bit for
/// bit; `generate --timing` reports the prompt and the generation apart, and its start-up.
final class PromptBatchTests: XCTestCase {
    /// The tiny shape with a vocabulary of 2,100 (the head is three GEMM blocks of weight rows)
    /// and odd widths (32 and 96: ternary rows end in a partial block of 64 codes).
    func model(bits: Double?) throws -> Model {
        var config = try RunConfig.load(path: repositoryFile("configs/tiny.yaml")).model
        config.vocabSize = 2100
        config.seqLen = 48
        var quant = QuantConfig()
        quant.mode = .dqt
        if let bits { quant.bits = bits }
        let model = Model(config: config, quant: quant, batch: 1, ledger: nil, gradients: .none())
        model.weights.initialize(seed: 7, std: 0.05)
        return model
    }

    func generator(_ m: Model, gemmRows: Int?, maxLength: Int? = nil) -> Generator {
        Generator(
            weights: m.weights, config: m.config, quantizesActivations: m.quantizesActivations, maxLength: maxLength,
            gemmRows: gemmRows)
    }

    func tokens(_ n: Int, vocab: Int) -> [Int32] { (0..<n).map { Int32(($0 * 37 + 11) % vocab) } }

    /// How many of the logits differ in any bit (a short failure message, not two arrays).
    func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count : max(a.count, b.count)
    }

    /// The GEMM and the per-row products are the same integers and the same rescale: a batched
    /// prompt's logits equal the row-by-row ones exactly, and token-by-token feeding (attention
    /// by dot products instead of GEMMs) to FP32 rounding; ternary (2-bit rows unpacked) and
    /// 8-bit (int8 rows in place).
    func testBatchedPromptEqualsRowByRow() throws {
        try XCTSkipIf(qk_int8_gemm_available() == 0, "oneDNN's int8 GEMM cannot run here")
        for bits in [nil, 8.0] {
            let m = try model(bits: bits)
            let prompt = tokens(40, vocab: m.config.vocabSize)
            let gemm = generator(m, gemmRows: 4), rows = generator(m, gemmRows: nil)
            XCTAssertTrue(gemm.computeName.contains("prompts by int8 GEMM"), gemm.computeName)
            XCTAssertTrue(gemm.computeName.hasPrefix(bits == nil ? "ternary 2-bit" : "int8"), gemm.computeName)
            let a = Array(gemm.feed(prompt)), b = Array(rows.feed(prompt))
            XCTAssertEqual(differing(a, b), 0, "bits \(bits ?? 1.58): GEMM and row-by-row logits differ")
            // Then decoding goes on one row at a time from the same cache.
            XCTAssertEqual(differing(Array(gemm.step(5)), Array(rows.step(5))), 0)
            let stepwise = generator(m, gemmRows: 4)
            var c: [Float] = []
            for t in prompt { c = Array(stepwise.step(t)) }
            XCTAssertLessThan(relativeError(a.map(Double.init), c.map(Double.init)), 1e-5, "bits \(bits ?? 1.58)")
        }
    }

    /// A prompt longer than one forward pass holds (a cache of twice the context) goes in
    /// chunks; each chunk's GEMM sees the keys cached by the ones before.
    func testPromptLongerThanOneChunk() throws {
        try XCTSkipIf(qk_int8_gemm_available() == 0, "oneDNN's int8 GEMM cannot run here")
        let m = try model(bits: nil)
        let T = m.config.seqLen
        let prompt = tokens(2 * T - 1, vocab: m.config.vocabSize)
        let gemm = generator(m, gemmRows: 4, maxLength: 2 * T)
        let rows = generator(m, gemmRows: nil, maxLength: 2 * T)
        let stepwise = generator(m, gemmRows: 4, maxLength: 2 * T)
        let a = Array(gemm.feed(prompt)), b = Array(rows.feed(prompt))
        var c: [Float] = []
        for t in prompt { c = Array(stepwise.step(t)) }
        XCTAssertEqual(gemm.position, 2 * T - 1)
        XCTAssertEqual(differing(a, b), 0)
        XCTAssertLessThan(relativeError(a.map(Double.init), c.map(Double.init)), 1e-5)
    }

    /// Decoding's spinning pool (``Threads/parallelForSpinning(_:minChunk:_:)``) covers every
    /// index once, and two threads decode the same logits as one, bit for bit.
    func testSpinningPoolMatchesOneThread() throws {
        let before = Threads.count
        defer { Threads.configure(before) }
        Threads.configure(2)
        var seen = [Int](repeating: 0, count: 1000)
        seen.withUnsafeMutableBufferPointer { b in
            for n in [1, 2, 999, 1000] {
                Threads.parallelForSpinning(n) { r in for i in r { b[i] += 1 } }
            }
        }
        XCTAssertEqual(seen[0], 4)
        XCTAssertEqual(seen[998], 2)
        XCTAssertEqual(seen[999], 1)
        let m = try model(bits: nil)
        let prompt = tokens(20, vocab: m.config.vocabSize)
        func decode() -> [Float] {
            let g = generator(m, gemmRows: nil)
            _ = g.feed(prompt)
            for t in prompt.prefix(5) { _ = g.step(t) }
            return Array(g.step(3))
        }
        let two = decode()
        Threads.configure(1)
        XCTAssertEqual(differing(two, decode()), 0)
    }

    /// A run trained by the command line, with a context that holds a prompt past the GEMM's
    /// threshold.
    func trainedRun() throws -> URL {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent("run")
        let r = try QTrainBinary.run([
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
            "--set", "model.seq_len=64", "--set", "train.steps=5", "--set", "train.eval_every=0",
            "--set", "train.out_dir=\(run.path)", "--set", "quant.mode=dqt"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        return run
    }

    /// Without oneDNN (QTRAIN_DISABLE_ONEDNN, read at its first use) the prompt goes row by row
    /// and greedy decoding gives the same tokens; `--timing` reports the prompt, the
    /// generation and the time to the first token with each start-up phase.
    func testFallbackWithoutOneDNNAndTimingReport() throws {
        let run = try trainedRun()
        let args = [
            "generate", run.path, "--prompt", "the cat sat on the mat number 3. the dog sat on the mat",
            "--temperature", "0", "--max-tokens", "6", "--print-ids", "--timing"
        ]
        let fast = try QTrainBinary.run(args)
        let plain = try QTrainBinary.run(args, environment: ["QTRAIN_DISABLE_ONEDNN": "1"])
        XCTAssertEqual(fast.status, 0, fast.stderr)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertEqual(fast.stdout, plain.stdout, "the same greedy tokens with and without the GEMM")
        XCTAssertTrue(
            plain.stderr.contains("prompts row by row (disabled by QTRAIN_DISABLE_ONEDNN)"), plain.stderr)
        if qk_int8_gemm_available() != 0 {
            XCTAssertTrue(fast.stderr.contains("prompts by int8 GEMM"), fast.stderr)
        }
        for field in [
            "prompt: 55 tokens in ", "generation: 6 tokens in ", " tokens/s", "time to first token: ",
            "checkpoint verify ", "tokenizer load ", "weights load ", "decoder build ", "prompt 0.", "first token 0."
        ] {
            XCTAssertTrue(fast.stderr.contains(field), "missing \(field): \(fast.stderr)")
        }
    }

    /// The report's numbers: tokens per second of each part, and the start-up phases summed
    /// into the time to the first token.
    func testTimingReportLines() {
        let clock = PhaseClock()
        clock.mark("checkpoint verify")
        clock.mark("prompt")
        let stats = GenerationStats(promptTokens: 100, promptSeconds: 0.05, generatedTokens: 20, generationSeconds: 0.1)
        XCTAssertEqual(stats.promptTokensPerSecond, 2000, accuracy: 1e-9)
        XCTAssertEqual(stats.generationTokensPerSecond, 200, accuracy: 1e-9)
        let lines = stats.report(clock: clock, compute: "int8")
        XCTAssertEqual(lines[0], "prompt: 100 tokens in 0.050 s: 2000.0 tokens/s")
        XCTAssertEqual(lines[1], "generation: 20 tokens in 0.100 s: 200.0 tokens/s")
        XCTAssertTrue(lines[2].hasPrefix("time to first token: 0.0"), lines[2])
        XCTAssertTrue(lines[2].contains("(checkpoint verify 0.0"), lines[2])
        XCTAssertTrue(lines[2].hasSuffix(" s)"), lines[2])
        XCTAssertEqual(lines[3], "compute: int8")
    }

    /// Generation hashes the model and the tokenizer but not the optimizer state it never
    /// reads; that file must still be there, with a header its size agrees with.
    func testInferenceVerifiesWhatItReads() throws {
        let run = try trainedRun()
        let step = Checkpointer.candidates(in: run)[0]
        let optimizer = step.appendingPathComponent(OptimizerCheckpoint.fileName(rank: nil))
        var bytes = try [UInt8](Data(contentsOf: optimizer))
        bytes[bytes.count - 1] ^= 0xFF  // a changed value: same size, header intact
        try Data(bytes).write(to: optimizer)
        XCTAssertNoThrow(try Checkpointer.verify(step, hashing: .modelAndTokenizer))
        XCTAssertThrowsError(try Checkpointer.verify(step)) {
            XCTAssertTrue("\($0)".contains("does not match the SHA-256"), "\($0)")
        }
        try Data(bytes.dropLast(8)).write(to: optimizer)  // truncated
        XCTAssertThrowsError(try Checkpointer.verify(step, hashing: .modelAndTokenizer))
        try FileManager.default.removeItem(at: optimizer)
        XCTAssertThrowsError(try Checkpointer.verify(step, hashing: .modelAndTokenizer)) {
            XCTAssertTrue("\($0)".contains("missing"), "\($0)")
        }
        let model = step.appendingPathComponent("model.safetensors")
        var m = try [UInt8](Data(contentsOf: model))
        m[m.count - 1] ^= 0xFF
        try Data(m).write(to: model)
        let g = try QTrainBinary.run(["generate", step.path, "--max-tokens", "2"])
        XCTAssertNotEqual(g.status, 0)
        XCTAssertTrue(g.stderr.contains("model.safetensors"), g.stderr)
    }
}
