import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainWeights

/// `bench --modes`: weight policies and options named in a word (`fp32`, `bitnet`,
/// `bitnet-bf16`, `dqt`, `dqt:N`, each optionally followed by suffixes such as `+bf16-state`),
/// compared side by side.
public enum BenchModes {
    /// Suffixes that add options to a mode, e.g. `dqt+bf16-grad+int8-state`.
    static let suffixes: KeyValuePairs = [
        "+bf16-state": "optim.state_dtype=bf16", "+int8-state": "optim.state_dtype=int8",
        "+bf16-grad": "optim.grad_dtype=bf16", "+zero1": "dist.shard_optimizer=true",
        "+zero2": "dist.shard_optimizer=true,dist.shard_gradients=true",
        "+ckpt": "train.activation_checkpointing=blocks", "+int8": "quant.compute=int8",
        "+int8-bf16": "quant.compute=int8-bf16", "+int8-int8": "quant.compute=int8-int8",
        "+int8-int8bf16": "quant.compute=int8-int8bf16", "+reference": "quant.compute=reference",
        "+bf16": "quant.compute=bf16"
    ]

    /// The `--set` overrides that select `mode`.
    public static func overrides(for mode: String) throws -> [String] {
        for (suffix, option) in suffixes where mode.hasSuffix(suffix) {
            return try overrides(for: String(mode.dropLast(suffix.count)))
                + option.split(separator: ",").map(String.init)
        }
        switch mode {
        case "bitnet-bf16": return ["quant.mode=bitnet", "quant.latent_dtype=bf16"]
        default:
            // Every quant.mode is a mode by its own name.
            if let policy = QuantMode(rawValue: mode) { return ["quant.mode=\(policy.rawValue)"] }
            if mode.hasPrefix("dqt:") { return ["quant.mode=dqt", "quant.bits=\(mode.dropFirst(4))"] }
            throw QTrainError(
                .config, "unknown bench mode '\(mode)'",
                hint: "use " + QuantMode.allCases.map(\.rawValue).joined(separator: ", ")
                    + ", bitnet-bf16 or dqt:N, optionally followed by any of "
                    + suffixes.map(\.key).joined(separator: ", "))
        }
    }

    /// Each mode's config: the file and overrides, then the mode's own overrides.
    public static func configs(_ modes: [String], path: String?, overrides: [String]) throws -> [RunConfig] {
        try modes.map { try RunConfig.load(path: path, overrides: overrides + (try Self.overrides(for: $0))) }
    }

    /// Runs `bench … --json` of each mode in its own process of `executable` (so that each peak
    /// RSS is its own), one after another, passing its other lines to `log`; the records come
    /// back with their mode set.
    public static func runEach(
        _ modes: [String], executable: URL, path: String?, overrides: [String], steps: Int, warmup: Int,
        log: (String) -> Void
    ) throws -> [BenchRecord] {
        try modes.map { mode in
            var args = ["bench", "--steps", "\(steps)", "--warmup", "\(warmup)", "--json"]
            if let path { args += ["--config", path] }
            for o in overrides + (try Self.overrides(for: mode)) { args += ["--set", o] }
            log("== \(mode)")
            let p = Process()
            p.executableURL = executable
            p.arguments = args
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            var record: BenchRecord?
            var buffer = Data()
            while true {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let nl = buffer.firstIndex(of: 0x0A) {
                    let line = Data(buffer[buffer.startIndex..<nl])
                    buffer.removeSubrange(buffer.startIndex...nl)
                    if line.first == UInt8(ascii: "{"), let r = try? JSONDecoder().decode(BenchRecord.self, from: line)
                    {
                        record = r
                    } else {
                        log(String(decoding: line, as: UTF8.self))
                    }
                }
            }
            p.waitUntilExit()
            guard p.terminationStatus == 0, var record else {
                throw QTrainError(.io, "bench of mode \(mode) failed (exit \(p.terminationStatus))")
            }
            record.mode = mode
            return record
        }
    }

    /// The comparison table: step time, its ratio to the first mode, throughput, MFU, and per
    /// mode its memory (separate processes) or the path's peak (interleaved, one process).
    public static func table(_ records: [BenchRecord], interleaved: Bool) -> String {
        let base = records.first?.stepS ?? 1
        let width = max(12, records.map { $0.mode?.count ?? 0 }.max() ?? 0)
        func name(_ r: BenchRecord) -> String {
            (r.mode ?? r.label).padding(toLength: width, withPad: " ", startingAt: 0)
        }
        var lines: [String] = []
        if interleaved {
            let first = records.first
            let peaks =
                [String(format: "SGEMM %.1f GFLOP/s", first?.peakGflops ?? 0)]
                + (records.compactMap(\.int8PeakGops).first.map { [String(format: "int8 %.1f GOP/s", $0)] } ?? [])
                + (records.compactMap(\.bf16PeakGflops).first.map { [String(format: "bf16 %.1f GFLOP/s", $0)] } ?? [])
            lines.append("\ninterleaved; measured peaks: " + peaks.joined(separator: ", "))
        }
        // Memory is per mode only when each mode had its own process.
        lines.append(
            (interleaved ? "" : "\n") + "mode".padding(toLength: width, withPad: " ", startingAt: 0)
                + "   step s   ×first  tokens/s    MFU"
                + (interleaved ? "  path peak  path MFU" : "  path MFU   B/param  peak RSS"))
        for r in records {
            let common = String(format: "  %7.3f  %6.3f  %8.1f  %5.3f", r.stepS, r.stepS / base, r.tokensPerS, r.mfu)
            let rest =
                interleaved
                ? String(format: "  %9.1f  %8.3f", r.pathPeakGflops, r.pathMfu)
                : String(format: "  %8.3f  %8.3f  ", r.pathMfu, r.memory.bytesPerParam)
                    + formatBytes(r.memory.peakRssBytes)
            lines.append(name(r) + common + rest)
        }
        return lines.joined(separator: "\n")
    }
}
