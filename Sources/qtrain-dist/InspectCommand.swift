import ArgumentParser
import Foundation
import QTrainInference

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Summarise a checkpoint, run directory, data directory, shard, safetensors or tokenizer file.")

    @Argument(help: "What to inspect.")
    var path: String

    func run() throws {
        try reportingErrors { print(try Inspector.describe(URL(fileURLWithPath: path))) }
    }
}
