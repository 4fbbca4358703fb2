import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainOptim

/// Checkpoints: bitwise resume (1 and 2 ranks), world-size changes, integrity checks and
/// fall-back, a kill in the middle of a write, a full disk, and a scheduler's SIGTERM.
final class CheckpointTests: XCTestCase {
    var dir: URL!
    var data: URL!

    override func setUpWithError() throws {
        dir = temporaryDirectory(self)
        data = try makeSyntheticData(in: dir)
    }

    func args(_ run: String, _ extra: [String] = []) -> [String] {
        [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)", "--set",
            "model.seq_len=16",
            "--set", "train.steps=16", "--set", "train.eval_every=8", "--set", "log.every=1", "--set",
            "log.progress=lines",
            "--set", "quant.mode=dqt", "--set", "train.out_dir=\(runURL(run).path)"
        ] + extra
    }

    func runURL(_ name: String) -> URL { dir.appendingPathComponent(name) }

    @discardableResult
    func train(
        _ run: String, _ extra: [String] = [], status: Int32 = 0, env: [String: String] = [:]
    ) throws -> CommandResult {
        let r = try QTrainBinary.run(args(run, extra), environment: env, timeout: 300)
        XCTAssertEqual(r.status, status, r.stdout + r.stderr)
        return r
    }

    @discardableResult
    func mpirun(_ n: Int, _ run: String, _ extra: [String] = []) throws -> CommandResult {
        let r = try runProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"), ["-n", "\(n)", QTrainBinary.url.path] + args(run, extra),
            environment: DistributedTests.mpiEnvironment, timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        return r
    }

    func bytes(_ run: String, _ step: Int, _ file: String) throws -> Data {
        try Data(
            contentsOf: runURL(run).appendingPathComponent(Checkpointer.directoryName(step: step))
                .appendingPathComponent(file))
    }

    func lastLoss(_ run: String) throws -> Double {
        let lines = try String(contentsOf: runURL(run).appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
            separator: "\n")
        let losses = lines.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
        }
        return try XCTUnwrap(losses.last)
    }

    func assertIdentical(
        _ a: String, _ b: String, step: Int = 16, optimizerFiles: [String] = ["optimizer.safetensors"],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        XCTAssertEqual(
            try bytes(a, step, "model.safetensors"), try bytes(b, step, "model.safetensors"), "codes differ",
            file: file, line: line)
        for f in optimizerFiles {
            XCTAssertEqual(try bytes(a, step, f), try bytes(b, step, f), "\(f) differs", file: file, line: line)
        }
        XCTAssertEqual(try lastLoss(a), try lastLoss(b), file: file, line: line)
    }

    func testBitwiseResumeSingleProcess() throws {
        try train("straight")
        let first = try train("split", ["--stop-at", "8"])
        XCTAssertTrue(first.stdout.contains("stopping after step 8"))
        let second = try train("split")
        XCTAssertTrue(
            second.stdout.contains("resumed from \(runURL("split").path)/step-0000008 at step 8"), second.stdout)
        try assertIdentical("straight", "split")
        // Bitnet's FP32 latent weights resume bitwise too.
        try train("b-straight", ["--set", "quant.mode=bitnet"])
        try train("b-split", ["--set", "quant.mode=bitnet", "--stop-at", "5"])
        try train("b-split", ["--set", "quant.mode=bitnet"])
        try assertIdentical("b-straight", "b-split")
    }

    /// BF16 moments (stochastically rounded) resume bitwise too, and an FP32-state checkpoint
    /// resumes into a BF16-state run by conversion, which the log says.
    /// BF16 and 8-bit moments resume bitwise, are stored as they are kept, and a run may switch
    /// to them from FP32 state on resume.
    func testReducedOptimizerStatesResumeBitwiseAndConvert() throws {
        for (state, stored) in [("bf16", SafetensorsDType.bf16), ("int8", .u8)] {
            let set = ["--set", "optim.state_dtype=\(state)"]
            try train("straight-\(state)", set)
            try train("split-\(state)", set + ["--stop-at", "8"])
            try train("split-\(state)", set)
            try assertIdentical("straight-\(state)", "split-\(state)")
            let saved = try SafetensorsFile(
                url: runURL("straight-\(state)").appendingPathComponent(Checkpointer.directoryName(step: 16))
                    .appendingPathComponent("optimizer.safetensors"))
            XCTAssertEqual(try saved.entry("m").dtype, stored)
            XCTAssertEqual(try saved.entry("v").dtype, stored)
            if state == "int8" { XCTAssertEqual(try saved.entry("v.scale").dtype, .f32) }
            try train("switch-\(state)", ["--stop-at", "8"])
            let r = try train("switch-\(state)", set)
            XCTAssertTrue(r.stdout.contains("optimizer state converted from fp32 to \(state)"), r.stdout)
            let (converted, native) = (try lastLoss("switch-\(state)"), try lastLoss("straight-\(state)"))
            XCTAssertLessThan(abs(converted - native), 0.01 * native, state)
        }
    }

    func testBitwiseResumeTwoRanksAndWorldSizeChanges() throws {
        try mpirun(2, "straight")
        try mpirun(2, "split", ["--stop-at", "8"])
        try mpirun(2, "split")
        try assertIdentical("straight", "split")

        // Replicated: stop on 2 ranks, continue on 1 with the same global batch.
        try mpirun(2, "world", ["--set", "train.global_batch=8", "--stop-at", "8"])
        let one = try train("world", ["--set", "train.global_batch=8"])
        XCTAssertTrue(one.stdout.contains("at step 8 (saved by 2 ranks"), one.stdout)
        XCTAssertLessThan(abs(try lastLoss("world") - (try lastLoss("straight"))), 0.05 * (try lastLoss("straight")))

        // ZeRO-1: stop on 2 ranks (two optimizer files), resume on 4: the state is re-sharded.
        let zero = ["--set", "dist.shard_optimizer=true", "--set", "train.global_batch=8"]
        try mpirun(2, "zero", zero + ["--stop-at", "8"])
        let saved = runURL("zero").appendingPathComponent("step-0000008")
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: saved.appendingPathComponent("optimizer-rank-0001.safetensors").path)
        )
        let four = try mpirun(4, "zero", zero)
        XCTAssertTrue(four.stdout.contains("at step 8 (saved by 2 ranks"), four.stdout)
        XCTAssertTrue(
            FileManager.default.fileExists(
                atPath: runURL("zero").appendingPathComponent("step-0000016/optimizer-rank-0003.safetensors").path))
        // The straight replicated run and the re-sharded one agree closely.
        try mpirun(2, "zero-ref", ["--set", "train.global_batch=8"])
        XCTAssertEqual(try lastLoss("zero"), try lastLoss("zero-ref"), accuracy: 0.01 * (try lastLoss("zero-ref")))
    }

    /// With no step cadence (checkpoint.every 0), checkpoints still come on the clock
    /// (checkpoint.every_minutes), on every rank at the same step; off, only the last one.
    func testCheckpointsComeOnTheClock() throws {
        try train("clock", ["--set", "checkpoint.every_minutes=0.0002", "--set", "checkpoint.keep=100"])
        let saved = Checkpointer.candidates(in: runURL("clock"))
        XCTAssertGreaterThan(saved.count, 1, "\(saved)")
        try mpirun(2, "clock2", ["--set", "checkpoint.every_minutes=0.0002", "--set", "checkpoint.keep=100"])
        XCTAssertGreaterThan(Checkpointer.candidates(in: runURL("clock2")).count, 1)
        try train("noclock", ["--set", "checkpoint.every_minutes=0"])
        XCTAssertEqual(Checkpointer.candidates(in: runURL("noclock")).count, 1)
    }

    /// Under int8-bf16 (stochastically rounded gradients) two ranks keep bit-identical
    /// replicas, compared after every step, and a resumed run repeats the roundings bit for bit.
    func testInt8BF16KeepsReplicasIdenticalAndResumesBitwise() throws {
        try XCTSkipUnless(ProductArithmetic.bf16.isAvailable, ProductArithmetic.bf16.unavailableReason ?? "")
        try assertTwoRanksIdenticalAndResumeBitwise(compute: "int8-bf16", announcing: "bf16 backward")
    }

    /// Under int8-int8 (the incoming gradient rounded stochastically to int8 for dX) likewise.
    func testInt8BackwardKeepsReplicasIdenticalAndResumesBitwise() throws {
        try XCTSkipUnless(ProductArithmetic.int8.isAvailable, ProductArithmetic.int8.unavailableReason ?? "")
        try assertTwoRanksIdenticalAndResumeBitwise(
            compute: "int8-int8", announcing: "int8 (oneDNN int8 GEMM (AVX-512 VNNI)) dX")
    }

    /// Two ranks on `compute` (replicas compared after every step) straight, and stopped at step
    /// 8 then resumed, end with byte-identical checkpoints; the run names its path.
    func assertTwoRanksIdenticalAndResumeBitwise(
        compute: String, announcing path: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let fast = ["--set", "quant.compute=\(compute)", "--set", "dist.check_every=1"]
        let straight = "straight-\(compute)", split = "split-\(compute)"
        let r = try mpirun(2, straight, fast)
        XCTAssertTrue(r.stdout.contains(path), r.stdout, file: file, line: line)
        try mpirun(2, split, fast + ["--stop-at", "8"])
        try mpirun(2, split, fast)
        try assertIdentical(straight, split, file: file, line: line)
    }

    /// The optimizer state loads correctly across any change of split (unit level).
    func testOptimizerStateReshards() throws {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim) = (100, 16, 1, 2, 32)
        let layout = ParameterLayout(c)
        let full = Optimizer(config: OptimConfig(), layout: layout, ledger: nil)
        for i in 0..<layout.count {
            full.m[i] = Float(i)
            full.v[i] = Float(2 * i)
        }
        full.step = 7
        let saved = ShardPlan(layout: layout, world: 3)
        var files: [SafetensorsFile] = []
        for (r, range) in saved.ranges.enumerated() {
            let part = Optimizer(config: OptimConfig(), layout: layout, range: range, ledger: nil)
            part.step = 7
            for i in range {
                part.m[i - range.lowerBound] = full.m[i]
                part.v[i - range.lowerBound] = full.v[i]
            }
            let url = dir.appendingPathComponent("opt-\(r).safetensors")
            try CheckpointFormat.optimizerWriter(part).write(to: url)
            files.append(try SafetensorsFile(url: url))
        }
        for world in [1, 2, 5] {
            for range in ShardPlan(layout: layout, world: world).ranges {
                let o = Optimizer(config: OptimConfig(), layout: layout, range: range, ledger: nil)
                try CheckpointFormat.loadOptimizer(o, from: files)
                XCTAssertEqual(o.step, 7)
                XCTAssertEqual(o.m.values, range.map { Float($0) })
                XCTAssertEqual(o.v.values, range.map { Float(2 * $0) })
            }
        }
        // A missing file is reported, not silently zero-filled.
        let o = Optimizer(config: OptimConfig(), layout: layout, ledger: nil)
        XCTAssertThrowsError(try CheckpointFormat.loadOptimizer(o, from: Array(files.dropLast()))) {
            XCTAssertTrue("\($0)".contains("missing"), "\($0)")
        }
        // Every shard boundary sits on a multiple of 40 within its tensor.
        for world in 2...7 {
            let plan = ShardPlan(layout: layout, world: world)
            XCTAssertEqual(plan.counts.reduce(0, +), layout.count)
            for r in plan.ranges.dropFirst() {
                let spec = layout.specs.last { $0.offset <= r.lowerBound }!
                XCTAssertEqual((r.lowerBound - spec.offset) % 40, 0)
            }
        }
    }

    func testDamagedCheckpointsAreDetectedAndSkipped() throws {
        try train("run", ["--set", "checkpoint.every=4", "--set", "checkpoint.keep=5", "--stop-at", "12"])
        let step12 = runURL("run").appendingPathComponent("step-0000012"),
            step8 = runURL("run").appendingPathComponent("step-0000008")
        // Truncate the newest model file: automatic resume falls back to step 8 and says why.
        let model = step12.appendingPathComponent("model.safetensors")
        let full = try Data(contentsOf: model)
        try full.prefix(full.count / 2).write(to: model)
        let r = try train("run", ["--set", "checkpoint.keep=5"])
        XCTAssertTrue(
            r.stdout.contains(
                "skipping checkpoint step-0000012: \(model.path) does not match the SHA-256 in state.json"), r.stdout)
        XCTAssertTrue(r.stdout.contains("resumed from \(step8.path) at step 8"), r.stdout)
        // An explicit --resume of a damaged checkpoint fails, naming the file.
        try full.write(to: model)
        var bytes = try Data(contentsOf: step8.appendingPathComponent("optimizer.safetensors"))
        bytes[bytes.count - 5] ^= 0xFF  // tampered
        try bytes.write(to: step8.appendingPathComponent("optimizer.safetensors"))
        let bad = try train("run", ["--resume", step8.path], status: 4)
        XCTAssertEqual(
            bad.stderr,
            "error: \(step8.path)/optimizer.safetensors does not match the SHA-256 in state.json (truncated or modified)\n"
        )
        // Half-written checkpoints (no state.json, a stale temporary directory, a dangling
        // `latest`) are never used.
        let runDir = runURL("half")
        try train("half", ["--stop-at", "4"])
        try FileManager.default.createDirectory(
            at: runDir.appendingPathComponent("step-0000099"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: runDir.appendingPathComponent(".tmp-step-0000100"), withIntermediateDirectories: true)
        try "step-0000200\n".write(to: runDir.appendingPathComponent("latest"), atomically: true, encoding: .utf8)
        let h = try train("half")
        XCTAssertTrue(
            h.stdout.contains(
                "skipping checkpoint step-0000200: checkpoint \(runDir.path)/step-0000200 does not exist"), h.stdout)
        XCTAssertTrue(h.stdout.contains("skipping checkpoint step-0000099"), h.stdout)
        XCTAssertTrue(h.stdout.contains("resumed from \(runDir.path)/step-0000004 at step 4"), h.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runDir.appendingPathComponent(".tmp-step-0000100").path))
    }

    func testKillDuringCheckpointWriteLeavesPreviousIntact() throws {
        let p = try SpawnedProgram(
            QTrainBinary.url, args("kill", ["--set", "train.steps=1000", "--set", "checkpoint.every=5"]),
            environment: ["QTRAIN_TEST_CHECKPOINT_DELAY": "2"])
        let tmp = runURL("kill").appendingPathComponent(".tmp-step-0000010")
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: tmp.appendingPathComponent("model.safetensors").path)
            && Date() < deadline
        {
            usleep(20_000)
        }
        p.send(SIGKILL)
        _ = p.wait(timeout: 30)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path), "the kill should land mid-write")
        XCTAssertEqual(
            try String(contentsOf: runURL("kill").appendingPathComponent("latest"), encoding: .utf8), "step-0000005\n")
        XCTAssertNoThrow(try Checkpointer.verify(runURL("kill").appendingPathComponent("step-0000005")))
        let r = try train("kill", ["--set", "train.steps=12"])
        XCTAssertTrue(r.stdout.contains("at step 5"), r.stdout)
    }

    func testFullDiskKeepsThePreviousCheckpoint() throws {
        // A real full disk where a small tmpfs can be mounted (root); otherwise a file-size
        // limit, which fails the same write calls.
        let mount = dir.appendingPathComponent("small-disk")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        let mounted =
            (try? runProgram(
                URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=720k", "tmpfs", mount.path]))?.status
            == 0
        defer { if mounted { _ = try? runProgram(URL(fileURLWithPath: "/bin/umount"), [mount.path]) } }
        let run = mounted ? "small-disk/run" : "limited"
        try train(run, ["--stop-at", "4"])
        let r: CommandResult
        if mounted {
            r = try QTrainBinary.run(args(run), timeout: 300)
        } else {
            let cmd = "ulimit -f 200; exec \"$0\" \"$@\""
            r = try runProgram(
                URL(fileURLWithPath: "/bin/sh"), ["-c", cmd, QTrainBinary.url.path] + args(run), timeout: 300)
        }
        XCTAssertEqual(r.status, 4, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("the checkpoint of step 16 could not be written"), r.stderr)
        XCTAssertTrue(r.stderr.contains("step-0000004 is intact"), r.stderr)
        let runDir = runURL(run)
        XCTAssertEqual(
            try String(contentsOf: runDir.appendingPathComponent("latest"), encoding: .utf8), "step-0000004\n")
        XCTAssertNoThrow(try Checkpointer.verify(runDir.appendingPathComponent("step-0000004")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: runDir.appendingPathComponent(".tmp-step-0000016").path))
    }

    /// A real training process gets SIGTERM, checkpoints at the next step boundary and exits
    /// 0; resumed, it continues bitwise as a run that was never interrupted.
    func testSIGTERMCheckpointsAndResumes() throws {
        try checkStopSignalCheckpointsAndResumes(SIGTERM, run: "term")
    }

    /// Ctrl-C (SIGINT) does what SIGTERM does: a checkpoint at the next step boundary, exit 0,
    /// a bitwise resume.
    func testSIGINTCheckpointsAndResumes() throws {
        try checkStopSignalCheckpointsAndResumes(SIGINT, run: "int")
    }

    /// SIGUSR1 to mpirun (which Open MPI forwards to every rank) stops a data-parallel job
    /// with a checkpoint at the next step boundary and exit 0 from mpirun (SIGTERM to mpirun
    /// makes Open MPI kill the ranks instead; README says so).
    func testSIGUSR1ToMpirunCheckpointsEveryRank() throws {
        let p = try SpawnedProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"),
            ["-n", "2", QTrainBinary.url.path]
                + args("usr1", ["--set", "train.steps=1000000", "--set", "log.every=100000"]),
            environment: DistributedTests.mpiEnvironment)
        let beats = runURL("usr1").appendingPathComponent(".heartbeat")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, (try? FileManager.default.contentsOfDirectory(atPath: beats.path).count) ?? 0 < 2 {
            usleep(50_000)
        }
        usleep(300_000)
        p.send(SIGUSR1)
        let r = p.wait(timeout: 120)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("on signal \(SIGUSR1)"), r.stdout)
        let newest = try XCTUnwrap(Checkpointer.candidates(in: runURL("usr1")).first)
        XCTAssertNoThrow(try Checkpointer.verify(newest))
    }

    /// A second Ctrl-C exits at once with 130, even in the middle of writing a checkpoint; the
    /// checkpoint before it stays the newest valid one.
    func testSecondSIGINTExitsAtOnce() throws {
        let p = try SpawnedProgram(
            QTrainBinary.url, args("int2", ["--set", "train.steps=100000", "--set", "checkpoint.every=5"]),
            environment: ["QTRAIN_TEST_CHECKPOINT_DELAY": "1"])
        let latest = runURL("int2").appendingPathComponent("latest")
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: latest.path) && Date() < deadline { usleep(20_000) }
        p.send(SIGINT)
        usleep(200_000)
        p.send(SIGINT)
        let r = p.wait(timeout: 60)
        XCTAssertEqual(r.status, 130, r.stdout + r.stderr)
        let name = try String(contentsOf: latest, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNoThrow(try Checkpointer.verify(runURL("int2").appendingPathComponent(name)))
    }

    func checkStopSignalCheckpointsAndResumes(_ signal: Int32, run: String) throws {
        let long = ["--set", "train.steps=100000", "--set", "log.every=100000"]
        let p = try SpawnedProgram(QTrainBinary.url, args(run, long))
        let metrics = runURL(run).appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: metrics.path) && Date() < deadline { usleep(5_000) }
        usleep(300_000)
        p.send(signal)
        let r = p.wait(timeout: 120)
        let text = r.stdout
        XCTAssertEqual(r.status, 0, text + r.stderr)
        XCTAssertTrue(text.contains("on signal \(signal)"), text)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("stopping after step") })
        let stopped = try XCTUnwrap(Int(line.split(separator: " ")[3]))
        XCTAssertGreaterThan(stopped, 0)
        // An uninterrupted run to the same step, and both continued ten steps further.
        let straight = "straight-\(run)"
        try train(straight, long + ["--stop-at", "\(stopped)"])
        XCTAssertEqual(try bytes(straight, stopped, "model.safetensors"), try bytes(run, stopped, "model.safetensors"))
        let resumed = try train(run, long + ["--stop-at", "\(stopped + 10)"])
        XCTAssertTrue(
            resumed.stdout.contains("resumed from \(runURL(run).path)/\(Checkpointer.directoryName(step: stopped))"),
            resumed.stdout)
        try train(straight, long + ["--stop-at", "\(stopped + 10)"])
        try assertIdentical(straight, run, step: stopped + 10)
    }

    /// The checkpoint's safetensors files load with the Python `safetensors` package unchanged.
    func testSafetensorsLoadInPython() throws {
        guard TestPython.has(["safetensors", "numpy"]) else {
            throw XCTSkip("no Python with safetensors and numpy (launch/test.sh provides one)")
        }
        try train("py", ["--set", "train.steps=4"])
        try train("py16", ["--set", "train.steps=4", "--set", "optim.state_dtype=bf16"])
        let ckpt = runURL("py").appendingPathComponent("step-0000004")
        let script = """
            import sys, numpy as np
            from safetensors import safe_open
            from safetensors.numpy import load_file
            m = load_file(sys.argv[1] + "/model.safetensors")
            o = load_file(sys.argv[1] + "/optimizer.safetensors")
            with safe_open(sys.argv[1] + "/model.safetensors", "np") as f:
                meta = f.metadata()
            q = m["model.layers.0.self_attn.q_proj.weight"]
            print(q.dtype, q.shape, meta["model.layers.0.self_attn.q_proj.weight.bits"], meta["model.layers.0.self_attn.q_proj.weight.shape"])
            print(m["model.norm.weight"].dtype, m["model.norm.weight"].shape, float(m["model.norm.weight"][0]))
            print(o["m"].shape[0], float(np.abs(o["v"]).sum()) > 0)
            # NumPy has no bfloat16, so BF16 moments are checked through the header here.
            with safe_open(sys.argv[2] + "/optimizer.safetensors", "np") as f:
                print(f.get_slice("v").get_dtype(), f.get_slice("v").get_shape(), f.metadata()["range_end"])
            """
        let r = try TestPython.run(script, [ckpt.path, runURL("py16").appendingPathComponent("step-0000004").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[0], "uint8 (205,) 1.58 32,32")  // 1024 ternary codes, five per byte
        XCTAssertTrue(lines[1].hasPrefix("float32 (32,)"), lines[1])
        let file = try SafetensorsFile(url: ckpt.appendingPathComponent("optimizer.safetensors"))
        XCTAssertEqual(lines[2], "\(try file.entry("m").count) True")
        XCTAssertEqual(lines[3], "BF16 [\(try file.entry("m").count)] \(try file.entry("m").count)")
    }
}
