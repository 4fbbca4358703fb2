import ArgumentParser
import Foundation
import QTrainCore
import QTrainPNG
import QTrainReport

extension Report.XAxis: ExpressibleByArgument {}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "Draw the curves of one or more runs: loss, lr, grad norm, code changes, tokens/s (HTML, SVG or PNG).",
        discussion:
            "The format follows the extension of --out: .html (every panel and a table of results and differing config keys), .svg or .png (every panel) or, with --panels loss, the loss curves alone."
    )

    @Argument(help: "Run directories (each with a metrics.jsonl).")
    var runs: [String]

    @Option(help: "Output file: .html, .svg or .png.")
    var out: String = "report.html"

    @Option(help: "Chart title.")
    var title: String = "qtrain runs"

    @Option(help: "x axis: steps or tokens.")
    var x: Report.XAxis = .steps

    @Option(help: "all (every panel) or loss (the loss curves alone, as one chart).")
    var panels: Panels = .all

    enum Panels: String, CaseIterable, ExpressibleByArgument { case all, loss }

    @Flag(
        help: """
            Treat runs whose directory names differ only in a -seedN part as one setting: mean curves with \
            the seeds' range of validation loss as a band, results as mean ± sd.
            """)
    var groupSeeds = false

    func run() throws {
        try reportingErrors {
            guard !runs.isEmpty else { throw QTrainError(.config, "report needs at least one run directory") }
            let ext = URL(fileURLWithPath: out).pathExtension.lowercased()
            guard ["html", "svg", "png"].contains(ext) else {
                throw QTrainError(
                    .config, "report cannot write '.\(ext)' files (\(out))",
                    hint: ext == "pdf"
                        ? "write .svg, .png or .html; an SVG converts to PDF with e.g. `rsvg-convert -f pdf -o report.pdf report.svg`"
                        : "give --out a name ending in .html, .svg or .png")
            }
            let series = try runs.map { try Report.Series(runDirectory: URL(fileURLWithPath: $0)) }
            let groups = Report.groups(series)
            let text: String
            switch (ext, panels) {
            case ("html", _) where groupSeeds: text = Report.groupedHTML(groups, title: title, x: x)
            case (_, .all) where groupSeeds:
                text = Report.dashboard(groups.map(\.mean), title: title, x: x, valBands: groups.map(\.valBand))
            case (_, .loss) where groupSeeds && ext != "html": text = Report.svg(groups.map(\.mean), title: title)
            case (_, .loss) where ext != "html": text = Report.svg(series, title: title)
            case (_, .all) where ext != "html": text = Report.dashboard(series, title: title, x: x)
            default: text = Report.html(series, title: title, x: x)
            }
            if ext == "png" {
                try PNGRendering.write(svg: text, to: URL(fileURLWithPath: out))
            } else {
                do {
                    try text.write(toFile: out, atomically: true, encoding: .utf8)
                } catch {
                    throw QTrainError(.io, "cannot write \(out): \(error.localizedDescription)")
                }
            }
            print("wrote \(out)")
            for s in series {
                if let v = s.valLoss.last { print(String(format: "  %@: val loss %.4f at step %d", s.name, v.1, v.0)) }
            }
        }
    }
}
