import Foundation

/// Loss curves of one or more runs as a self-contained SVG (and an HTML page around it),
/// read from their `metrics.jsonl` files (`qtrain-dist report`).
public enum Report {
    /// One run's curves.
    public struct Series {
        public var name: String
        /// (step, training loss) at every logged step.
        public var loss: [(Int, Double)]
        /// (step, validation loss) at every evaluation.
        public var valLoss: [(Int, Double)]

        /// Reads `directory/metrics.jsonl` (the name defaults to the directory's name plus the
        /// weight policy in `config.yaml`).
        public init(runDirectory directory: URL) throws {
            let file = directory.appendingPathComponent("metrics.jsonl")
            guard let text = try? String(contentsOf: file, encoding: .utf8) else {
                throw QTrainError.data("no metrics at \(file.path)", hint: "give a run directory written by `qtrain-dist train`")
            }
            var loss: [(Int, Double)] = [], val: [(Int, Double)] = []
            for line in text.split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = obj["step"] as? Int else { continue }
                if let l = obj["loss"] as? Double, l.isFinite { loss.append((step, l)) }
                if let v = obj["val_loss"] as? Double, v.isFinite { val.append((step, v)) }
            }
            var label = directory.lastPathComponent
            if let cfg = try? RunConfig.load(path: directory.appendingPathComponent("config.yaml").path) {
                label += " (\(cfg.policyLabel))"
            }
            self.init(name: label, loss: loss, valLoss: val)
        }

        public init(name: String, loss: [(Int, Double)], valLoss: [(Int, Double)]) {
            self.name = name
            self.loss = loss
            self.valLoss = valLoss
        }
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

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
        for i in 0...5 {
            let v = yMin + (yMax - yMin) * Double(i) / 5
            out += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, left + w, y(v), y(v))
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", left - 6, y(v) + 4, v)
            let s = Int(maxStep * Double(i) / 5)
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x(s), top + h + 18, s)
        }
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n", left + w / 2, top + h + 34)
        out += String(format: "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" text-anchor=\"middle\">loss (nats/token)</text>\n",
                      top + h / 2, top + h / 2)
        for (i, run) in runs.enumerated() {
            let color = palette[i % palette.count]
            func path(_ pts: [(Int, Double)]) -> String {
                pts.enumerated().map { j, p in String(format: "%@%.1f,%.1f", j == 0 ? "M" : "L", x(p.0), y(p.1)) }.joined(separator: " ")
            }
            if !run.loss.isEmpty {
                out += "<path d=\"\(path(run.loss))\" fill=\"none\" stroke=\"\(color)\" stroke-opacity=\"0.3\"/>\n"
            }
            if !run.valLoss.isEmpty {
                out += "<path d=\"\(path(run.valLoss))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                for p in run.valLoss {
                    out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\"/>", x(p.0), y(p.1), color)
                }
            }
            let ly = top + 10 + Double(i) * 34
            let last = run.valLoss.last.map { String(format: "val %.4f", $0.1) } ?? ""
            out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%@\"/>", left + w + 14, ly, color)
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", left + w + 32, ly + 5, escape(run.name))
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">%@</text>\n", left + w + 32, ly + 19, last)
        }
        out += "<text x=\"\(Int(left))\" y=\"\(height - 6)\" fill=\"#777\">solid: validation loss; faint: training loss</text>\n</svg>\n"
        return out
    }

    /// An HTML page with the chart and a table of final values.
    public static func html(_ runs: [Series], title: String) -> String {
        var rows = ""
        for r in runs {
            let first = r.valLoss.first.map { String(format: "%.4f", $0.1) } ?? "–"
            let last = r.valLoss.last.map { String(format: "%.4f", $0.1) } ?? "–"
            let steps = max(r.loss.last?.0 ?? 0, r.valLoss.last?.0 ?? 0)
            rows += "<tr><td>\(escape(r.name))</td><td>\(steps)</td><td>\(first)</td><td>\(last)</td></tr>\n"
        }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 12px;text-align:right}td:first-child{text-align:left}</style>
            </head><body>
            \(svg(runs, title: title))
            <table><tr><th>run</th><th>steps</th><th>first val loss</th><th>last val loss</th></tr>
            \(rows)</table></body></html>

            """
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
