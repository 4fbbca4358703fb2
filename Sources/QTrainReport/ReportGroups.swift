import Foundation

/// Runs of one setting that differ only in their seed (`report --group-seeds`): curves as the
/// mean over seeds with the range between the lowest and highest seed as a band, and results
/// as mean ± standard deviation.
extension Report {
    /// What `eval --json` measured on one data set with one weight setting (the lines of a
    /// run's `eval.jsonl`, which launch/experiments/paper.sh writes).
    public struct Evaluation: Sendable, Decodable {
        public var data: String
        public var weights: String
        public var loss: Double
        public var perplexity: Double
        public var bitsPerByte: Double?

        private enum Line: String, CodingKey { case data, weights, result }
        private enum Result: String, CodingKey { case loss, perplexity, bitsPerByte = "bits_per_byte" }

        public init(from decoder: Decoder) throws {
            let line = try decoder.container(keyedBy: Line.self)
            data = try line.decode(String.self, forKey: .data)
            weights = try line.decode(String.self, forKey: .weights)
            let result = try line.nestedContainer(keyedBy: Result.self, forKey: .result)
            loss = try result.decode(Double.self, forKey: .loss)
            perplexity = try result.decode(Double.self, forKey: .perplexity)
            bitsPerByte = try result.decodeIfPresent(Double.self, forKey: .bitsPerByte)
        }
    }

    /// Runs named alike but for a `-seedN` part, and their summary.
    public struct Group {
        /// The run directory name without its seed (`s-dqt8-seed2` → `s-dqt8`).
        public var name: String
        public var runs: [Series]
        /// The mean over the runs at every step that all of them logged; it carries the first
        /// run's settings, tokens per step and memory.
        public var mean: Series
        /// (step, lowest, highest) validation loss over the runs.
        public var valBand: [(Int, Double, Double)]

        /// Mean and standard deviation (n − 1; 0 for one run) of `values`.
        public static func spread(_ values: [Double]) -> (mean: Double, sd: Double)? {
            guard !values.isEmpty else { return nil }
            let m = values.reduce(0, +) / Double(values.count)
            let v = values.count > 1 ? values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1) : 0
            return (m, v.squareRoot())
        }

        /// The final validation loss of each run.
        public var finalValLosses: [Double] { runs.compactMap { $0.valLoss.last?.1 } }

        /// One evaluation's `pick` over the runs that have it.
        public func evaluations(_ data: String, weights: String = "stored", _ pick: (Evaluation) -> Double?) -> [Double]
        {
            runs.compactMap { r in r.evaluations.first { $0.data == data && $0.weights == weights }.flatMap(pick) }
        }
    }

    /// The seed in a run directory's name is its `-seedN` part.
    static func withoutSeed(_ name: String) -> String {
        guard let r = name.range(of: #"-seed[0-9]+"#, options: .regularExpression) else { return name }
        return name.replacingCharacters(in: r, with: "")
    }

    /// The runs grouped by their name without the seed, in the order each group first appears.
    public static func groups(_ runs: [Series]) -> [Group] {
        var order: [String] = []
        var members: [String: [Series]] = [:]
        for r in runs {
            let key = withoutSeed(r.directoryName)
            if members[key] == nil { order.append(key) }
            members[key, default: []].append(r)
        }
        return order.map { key in
            let rs = members[key]!
            func mean(_ pick: (Series) -> [(Int, Double)]) -> [(Int, Double)] {
                let lists = rs.map { Dictionary(pick($0), uniquingKeysWith: { _, b in b }) }
                let steps = pick(rs[0]).map(\.0).filter { s in lists.allSatisfy { $0[s] != nil } }
                return steps.map { s in (s, lists.map { $0[s]! }.reduce(0, +) / Double(lists.count)) }
            }
            var m = rs[0]
            let label = rs[0].name.replacingOccurrences(of: rs[0].directoryName, with: key)
            m.name = rs.count > 1 ? "\(label), \(rs.count) seeds" : label
            m.directoryName = key
            m.loss = mean(\.loss)
            m.valLoss = mean(\.valLoss)
            m.valBitsPerByte = mean(\.valBitsPerByte)
            m.lr = mean(\.lr)
            m.gradNorm = mean(\.gradNorm)
            m.tokensPerSecond = mean(\.tokensPerSecond)
            m.codeChange = mean(\.codeChange)
            m.codeChangeByRole = rs[0].codeChangeByRole.keys.reduce(into: [:]) { out, role in
                out[role] = mean { $0.codeChangeByRole[role] ?? [] }
            }
            let vals = rs.map { Dictionary($0.valLoss, uniquingKeysWith: { _, b in b }) }
            let band = m.valLoss.map(\.0).map { s in
                let v = vals.map { $0[s]! }
                return (s, v.min()!, v.max()!)
            }
            return Group(name: key, runs: rs, mean: m, valBand: rs.count > 1 ? band : [])
        }
    }

    /// The median of `values` (nil when empty): the throughput a run had most of the time,
    /// unmoved by a slow window (an evaluation, a checkpoint, another program).
    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// An HTML page of the groups: the panels (means, with the seed range of the validation
    /// loss as a band) and a table of final validation loss (mean ± sd over seeds), the
    /// evaluations in `eval.jsonl` (loss, perplexity and bits per byte on each data set; loss
    /// with ternary weights), median tokens/s, B/param and the config keys that differ.
    public static func groupedHTML(_ groups: [Group], title: String, x axis: XAxis = .steps) -> String {
        let differing = differingSettings(groups.map(\.mean)).filter { $0 != "train.seed" }
        let datasets = Array(Set(groups.flatMap { $0.runs.flatMap { $0.evaluations.map(\.data) } })).sorted()
        func pm(_ values: [Double], _ digits: Int = 4) -> String {
            guard let s = Group.spread(values) else { return "–" }
            return values.count > 1
                ? String(format: "%.\(digits)f ± %.\(digits)f", s.mean, s.sd) : String(format: "%.\(digits)f", s.mean)
        }
        var heads = "<th>setting</th><th>seeds</th><th>tokens seen</th><th>final val loss</th>"
        for d in datasets {
            heads +=
                "<th>\(escape(d)) loss</th><th>\(escape(d)) perplexity</th><th>\(escape(d)) bits/byte</th><th>\(escape(d)) loss, ternary weights</th>"
        }
        heads += "<th>tokens/s (median)</th><th>B/param</th>" + differing.map { "<th>\(escape($0))</th>" }.joined()
        var rows = ""
        for g in groups {
            let m = g.mean
            rows +=
                "<tr><td>\(escape(g.name))</td><td>\(g.runs.count)</td><td>\(m.tokensPerStep.map { "\($0 * m.steps)" } ?? "–")</td>"
                + "<td>\(pm(g.finalValLosses))</td>"
            for d in datasets {
                rows +=
                    "<td>\(pm(g.evaluations(d) { $0.loss }))</td><td>\(pm(g.evaluations(d) { $0.perplexity }, 2))</td>"
                    + "<td>\(pm(g.evaluations(d) { $0.bitsPerByte }))</td><td>\(pm(g.evaluations(d, weights: "ternary") { $0.loss }))</td>"
            }
            let tps = median(g.runs.flatMap { $0.tokensPerSecond.map(\.1) })
            rows +=
                "<td>\(tps.map { String(format: "%.0f", $0) } ?? "–")</td><td>\(m.bytesPerParameter.map { String(format: "%.2f", $0) } ?? "–")</td>"
                + differing.map { "<td>\(escape(m.settings[$0] ?? "–"))</td>" }.joined() + "</tr>\n"
        }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:right}td:first-child{text-align:left}</style>
            </head><body>
            \(dashboard(groups.map(\.mean), title: title, x: axis, valBands: groups.map(\.valBand)))
            <p>Curves: the mean over seeds; the band spans the lowest to the highest seed's validation loss. Results: mean ± standard deviation over seeds.</p>
            <table><tr>\(heads)</tr>
            \(rows)</table></body></html>

            """
    }
}
