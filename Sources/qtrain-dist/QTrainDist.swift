import ArgumentParser
import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainMPI
import QTrainWeights

@main
struct QTrainDist: ParsableCommand {
    static func main() {
        BLASCore.ensureFastKernels(arguments: CommandLine.arguments)
        if let problem = CommandSuggestion.problem(
            with: Array(CommandLine.arguments.dropFirst()), commands: commandNames)
        {
            FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
            exit(withError: ExitCode(2))
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "qtrain-dist",
        abstract:
            "Train LLaMA-structured language models whose weights stay low-precision (Direct Quantized Training).",
        version: "qtrain-dist \(QTrainVersion.string)",
        subcommands: subcommandTypes,
        defaultSubcommand: TrainCommand.self)

    static let subcommandTypes: [ParsableCommand.Type] = [
        TrainCommand.self, PrepareCommand.self, ImportCommand.self, EvalCommand.self, GenerateCommand.self,
        ExportCommand.self, InspectCommand.self, BenchCommand.self, ReportCommand.self
    ]

    static var commandNames: [String] { subcommandTypes.compactMap { $0.configuration.commandName } + ["help"] }
}

extension WeightChoice: ExpressibleByArgument {}
extension ComputePath: ExpressibleByArgument {}

/// On or off, for options that switch something.
enum Switch: String, ExpressibleByArgument, CaseIterable {
    case on, off
}

/// `--config` and `--set`, shared by every command that reads a run configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file (configs/tiny.yaml, configs/small.yaml, configs/130m.yaml, …).")
    var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Override a config key, e.g. --set optim.lr=3e-4 (repeatable).", valueName: "section.key=value"))
    var overrides: [String] = []

    func load() throws -> RunConfig { try RunConfig.load(path: config, overrides: overrides) }
}

/// Runs `body`, turning a ``QTrainError`` into one `error:` line and its exit code.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as QTrainError {
        FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}
