import ArgumentParser
import Foundation
import QTrain

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Time training steps: tokens/s, GFLOP/s, MFU against the measured SGEMM peak, phases, memory.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Timed steps after warm-up.")
    var steps: Int = 3

    @Option(help: "Untimed warm-up steps.")
    var warmup: Int = 1

    @Flag(help: "Print one JSON object as the last line.")
    var json = false

    func run() throws {
        try reportingErrors {
            let config = try options.load()
            let result = try Benchmark.run(config: config, steps: steps, warmup: warmup, log: { print($0) })
            print(result.table)
            if json { print(result.jsonLine) }
        }
    }
}
