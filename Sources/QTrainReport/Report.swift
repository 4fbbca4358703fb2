import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainTraining

/// Loss curves of one or more runs as a self-contained SVG (and an HTML page around it),
/// read from their `metrics.jsonl` files (`qtrain-dist report`).
public enum Report {
    /// One run's curves.
    public struct Series {
        public var name: String
        /// The run directory's own name (`name` adds the weight policy).
        public var directoryName = ""
        /// The lines of the run's `eval.jsonl`, when it has one.
        public var evaluations: [Evaluation] = []
        /// (step, training loss) at every logged step.
        public var loss: [(Int, Double)]
        /// (step, validation loss) at every evaluation.
        public var valLoss: [(Int, Double)]
        /// (step, validation bits per byte) where the run knew its tokenizer.
        public var valBitsPerByte: [(Int, Double)] = []
        /// Training state per parameter and rank (weights, gradients, AdamW state, scratch) as
        /// the memory plan of the run's config gives it.
        public var bytesPerParameter: Double?
        public var lr: [(Int, Double)] = []
        public var gradNorm: [(Int, Double)] = []
        public var tokensPerSecond: [(Int, Double)] = []
        /// Share of codes that changed in the step (dqt), overall and per parameter role.
        public var codeChange: [(Int, Double)] = []
        public var codeChangeByRole: [String: [(Int, Double)]] = [:]
        /// Tokens per optimizer step (from the newest checkpoint), for a token axis.
        public var tokensPerStep: Int?
        /// Seconds of training at the last record.
        public var wallSeconds: Double?
        /// The run's `config.yaml` as `section.key` → value.
        public var settings: [String: String] = [:]

        /// Reads `directory/metrics.jsonl` (the name defaults to the directory's name plus the
        /// weight policy in `config.yaml`).
        public init(runDirectory directory: URL) throws {
            let file = directory.appendingPathComponent("metrics.jsonl")
            guard let records = try? MetricsRecord.read(file) else {
                throw QTrainError.data(
                    "no metrics at \(file.path)", hint: "give a run directory written by `qtrain-dist train`")
            }
            func series(_ value: (MetricsRecord) -> Double?, finite: Bool = false) -> [(Int, Double)] {
                records.compactMap { r in value(r).flatMap { !finite || $0.isFinite ? (r.step, $0) : nil } }
            }
            var byRole: [String: [(Int, Double)]] = [:]
            for r in records {
                for (role, x) in r.codeChangeByRole ?? [:] { byRole[role, default: []].append((r.step, x)) }
            }
            let configText = try? String(contentsOf: directory.appendingPathComponent("config.yaml"), encoding: .utf8)
            let config = configText.flatMap { try? RunConfig.parse(yaml: $0) }
            var label = directory.lastPathComponent
            if let config { label += " (\(config.policyLabel))" }
            self.init(name: label, loss: series(\.loss, finite: true), valLoss: series(\.valLoss, finite: true))
            directoryName = directory.lastPathComponent
            valBitsPerByte = series(\.valBpb, finite: true)
            evaluations = Self.evaluations(in: directory)
            lr = series(\.lr)
            gradNorm = series(\.gradNorm, finite: true)
            tokensPerSecond = series(\.tokensPerS)
            codeChange = series(\.codeChange)
            codeChangeByRole = byRole
            wallSeconds = records.last { $0.elapsedS != nil }?.elapsedS
            settings = configText.flatMap(RunConfig.settings(ofYAML:)) ?? [:]
            // The world size and tokens seen come from the newest checkpoint's state, or from a
            // copy of it beside the metrics (a published run keeps no checkpoints); without either,
            // from the config and what the metrics show (only multi-rank runs log comm_wait_share).
            let latest = (try? String(contentsOf: directory.appendingPathComponent("latest"), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let stateFile = [
                latest.map { directory.appendingPathComponent($0 + "/state.json") },
                directory.appendingPathComponent("state.json")
            ]
            .compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0.path) }
            var world: Int?
            if let stateFile, let state = try? CheckpointState.read(stateFile), state.step > 0 {
                tokensPerStep = state.tokensSeen / state.step
                world = state.worldSize
            } else if config != nil, !records.contains(where: { $0.commWaitShare != nil }) {
                world = 1
            } else if let config, config.train.globalBatch > 0 {
                world = config.train.globalBatch / (config.train.microBatch * config.train.gradAccum)
            }
            if let config, let world, let batch = try? config.train.microBatch(world: world) {
                if tokensPerStep == nil { tokensPerStep = batch * config.train.gradAccum * world * config.model.seqLen }
                let plan = MemoryPlan(config, microBatch: batch, world: world)
                bytesPerParameter = plan.stateBytes / plan.parameters
            }
        }

        /// The lines of `directory/eval.jsonl` (none when it has none; a line that is not one is skipped).
        static func evaluations(in directory: URL) -> [Evaluation] {
            guard let text = try? String(contentsOf: directory.appendingPathComponent("eval.jsonl"), encoding: .utf8)
            else { return [] }
            return text.split(separator: "\n").compactMap {
                try? JSONDecoder().decode(Evaluation.self, from: Data($0.utf8))
            }
        }

        /// The last step logged.
        public var steps: Int { max(loss.last?.0 ?? 0, valLoss.last?.0 ?? 0) }

        public init(name: String, loss: [(Int, Double)], valLoss: [(Int, Double)]) {
            self.name = name
            self.loss = loss
            self.valLoss = valLoss
        }
    }

    /// Twenty colours that stay apart on white (a sweep of one size has about fifteen settings).
    static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#000000", "#e7298a", "#66a61e", "#a6761d",
        "#7570b3", "#fdb462", "#1b9e77", "#b15928"
    ]

    /// An SVG chart: validation loss (solid, with points) and training loss (faint) per run.
    public static func svg(_ runs: [Series], title: String, width: Int = 840, height: Int = 460) -> String {
        let left = 60.0, right = 260.0, top = 40.0, bottom = 64.0
        let w = Double(width) - left - right, h = Double(height) - top - bottom
        let all = runs.flatMap { $0.loss + $0.valLoss }
        let maxStep = Double(max(all.map(\.0).max() ?? 1, 1))
        // The first evaluation (step 0) is far above the rest; start the y axis below the
        // training curves' 98th percentile so that the part worth comparing is readable.
        let values = all.map(\.1).sorted()
        let yMin = (values.first ?? 0) * 0.97
        let yMax = values.isEmpty ? 1 : max(values[Int(Double(values.count - 1) * 0.98)], yMin + 1e-3)
        func x(_ s: Int) -> Double { left + w * Double(s) / maxStep }
        func y(_ v: Double) -> Double { top + h * (1 - (min(v, yMax) - yMin) / (yMax - yMin)) }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(left))" y="24" font-size="15">\(escape(title))</text>

            """
        let yTicks = ticks(yMin, yMax), yStep = yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1
        for v in yTicks {
            out += String(
                format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, left + w, y(v),
                y(v))
            out += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, y(v) + 4,
                label(v, step: yStep))
        }
        for v in ticks(0, maxStep) {
            out += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x(Int(v)), top + h + 18,
                Int(v))
        }
        out += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n", left + w / 2, top + h + 34)
        out += String(
            format:
                "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" text-anchor=\"middle\">loss (nats/token)</text>\n",
            top + h / 2, top + h / 2)
        for (i, run) in runs.enumerated() {
            let color = palette[i % palette.count]
            func path(_ pts: [(Int, Double)]) -> String {
                pts.enumerated().map { j, p in String(format: "%@%.1f,%.1f", j == 0 ? "M" : "L", x(p.0), y(p.1)) }
                    .joined(separator: " ")
            }
            if !run.loss.isEmpty {
                out += "<path d=\"\(path(run.loss))\" fill=\"none\" stroke=\"\(color)\" stroke-opacity=\"0.3\"/>\n"
            }
            if !run.valLoss.isEmpty {
                out += "<path d=\"\(path(run.valLoss))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                for p in run.valLoss {
                    out += String(
                        format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\"/>", x(p.0), y(p.1), color)
                }
            }
            let ly = top + 10 + Double(i) * 34
            let last = run.valLoss.last.map { String(format: "val %.4f", $0.1) } ?? ""
            out += String(
                format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%@\"/>", left + w + 14, ly, color)
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", left + w + 32, ly + 5, escape(run.name))
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">%@</text>\n", left + w + 32, ly + 19, last)
        }
        out +=
            "<text x=\"\(Int(left))\" y=\"\(height - 6)\" fill=\"#777\">solid: validation loss; faint: training loss</text>\n</svg>\n"
        return out
    }

    /// Config keys whose values differ between the runs (excluding where a run writes).
    public static func differingSettings(_ runs: [Series]) -> [String] {
        let keys = Set(runs.flatMap(\.settings.keys)).subtracting(["train.out_dir"])
        return keys.filter { k in Set(runs.map { $0.settings[k] ?? "–" }).count > 1 }.sorted()
    }

    /// An HTML page with every panel and a table: steps, tokens seen, wall time, first, best and
    /// last validation loss, the last in bits per byte, mean tokens/s, training state per
    /// parameter and the config keys that differ between runs.
    public static func html(_ runs: [Series], title: String, x axis: XAxis = .steps) -> String {
        let differing = differingSettings(runs)
        var rows = ""
        for r in runs {
            func f(_ v: Double?, _ format: String) -> String { v.map { String(format: format, $0) } ?? "–" }
            let tokens = r.tokensPerStep.map { "\($0 * r.steps)" } ?? "–"
            let tps =
                r.tokensPerSecond.isEmpty
                ? nil : r.tokensPerSecond.map(\.1).reduce(0, +) / Double(r.tokensPerSecond.count)
            let settings = differing.map { "<td>\(escape(r.settings[$0] ?? "–"))</td>" }.joined()
            rows +=
                "<tr><td>\(escape(r.name))</td><td>\(r.steps)</td><td>\(tokens)</td><td>\(f(r.wallSeconds, "%.0f s"))</td>"
                + "<td>\(f(r.valLoss.first?.1, "%.4f"))</td><td>\(f(r.valLoss.map(\.1).min(), "%.4f"))</td><td>\(f(r.valLoss.last?.1, "%.4f"))</td>"
                + "<td>\(f(r.valBitsPerByte.last?.1, "%.4f"))</td><td>\(f(tps, "%.0f"))</td><td>\(f(r.bytesPerParameter, "%.2f"))</td>\(settings)</tr>\n"
        }
        let heads = differing.map { "<th>\(escape($0))</th>" }.joined()
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 12px;text-align:right}td:first-child{text-align:left}</style>
            </head><body>
            \(dashboard(runs, title: title, x: axis))
            <table><tr><th>run</th><th>steps</th><th>tokens seen</th><th>wall time</th><th>first val loss</th><th>best val loss</th><th>last val loss</th><th>val bits/byte</th><th>tokens/s</th><th>B/param</th>\(heads)</tr>
            \(rows)</table></body></html>

            """
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
