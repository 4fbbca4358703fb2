import ArgumentParser
import Foundation
import QTrain

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model (the default command).")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        try reportingErrors {
            let config = try options.load()
            let trainer = try Trainer(config: config)
            let summary = try trainer.run()
            if let v = summary.finalValLoss, let first = summary.firstValLoss {
                print(String(format: "final val loss %.4f (from %.4f) after %d steps", v, first, summary.steps))
            }
        }
    }
}
