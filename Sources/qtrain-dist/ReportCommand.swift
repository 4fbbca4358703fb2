import ArgumentParser
import Foundation
import QTrain

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Draw the loss curves of one or more runs (SVG or HTML).")

    @Argument(help: "Run directories (each with a metrics.jsonl).")
    var runs: [String]

    @Option(help: "Output file: .svg or .html.")
    var out: String = "report.html"

    @Option(help: "Chart title.")
    var title: String = "qtrain loss curves"

    func run() throws {
        try reportingErrors {
            guard !runs.isEmpty else { throw QTrainError(.config, "report needs at least one run directory") }
            let series = try runs.map { try Report.Series(runDirectory: URL(fileURLWithPath: $0)) }
            let text = out.hasSuffix(".svg") ? Report.svg(series, title: title) : Report.html(series, title: title)
            do {
                try text.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                throw QTrainError(.io, "cannot write \(out): \(error.localizedDescription)")
            }
            print("wrote \(out)")
            for s in series {
                if let v = s.valLoss.last { print(String(format: "  %@: val loss %.4f at step %d", s.name, v.1, v.0)) }
            }
        }
    }
}
