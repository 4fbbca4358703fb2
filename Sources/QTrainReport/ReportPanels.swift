import Foundation

/// The multi-panel report (`qtrain-dist report`): validation and training loss, learning rate,
/// gradient norm, share of codes changed (all and per role) and throughput of every run, on a
/// shared x axis of steps or tokens, with round tick values.
extension Report {
    /// What the x axis counts.
    public enum XAxis: String, CaseIterable, Sendable { case steps, tokens }

    /// Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let power = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        var out: [Double] = []
        var v = ceil(lo / step) * step
        while v <= hi + step * 1e-9 {
            out.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return out
    }

    /// Ticks of a log-scale panel (values are log10): every power of ten in [lo, hi], or the two
    /// ends when the range holds none.
    static func decadeTicks(_ lo: Double, _ hi: Double) -> [Double] {
        let first = ceil(lo), last = floor(hi)
        return first <= last ? stride(from: first, through: last, by: 1).map { $0 } : [lo, hi]
    }

    /// A tick label with as many decimals as the step needs (5.5, 6, 6.5; 0.001; 2e+04).
    static func label(_ v: Double, step: Double) -> String {
        if v != 0 && (abs(v) >= 1e5 || abs(v) < 1e-3) { return String(format: "%.3g", v) }
        let decimals = max(0, Int(-floor(log10(step) + 1e-9)))
        return String(format: "%.\(decimals)f", v)
    }

    struct Line {
        var points: [(Double, Double)]
        var color: String
        var width = 1.5
        var opacity = 1.0
        var dash: String?
        /// (x, low, high): a shaded range drawn under the line.
        var band: [(Double, Double, Double)] = []
    }

    /// One panel at (x0, y0) of size w × h: axes, round ticks, lines.
    /// With `logY` values are drawn on a log scale (values ≤ 0 are left out) with ticks at powers
    /// of ten: shares of changed codes span 1e-4 (ternary) to 0.5 (8-bit) in one sweep. With
    /// `fromX` only points at x ≥ fromX are drawn: a zoom on the end of training.
    static func panel(
        _ title: String, _ lines: [Line], x0: Double, y0: Double, w: Double, h: Double, xLabel: String,
        clipTop: Bool = false, logY: Bool = false, fromX: Double = 0
    ) -> String {
        var lines = lines
        if fromX > 0 {
            for i in lines.indices {
                lines[i].points = lines[i].points.filter { $0.0 >= fromX }
                lines[i].band = lines[i].band.filter { $0.0 >= fromX }
            }
        }
        if logY {
            for i in lines.indices {
                lines[i].points = lines[i].points.filter { $0.1 > 0 }.map { ($0.0, log10($0.1)) }
                lines[i].band = lines[i].band.filter { $0.1 > 0 }.map { ($0.0, log10($0.1), log10($0.2)) }
            }
        }
        let pts = (lines.flatMap(\.points) + lines.flatMap { $0.band.flatMap { [($0.0, $0.1), ($0.0, $0.2)] } }).filter
        { $0.1.isFinite }
        var out = String(
            format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\">%@</text>\n", x0, y0 - 8,
            escape(title))
        guard !pts.isEmpty else {
            return out
                + String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#999\">no data</text>\n", x0 + 10, y0 + h / 2)
        }
        let xMax = max(pts.map(\.0).max()!, fromX + 1), xMin = fromX
        var ys = pts.map(\.1).sorted()
        // Loss starts far above the rest: clip at the 98th percentile so the end is readable.
        if clipTop { ys = Array(ys.prefix(max(1, Int(Double(ys.count) * 0.98)))) }
        var yLo = ys.first!, yHi = ys.last!
        if yHi - yLo < 1e-12 * max(abs(yHi), 1) {
            yLo -= max(abs(yLo) * 0.05, 1e-6)
            yHi += max(abs(yHi) * 0.05, 1e-6)
        }
        let pad = (yHi - yLo) * 0.05
        yLo -= pad
        yHi += pad
        if !logY && ys.first! >= 0 && yLo < 0 { yLo = 0 }
        func px(_ v: Double) -> Double { x0 + w * (v - xMin) / (xMax - xMin) }
        func py(_ v: Double) -> Double { y0 + h * (1 - (min(max(v, yLo), yHi) - yLo) / (yHi - yLo)) }
        out += String(
            format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#bbb\"/>\n", x0,
            y0, w, h)
        let yt = logY ? decadeTicks(yLo, yHi) : ticks(yLo, yHi)
        let ystep = yt.count > 1 ? yt[1] - yt[0] : max(abs(yHi), 1)
        for v in yt {
            let text = logY ? label(pow(10, v), step: pow(10, v)) : label(v, step: ystep)
            out += String(
                format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", x0, x0 + w, py(v),
                py(v))
            out += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%@</text>\n", x0 - 4,
                py(v) + 4, text)
        }
        let xt = ticks(xMin, xMax, count: fromX > 0 ? 3 : 4), xstep = xt.count > 1 ? xt[1] - xt[0] : xMax
        for v in xt {
            out += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%@</text>\n", px(v),
                y0 + h + 14, label(v, step: xstep))
        }
        out += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">%@</text>\n",
            x0 + w / 2, y0 + h + 28, xLabel)
        for line in lines where line.band.count > 1 {
            let edge = line.band.map { ($0.0, $0.2) } + line.band.reversed().map { ($0.0, $0.1) }
            let d = edge.enumerated().map { j, p in String(format: "%@%.1f,%.1f", j == 0 ? "M" : "L", px(p.0), py(p.1))
            }.joined(separator: " ")
            out += "<path d=\"\(d) Z\" fill=\"\(line.color)\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
        }
        for line in lines where !line.points.isEmpty {
            let d = line.points.filter { $0.1.isFinite }.enumerated()
                .map { j, p in String(format: "%@%.1f,%.1f", j == 0 ? "M" : "L", px(p.0), py(p.1)) }.joined(
                    separator: " ")
            let dash = line.dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
            out +=
                "<path d=\"\(d)\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"\(line.width)\" stroke-opacity=\"\(line.opacity)\"\(dash)/>\n"
        }
        return out
    }

    static let roleDashes = ["embedding": "1,3", "attention": "6,3", "mlp": "none", "head": "10,3,2,3"]

    /// Every panel of the runs as one SVG; `valBands[i]` (step, low, high), when given, shades
    /// a range around run i's validation loss.
    public static func dashboard(
        _ runs: [Series], title: String, x axis: XAxis = .steps,
        valBands: [[(Int, Double, Double)]] = []
    ) -> String {
        let pw = 330.0, ph = 190.0, gapX = 90.0, gapY = 80.0, left = 70.0, top = 60.0
        let width = left + 4 * pw + 3 * gapX + 20, legendTop = top + 2 * (ph + gapY)
        let height = legendTop + Double(runs.count) * 18 + 50
        func xs(_ r: Series, _ pts: [(Int, Double)]) -> [(Double, Double)] {
            pts.map { (axis == .tokens ? Double($0.0) * Double(r.tokensPerStep ?? 0) : Double($0.0), $0.1) }
        }
        let xLabel = axis == .tokens ? "tokens" : "step"
        func lines(_ pick: (Series) -> [(Int, Double)], width: Double = 1.5, opacity: Double = 1) -> [Line] {
            runs.enumerated().map { i, r in
                Line(points: xs(r, pick(r)), color: palette[i % palette.count], width: width, opacity: opacity)
            }
        }
        var out = String(
            format:
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height)
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(Int(left))\" y=\"26\" font-size=\"16\">\(escape(title))</text>\n"
        func at(_ c: Int, _ r: Int) -> (Double, Double) {
            (left + Double(c) * (pw + gapX), top + Double(r) * (ph + gapY))
        }
        var p = at(0, 0)
        var validation = lines({ $0.valLoss }, width: 2)
        for (i, band) in valBands.enumerated() where i < validation.count {
            validation[i].band = band.map {
                (axis == .tokens ? Double($0.0) * Double(runs[i].tokensPerStep ?? 0) : Double($0.0), $0.1, $0.2)
            }
        }
        out += panel(
            "validation loss (solid) and training loss (faint)",
            lines({ $0.loss }, width: 1, opacity: 0.3) + validation,
            x0: p.0, y0: p.1, w: pw, h: ph, xLabel: xLabel, clipTop: true)
        // The end of training, where the settings part: the full panel's range is set by the start.
        let lastX = validation.compactMap { $0.points.last?.0 }.max() ?? 0
        p = at(1, 0)
        out += panel(
            "validation loss, second half (bands: seed range)", validation,
            x0: p.0, y0: p.1, w: pw, h: ph, xLabel: xLabel, fromX: lastX / 2)
        p = at(2, 0)
        out += panel("learning rate", lines { $0.lr }, x0: p.0, y0: p.1, w: pw, h: ph, xLabel: xLabel)
        p = at(3, 0)
        out += panel(
            "gradient norm (before clipping)", lines { $0.gradNorm }, x0: p.0, y0: p.1, w: pw, h: ph, xLabel: xLabel,
            clipTop: true)
        p = at(0, 1)
        out += panel(
            "share of codes changed per step (log)", lines { $0.codeChange }, x0: p.0, y0: p.1, w: pw, h: ph,
            xLabel: xLabel, logY: true)
        p = at(1, 1)
        var roles: [Line] = []
        for (i, r) in runs.enumerated() {
            for (role, pts) in r.codeChangeByRole.sorted(by: { $0.key < $1.key }) {
                let dash = roleDashes[role] ?? "2,2"
                roles.append(
                    Line(
                        points: xs(r, pts), color: palette[i % palette.count], width: 1.2,
                        dash: dash == "none" ? nil : dash))
            }
        }
        out += panel(
            "codes changed by role (line style, log)", roles, x0: p.0, y0: p.1, w: pw, h: ph, xLabel: xLabel, logY: true
        )
        p = at(2, 1)
        out += panel(
            "throughput (tokens/s)", lines { $0.tokensPerSecond }, x0: p.0, y0: p.1, w: pw, h: ph, xLabel: xLabel)
        var ly = legendTop
        for (i, r) in runs.enumerated() {
            let best = r.valLoss.map(\.1).min().map { String(format: "best val %.4f", $0) } ?? ""
            out += String(
                format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%@\"/>", left, ly - 4,
                palette[i % palette.count])
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@  %@</text>\n", left + 22, ly, escape(r.name), best)
            ly += 18
        }
        if runs.contains(where: { !$0.codeChangeByRole.isEmpty }) {
            out += String(
                format:
                    "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">roles: mlp solid, attention dashed, embedding dotted, head dash-dot</text>\n",
                left, ly + 6)
        }
        return out + "</svg>\n"
    }
}
