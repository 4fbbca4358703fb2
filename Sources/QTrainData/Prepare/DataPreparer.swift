import Foundation
import QTrainCore

/// How `prepare` reads, splits and writes.
public struct PrepareOptions: Sendable {
    /// Every `valEvery`-th document (offset valEvery/2), in reading order, is validation.
    public var valEvery = 20
    /// Tokens per shard file.
    public var shardTokens = DataPreparer.defaultShardTokens
    /// Encoding threads.
    public var threads = Threads.availableCores
    /// The JSON Lines field (Parquet column) that holds the text.
    public var textField = "text"
    /// A JSON Lines record or Parquet row longer than this is skipped (and reported); a text
    /// file longer than this is encoded in pieces of at most this size.
    public var maximumDocumentBytes = 64 << 20
    /// `bpe:N` learns from at most this many bytes of training text (all of it when smaller).
    public var bpeSampleBytes = 256 << 20
    /// Seconds between progress lines.
    public var progressEvery: Double = 10

    public init() {}
}

/// Throughput and memory of one `prepare`.
public struct PrepareStats: Codable, Sendable {
    public var seconds: Double
    public var textBytes: Int
    public var tokens: Int
    public var documents: Int
    public var threads: Int
    public var peakResidentBytes: Int

    public var megabytesPerSecond: Double { Double(textBytes) / 1e6 / max(seconds, 1e-9) }
    public var tokensPerSecond: Double { Double(tokens) / max(seconds, 1e-9) }

    enum CodingKeys: String, CodingKey {
        case seconds, textBytes = "text_bytes", tokens, documents, threads, peakResidentBytes = "peak_rss_bytes"
    }
}

/// A source of documents in reading order.
protocol DocumentSource: AnyObject {
    func next() throws -> SourceDocument?
    /// Progress: bytes consumed of `totalBytes` (0 when unknown).
    var consumedBytes: Int { get }
    var totalBytes: Int { get }
    /// The name of file `i`, for reports.
    func fileName(_ i: Int) -> String
}

extension DocumentReader: DocumentSource {
    func fileName(_ i: Int) -> String { inputs[i].name }
}

/// Documents already in memory (packaged corpora in tests, small corpora).
final class MemoryDocuments: DocumentSource {
    let documents: [Document]
    private var at = 0
    private(set) var consumedBytes = 0
    let totalBytes: Int

    init(_ documents: [Document]) {
        self.documents = documents
        totalBytes = documents.reduce(0) { $0 + $1.text.utf8.count }
    }

    func next() throws -> SourceDocument? {
        guard at < documents.count else { return nil }
        defer { at += 1 }
        let bytes = Array(documents[at].text.utf8)
        consumedBytes += bytes.count
        return SourceDocument(bytes: bytes, file: at, line: 1)
    }

    func fileName(_ i: Int) -> String { documents[i].name }
}

/// Corpus → tokenizer → token shards (`train_NNN.bin`, `val_NNN.bin`, `tokenizer.json`,
/// `meta.json`), streamed: documents flow from the files through encoding threads into shards
/// that are written as they fill, in memory bounded by a fixed number of batches in flight,
/// whatever the corpus size. The validation split takes whole documents: every `valEvery`-th
/// in reading order (offset valEvery/2), so it spreads over the corpus and is deterministic.
/// The shards are byte-identical for any number of threads.
///
/// A marker file (`.prepare-incomplete`) exists from the first byte written to the last; a
/// data set with it is refused by `train` and `eval`, so an interrupted `prepare` is never
/// mistaken for a finished one; running `prepare` again starts over.
public enum DataPreparer {
    /// Tokens per shard file unless `--shard-tokens` says otherwise.
    public static let defaultShardTokens = 50_000_000
    /// Present while `prepare` writes a directory.
    public static let incompleteMarker = ".prepare-incomplete"

    /// Whether document `index` (in reading order) goes to the validation split.
    public static func isValidation(_ index: Int, valEvery: Int) -> Bool { index % valEvery == valEvery / 2 }

    /// The training and validation documents, each in order (``isValidation(_:valEvery:)``).
    public static func split(
        _ documents: [Document], valEvery: Int
    ) throws -> (train: [Document], validation: [Document]) {
        guard documents.count >= 2 else { throw tooFewDocuments(documents.count) }
        guard valEvery >= 2 else { throw QTrainError.config("--val-every must be at least 2") }
        var train: [Document] = [], validation: [Document] = []
        for (i, doc) in documents.enumerated() {
            if isValidation(i, valEvery: valEvery) { validation.append(doc) } else { train.append(doc) }
        }
        guard !validation.isEmpty else { throw noValidation(documents.count, valEvery: valEvery) }
        return (train, validation)
    }

    static func tooFewDocuments(_ n: Int) -> QTrainError {
        QTrainError.data("a corpus needs at least two documents to split into train and validation (got \(n))")
    }

    // An empty split would only surface later, as train asking for the prepare that just ran.
    static func noValidation(_ n: Int, valEvery: Int) -> QTrainError {
        QTrainError.data(
            "\(n) documents with --val-every \(valEvery) leave no document for validation (document \(valEvery / 2) of every \(valEvery) goes there)",
            hint: "use --val-every \(max(2, min(valEvery, 2 * (n - 1)))) or fewer, or a larger corpus")
    }

    /// Prepares documents held in memory with a ready tokenizer.
    public static func prepare(
        documents: [Document], source: String, tokenizer: any Tokenizer, valEvery: Int, to out: URL,
        log: @escaping (String) -> Void
    ) throws -> PreparedData {
        var options = PrepareOptions()
        options.valEvery = valEvery
        return try run(
            MemoryDocuments(documents), inputs: documents.map(\.name), source: source, tokenizer: tokenizer,
            options: options, to: out, log: log
        ).data
    }

    /// Prepares the corpus in `inputs`, streamed. A BPE to learn (`bpe:N`) learns first from a
    /// bounded sample of the training documents (``TrainingSample``).
    public static func prepare(
        inputs: [InputFile], source: String, tokenizer choice: TokenizerChoice, cache: URL, options: PrepareOptions,
        to out: URL, log: @escaping (String) -> Void
    ) throws -> (data: PreparedData, stats: PrepareStats) {
        guard options.valEvery >= 2 else { throw QTrainError.config("--val-every must be at least 2") }
        guard options.shardTokens >= 1 else { throw QTrainError.config("--shard-tokens must be at least 1") }
        let parquet = ParquetRunner(cache: cache, log: log)
        func reader(_ problems: ProblemLog) -> DocumentReader {
            DocumentReader(
                inputs: inputs, textField: options.textField, maximumDocumentBytes: options.maximumDocumentBytes,
                problems: problems, parquet: parquet)
        }
        var training: [Document] = []
        if case .bpe = choice {
            training = try TrainingSample.documents(
                of: reader(ProblemLog(url: nil, shown: 0, log: { _ in })), valEvery: options.valEvery,
                budget: options.bpeSampleBytes, log: log)
        }
        let tokenizer = try choice.make(training: training, cache: cache, log: log)
        training = []
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let problems = try ProblemLog(url: out.appendingPathComponent("skipped.txt"), log: log)
        return try run(
            reader(problems), inputs: inputs.map(\.name), source: source, tokenizer: tokenizer, options: options,
            to: out, problems: problems, log: log)
    }

    static func run(
        _ source: any DocumentSource, inputs: [String], source name: String, tokenizer: any Tokenizer,
        options: PrepareOptions, to out: URL, problems given: ProblemLog? = nil, log: @escaping (String) -> Void
    ) throws -> (data: PreparedData, stats: PrepareStats) {
        let start = Date()
        let fm = FileManager.default
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        let marker = out.appendingPathComponent(incompleteMarker)
        let started = ISO8601DateFormatter().string(from: start)
        try Data(
            #"{"pid": \#(getpid()), "host": "\#(ProcessInfo.processInfo.hostName)", "started": "\#(started)"}"#.utf8
        )
        .write(to: marker, options: .atomic)
        // What an earlier prepare wrote goes first, so stale shards are never mixed in.
        for file in (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
        where isShardFile(file) || file == "meta.json" || file == "tokenizer.json" {
            try fm.removeItem(at: out.appendingPathComponent(file))
        }
        let problems = try given ?? ProblemLog(url: out.appendingPathComponent("skipped.txt"), log: log)
        let hash = tokenizer.identityHash
        let train = ShardStream(
            directory: out, split: "train", vocabSize: tokenizer.vocabSize, tokenizerHash: hash,
            shardTokens: options.shardTokens)
        let validation = ShardStream(
            directory: out, split: "val", vocabSize: tokenizer.vocabSize, tokenizerHash: hash,
            shardTokens: options.shardTokens)
        let pipeline = EncodingPipeline(tokenizer: tokenizer, threads: options.threads, inFlight: 4 * options.threads)
        var counts = [Int](repeating: 0, count: tokenizer.vocabSize)
        var trainDocuments = 0, validationDocuments = 0, textBytes = 0
        var sample: [String] = []
        var lastProgress = Date()

        func write(_ encoded: EncodingPipeline.Encoded) throws {
            for t in encoded.train { counts[Int(t)] += 1 }
            try train.append(encoded.train)
            try validation.append(encoded.validation)
            trainDocuments += encoded.trainDocuments
            validationDocuments += encoded.validationDocuments
            textBytes += encoded.bytes
            if Date().timeIntervalSince(lastProgress) >= options.progressEvery {
                lastProgress = Date()
                log(progressLine(source, textBytes: textBytes, tokens: train.total + validation.total, since: start))
            }
        }

        var documentIndex = 0
        do {
            defer { pipeline.close() }
            var batch = EncodingPipeline.Batch()
            func send() throws {
                while !pipeline.hasRoom, let ready = pipeline.next(wait: true) { try write(ready) }
                pipeline.submit(batch)
                batch = EncodingPipeline.Batch()
                while let ready = pipeline.next(wait: false) { try write(ready) }
            }
            while let document = try source.next() {
                let isValidation = isValidation(documentIndex, valEvery: options.valEvery)
                if isValidation && sample.count < 8 && !document.continues {
                    sample.append(source.fileName(document.file) + (document.line > 1 ? ":\(document.line)" : ""))
                }
                batch.bytes += document.bytes.count
                batch.documents.append(document)
                batch.validation.append(isValidation)
                if !document.continues { documentIndex += 1 }
                if batch.bytes >= 1 << 20 || batch.documents.count >= 1024 { try send() }
            }
            if !batch.documents.isEmpty { try send() }
            while let ready = pipeline.next(wait: true) { try write(ready) }
            let trainShards = try train.finish(), validationShards = try validation.finish()
            guard trainDocuments + validationDocuments >= 2 else {
                throw tooFewDocuments(trainDocuments + validationDocuments)
            }
            guard validationDocuments > 0, !validationShards.isEmpty else {
                throw noValidation(trainDocuments + validationDocuments, valEvery: options.valEvery)
            }
            guard !trainShards.isEmpty else { throw tooFewDocuments(validationDocuments) }
        } catch {
            // Nothing half-made stays: no shard of this run, no marker; the directory simply holds no data set.
            try? problems.close()
            for file in (try? fm.contentsOfDirectory(atPath: out.path)) ?? [] where isShardFile(file) {
                try? fm.removeItem(at: out.appendingPathComponent(file))
            }
            try? fm.removeItem(at: marker)
            throw error
        }
        try problems.close()
        try tokenizer.save(to: out)
        let total = Double(train.total)
        var entropy = 0.0
        for c in counts where c > 0 {
            let p = Double(c) / total
            entropy -= p * Foundation.log(p)
        }
        let meta = PreparedData(
            source: name, tokenizer: tokenizer.identity, vocabSize: tokenizer.vocabSize,
            trainDocumentCount: trainDocuments, valDocumentCount: validationDocuments, valDocumentSample: sample,
            trainTokens: train.total, valTokens: validation.total, unigramEntropy: entropy, inputs: inputs,
            valEvery: options.valEvery, shardTokens: options.shardTokens,
            skipped: Dictionary(uniqueKeysWithValues: problems.counts.map { ($0.key.rawValue, $0.value) }))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(meta).write(to: out.appendingPathComponent("meta.json"), options: .atomic)
        try fm.removeItem(at: marker)
        if let skipped = problems.summary {
            log(
                "skipped \(problems.total) records (\(skipped)); each is listed in \(out.appendingPathComponent("skipped.txt").path)"
            )
        } else {
            try? fm.removeItem(at: out.appendingPathComponent("skipped.txt"))
        }
        log(
            "wrote \(train.total) train tokens (\(trainDocuments) documents) and \(validation.total) validation tokens (\(validationDocuments) documents) to \(out.path)"
        )
        log(
            String(
                format: "unigram entropy of the training tokens: %.4f nats (%.4f bits)", entropy,
                entropy / Foundation.log(2.0)))
        let stats = PrepareStats(
            seconds: Date().timeIntervalSince(start), textBytes: textBytes, tokens: train.total + validation.total,
            documents: trainDocuments + validationDocuments, threads: pipeline.threads,
            peakResidentBytes: ProcessMemory.peakResidentBytes())
        log(
            String(
                format: "prepared %@ of text in %.1f s: %.2f MB/s, %@ tokens/s on %d thread%@, peak RSS %@",
                formatBytes(stats.textBytes), stats.seconds, stats.megabytesPerSecond,
                formatCount(Int(stats.tokensPerSecond)), stats.threads, stats.threads == 1 ? "" : "s",
                formatBytes(stats.peakResidentBytes)))
        return (meta, stats)
    }

    /// A shard of either split, finished or still being written (``ShardStream``).
    static func isShardFile(_ name: String) -> Bool {
        ((name.hasPrefix("train_") || name.hasPrefix("val_")) && name.hasSuffix(".bin"))
            || name.hasSuffix(".bin.partial")
    }

    static func progressLine(_ source: any DocumentSource, textBytes: Int, tokens: Int, since start: Date) -> String {
        let seconds = Date().timeIntervalSince(start)
        var line = "prepare: \(formatBytes(textBytes)) of text, \(formatCount(tokens)) tokens"
        line += String(format: ", %.2f MB/s", Double(textBytes) / 1e6 / max(seconds, 1e-9))
        if source.totalBytes > 0 {
            let done = Double(source.consumedBytes) / Double(source.totalBytes)
            line += String(format: "; %.0f%% of the input read", 100 * done)
            if done > 0.01 { line += String(format: ", ETA %.0f s", seconds * (1 - done) / done) }
        }
        return line
    }
}
