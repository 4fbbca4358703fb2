import Foundation
import QTrainCore

/// `state.json` of a checkpoint: where the run was, and the SHA-256 of every file.
public struct CheckpointState: Codable, Sendable {
    public var format: Int
    public var step: Int
    public var optimizerStep: Int
    public var tokensSeen: Int
    /// The data loader's position: sampling is stateless, so the step is the cursor.
    public var dataCursor: Int
    public var seed: Int
    public var worldSize: Int
    public var shardOptimizer: Bool
    public var fingerprint: String
    public var files: [String: String]
    /// The full configuration of the run, as YAML.
    public var config: String
    public var created: String

    /// Reads a `state.json`.
    public static func read(_ url: URL) throws -> CheckpointState {
        try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: url))
    }

    enum CodingKeys: String, CodingKey {
        case format, step, optimizerStep = "optimizer_step", tokensSeen = "tokens_seen", dataCursor = "data_cursor"
        case seed, worldSize = "world_size", shardOptimizer = "shard_optimizer", fingerprint, files, config, created
    }
}

/// Writes and finds checkpoints: `RUN/step-NNNNNNN/` directories with `model.safetensors`,
/// the optimizer state (one file, or one per rank under ZeRO-1) and `state.json`; a
/// `RUN/latest` file names the newest. A checkpoint is written into a temporary directory,
/// fsynced, renamed, and only then does `latest` move, so a crash or a full disk leaves the
/// previous checkpoint as it was. Every method here is collective: all ranks call it.
public final class Checkpointer {
    public let run: URL
    public let config: CheckpointConfig
    let comm: Communicator

    public init(run: URL, config: CheckpointConfig, comm: Communicator) {
        self.run = run
        self.config = config
        self.comm = comm
    }

    public static func directoryName(step: Int) -> String { String(format: "step-%07d", step) }

    /// Whether the cadence asks for a checkpoint after `step`.
    public func isDue(step: Int) -> Bool { config.every > 0 && step % config.every == 0 }

    /// When the last checkpoint was written (or the run started).
    public private(set) var lastSave = Date()

    /// Whether `checkpoint.every_minutes` have passed since ``lastSave`` (by this rank's clock:
    /// the trainer takes the ranks' agreement).
    public var isDueByTime: Bool {
        config.everyMinutes > 0 && Date().timeIntervalSince(lastSave) >= config.everyMinutes * 60
    }

    // MARK: - Writing

    /// Whether a checkpoint is due after `step`: on the cadence, after the last step, and
    /// whenever the run stops early (so a stop never loses progress).
    public func shouldSave(step: Int, lastStep: Int, stopping: Bool) -> Bool {
        isDue(step: step) || step == lastStep || stopping
    }

    /// Writes a checkpoint of `progress` holding every component's files, with the run's
    /// `config` and the weights' `fingerprint` in `state.json`; returns its directory.
    @discardableResult
    public func save(
        _ progress: TrainProgress, components: [CheckpointComponent], config: RunConfig,
        optimizerStep: Int, fingerprint: UInt64
    ) throws -> URL {
        let step = progress.step
        let name = Self.directoryName(step: step)
        let tmp = run.appendingPathComponent(".tmp-\(name)")
        let final = run.appendingPathComponent(name)
        try collectively("prepare \(tmp.path)") {
            guard comm.rank == 0 else { return }
            try? FileManager.default.removeItem(at: tmp)
            try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        }
        var mine: [String: String] = [:]
        do {
            try collectively("write checkpoint files into \(tmp.path)") {
                for (i, component) in components.enumerated() {
                    mine.merge(try component.save(into: tmp, rank: comm.rank)) { a, _ in a }
                    // Test aid: a pause between the files, so a test can kill the process mid-write.
                    if i < components.count - 1,
                        let delay = ProcessInfo.processInfo.environment["QTRAIN_TEST_CHECKPOINT_DELAY"].flatMap(
                            Double.init)
                    {
                        Thread.sleep(forTimeInterval: delay)
                    }
                }
            }
            let files = try gatherFileTable(mine)
            try collectively("publish \(final.path)") {
                guard comm.rank == 0 else { return }
                let state = CheckpointState(
                    format: CheckpointFormat.version, step: step, optimizerStep: optimizerStep,
                    tokensSeen: progress.tokensSeen, dataCursor: step, seed: config.train.seed,
                    worldSize: comm.worldSize, shardOptimizer: config.dist.shardOptimizer && comm.worldSize > 1,
                    fingerprint: String(format: "%016llx", fingerprint),
                    files: files, config: config.yaml(), created: ISO8601DateFormatter().string(from: Date()))
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeDurably(try encoder.encode(state), to: tmp.appendingPathComponent("state.json"))
                try syncDirectory(tmp)
                if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
                try rename(tmp, to: final)
                try writeDurably(Data((name + "\n").utf8), to: run.appendingPathComponent("latest.tmp"))
                try rename(run.appendingPathComponent("latest.tmp"), to: run.appendingPathComponent("latest"))
                try syncDirectory(run)
                purge()
            }
        } catch {
            if comm.rank == 0 { try? FileManager.default.removeItem(at: tmp) }
            let previous = Self.candidates(in: run).first { $0.lastPathComponent != name }
            throw QTrainError(
                .checkpoint, "the checkpoint of step \(step) could not be written: \(error)",
                hint: previous.map { "the previous checkpoint \($0.path) is intact; free disk space and resume" }
                    ?? "free disk space and start again")
        }
        lastSave = Date()
        return final
    }

    /// Every rank's written files (name → SHA-256), on every rank.
    private func gatherFileTable(_ mine: [String: String]) throws -> [String: String] {
        guard comm.worldSize > 1 else { return mine }
        let encoded = Array(try JSONEncoder().encode(mine))
        let lengths = try comm.allGather(UInt64(encoded.count)).map { Int($0) }
        var table = [UInt8](repeating: 0, count: lengths.reduce(0, +))
        let offset = lengths[..<comm.rank].reduce(0, +)
        table.replaceSubrange(offset..<(offset + encoded.count), with: encoded)
        try table.withUnsafeMutableBytes { try comm.allGatherBytes($0.baseAddress!, counts: lengths) }
        var all: [String: String] = [:]
        var start = 0
        for n in lengths {
            let part = try JSONDecoder().decode([String: String].self, from: Data(table[start..<(start + n)]))
            all.merge(part) { a, _ in a }
            start += n
        }
        return all
    }

    /// Runs `body` on every rank; if it failed on any rank, every rank throws.
    private func collectively(_ what: String, _ body: () throws -> Void) throws {
        var local: Error?
        do { try body() } catch { local = error }
        var flag = [local == nil ? 0.0 : Double(comm.rank + 1)]
        try comm.allReduceMax(&flag)
        if let local { throw local }
        if flag[0] > 0 { throw QTrainError(.checkpoint, "rank \(Int(flag[0]) - 1) could not \(what)") }
    }

    /// Deletes all but the newest `keep` complete checkpoints, and leftovers of interrupted writes.
    private func purge() {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: run.path)) ?? []
        for n in names where n.hasPrefix(".tmp-step-") { try? fm.removeItem(at: run.appendingPathComponent(n)) }
        let steps = names.filter { $0.hasPrefix("step-") }.sorted(by: >)
        for n in steps.dropFirst(config.keep) { try? fm.removeItem(at: run.appendingPathComponent(n)) }
    }

    // MARK: - Finding and verifying

    /// Checkpoint directories of `run`, newest first: the one `latest` names, then every
    /// `step-*` directory by step.
    public static func candidates(in run: URL) -> [URL] {
        let fm = FileManager.default
        var out: [URL] = []
        if let text = try? String(contentsOf: run.appendingPathComponent("latest"), encoding: .utf8) {
            let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !name.isEmpty { out.append(run.appendingPathComponent(name)) }
        }
        let steps = ((try? fm.contentsOfDirectory(atPath: run.path)) ?? []).filter { $0.hasPrefix("step-") }.sorted(
            by: >)
        for s in steps where !out.contains(where: { $0.lastPathComponent == s }) {
            out.append(run.appendingPathComponent(s))
        }
        return out
    }

    /// What ``verify(_:hashing:)`` hashes.
    public enum Hashed: Sendable {
        /// Every file (training resumes from all of them).
        case all
        /// The files inference reads (the model and the tokenizer). The optimizer state, which
        /// it never opens, is only checked present, with a safetensors header its size agrees
        /// with: hashing it (a gigabyte at 130M) was most of `generate`'s start-up.
        case modelAndTokenizer
    }

    /// Reads `dir/state.json` and checks that every file it lists is present and matches its
    /// SHA-256 (with `.modelAndTokenizer`, those two only). Errors name the file.
    public static func verify(_ dir: URL, hashing: Hashed = .all) throws -> CheckpointState {
        let stateURL = dir.appendingPathComponent("state.json")
        guard FileManager.default.fileExists(atPath: dir.path) else {
            throw QTrainError(.checkpoint, "checkpoint \(dir.path) does not exist")
        }
        guard let data = try? Data(contentsOf: stateURL) else {
            throw QTrainError(.checkpoint, "checkpoint \(dir.path) has no state.json (it was not completely written)")
        }
        let state: CheckpointState
        do {
            state = try JSONDecoder().decode(CheckpointState.self, from: data)
        } catch let error as DecodingError {
            throw QTrainError(
                .checkpoint, "\(stateURL.path) is not a valid checkpoint state: \(describe(error))",
                hint: "the file is damaged; use another checkpoint")
        }
        guard state.format == CheckpointFormat.version else {
            throw QTrainError(
                .checkpoint,
                "\(dir.path) has checkpoint format \(state.format); this build reads \(CheckpointFormat.version)")
        }
        // The state as a whole: where it says it is, and every file a checkpoint must hold.
        guard state.step >= 0, dir.lastPathComponent == directoryName(step: state.step) else {
            throw QTrainError(
                .checkpoint,
                "\(stateURL.path) says step \(state.step), but the checkpoint directory is \(dir.lastPathComponent)",
                hint: "the file is damaged or was moved; use another checkpoint")
        }
        guard state.worldSize >= 1, state.optimizerStep >= 0, state.tokensSeen >= 0 else {
            throw QTrainError(
                .checkpoint,
                "\(stateURL.path) has an impossible world size \(state.worldSize), optimizer step \(state.optimizerStep) or token count \(state.tokensSeen)",
                hint: "the file is damaged; use another checkpoint")
        }
        let optimizerFiles =
            state.shardOptimizer
            ? (0..<state.worldSize).map { OptimizerCheckpoint.fileName(rank: $0) }
            : [OptimizerCheckpoint.fileName(rank: nil)]
        let required = Set(["model.safetensors"] + optimizerFiles)
        let known = required.union(["tokenizer.json"])
        if let missing = required.subtracting(state.files.keys).sorted().first {
            throw QTrainError(
                .checkpoint, "\(stateURL.path) lists no checksum for \(missing)",
                hint: "the file is damaged; use another checkpoint")
        }
        if let extra = Set(state.files.keys).subtracting(known).sorted().first {
            throw QTrainError(
                .checkpoint, "\(stateURL.path) lists a file this format does not have: \(extra)",
                hint: "the file is damaged; use another checkpoint")
        }
        do {
            _ = try RunConfig.parse(yaml: state.config)
        } catch {
            throw QTrainError(
                .checkpoint, "the configuration stored in \(stateURL.path) cannot be read: \(error)",
                hint: "the file is damaged; use another checkpoint")
        }
        for (name, expected) in state.files.sorted(by: { $0.key < $1.key }) {
            let url = dir.appendingPathComponent(name)
            if hashing == .modelAndTokenizer && name != "model.safetensors" && name != "tokenizer.json" {
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw QTrainError(.checkpoint, "\(url.path) is missing from the checkpoint")
                }
                if name.hasSuffix(".safetensors") { _ = try SafetensorsFile(url: url) }
                continue
            }
            guard let actual = try? sha256(of: url) else {
                throw QTrainError(.checkpoint, "\(url.path) is missing from the checkpoint")
            }
            guard actual == expected else {
                throw QTrainError(
                    .checkpoint, "\(url.path) does not match the SHA-256 in state.json (truncated or modified)")
            }
            if name.hasSuffix(".safetensors") { _ = try SafetensorsFile(url: url) }
        }
        return state
    }

    /// A decoding error as one sentence: which key, and what is wrong with it.
    static func describe(_ error: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String { c.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .keyNotFound(let key, let ctx): return "key '\(path(ctx.codingPath + [key]))' is missing"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "key '\(path(ctx.codingPath))' has the wrong type"
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "it is not JSON" : "key '\(path(ctx.codingPath))' is malformed"
        @unknown default: return "\(error)"
        }
    }

    /// What to resume from: `explicit` when given (it must be valid); otherwise the newest valid
    /// checkpoint of the run directory, saying so when a newer one had to be skipped.
    public func locate(explicit: URL?, log: (String) -> Void) throws -> (URL, CheckpointState)? {
        if let explicit { return (explicit, try Self.verify(explicit)) }
        for dir in Self.candidates(in: run) {
            do {
                return (dir, try Self.verify(dir))
            } catch let e as QTrainError {
                log("warning: skipping checkpoint \(dir.lastPathComponent): \(e.message); trying an older one")
            }
        }
        return nil
    }

    // MARK: - Restoring

    /// Checks that the checkpoint in `dir` was trained with `config`'s model and quant
    /// sections, then restores every component from it (the optimizer re-sharded if the
    /// split differs and converted if its storage type differs). Returns the configuration the
    /// checkpoint was saved with and the progress it records.
    @discardableResult
    public func restore(
        _ components: [CheckpointComponent], from dir: URL, state: CheckpointState,
        config: RunConfig
    ) throws -> (config: RunConfig, progress: TrainProgress) {
        let saved: RunConfig
        do {
            saved = try RunConfig.parse(yaml: state.config)
        } catch {
            throw QTrainError(
                .checkpoint, "the configuration stored in \(dir.path)/state.json cannot be read: \(error)")
        }
        if saved.model != config.model {
            throw QTrainError(
                .checkpoint,
                "checkpoint \(dir.path) was trained with a different model section (\(describe(saved.model)) vs \(describe(config.model)))",
                hint: "resume with the checkpoint's configs, or use another train.out_dir to start afresh")
        }
        var savedQuant = saved.quant
        savedQuant.compute = config.quant.compute  // how it was computed does not change what was trained
        if savedQuant.resolved != config.quant.resolved {
            throw QTrainError(
                .checkpoint,
                "checkpoint \(dir.path) was trained with quant mode \(saved.quant.label), this run has \(config.quant.label)",
                hint: "resume with the checkpoint's quant settings, or use another train.out_dir")
        }
        for component in components { try component.restore(from: dir, state: state) }
        return (saved, TrainProgress(step: state.step, tokensSeen: state.tokensSeen))
    }

    private func describe(_ m: ModelConfig) -> String { m.summary() }
}
