import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainData

/// The ranks of a job agree on the run before it starts: each names what must be the same
/// everywhere — every key of its resolved config, its data shards and its tokenizer — as a
/// fingerprint, and a difference stops every rank with the differing items named, instead of
/// a deadlock at the first collective whose schedule depends on them (`checkpoint.every`,
/// `dist.check_every`) or a run that trains silently on different shapes or data.
public enum RunAgreement {
    /// One named fingerprint.
    public struct Item: Equatable, Sendable {
        public let name: String
        public let fingerprint: UInt64
    }

    /// Every key of `config` (as `section.key`), and, when given, the shards of each split
    /// (token counts, vocabulary, tokenizer hash) and the tokenizer.
    public static func items(config: RunConfig, splits: [(name: String, data: TokenDataset)] = []) -> [Item] {
        var items = configKeys(config).map { Item(name: $0.key, fingerprint: fnv1a($0.value)) }
        for (name, data) in splits {
            let shards = data.shards.map {
                "\($0.header.tokenCount)/\($0.header.vocabSize)/\(hex($0.header.tokenizerHash))"
            }
            items.append(Item(name: "the \(name) shards", fingerprint: fnv1a(shards.joined(separator: ","))))
        }
        if let first = splits.first?.data {
            items.append(Item(name: "the tokenizer", fingerprint: fnv1a(hex(first.tokenizerHash))))
        }
        return items
    }

    /// Compares `items` over all ranks (collective); throws on every rank, naming what
    /// differs, unless all agree.
    public static func check(_ items: [Item], comm: Communicator) throws {
        guard comm.worldSize > 1 else { return }
        let names = fnv1a(items.map(\.name).joined(separator: "\n"))
        let all = fnv1a(items.map { "\($0.name)=\($0.fingerprint)" }.joined(separator: "\n"))
        let layout = try comm.allGather(names), whole = try comm.allGather(all)
        if Set(whole).count == 1 { return }
        guard Set(layout).count == 1 else {
            throw QTrainError(
                .distributed, "the ranks run different builds of qtrain (their configs have different keys)",
                hint: "start every rank from the same build")
        }
        var differing: [String] = []
        for item in items {
            let values = try comm.allGather(item.fingerprint)
            let odd = values.indices.filter { values[$0] != values[0] }
            if !odd.isEmpty {
                differing.append(
                    "\(item.name) (rank\(odd.count == 1 ? "" : "s") \(odd.map(String.init).joined(separator: ", ")) differ\(odd.count == 1 ? "s" : "") from rank 0)"
                )
            }
        }
        throw QTrainError(
            .distributed, "the ranks disagree on the run: " + differing.joined(separator: "; "),
            hint: "start every rank with the same config file, --set options and data")
    }

    /// `section.key` → the value's JSON text, for every key of the resolved config.
    static func configKeys(_ config: RunConfig) -> [(key: String, value: String)] {
        guard let data = try? JSONEncoder().encode(config),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [("config", config.yaml())] }
        var out: [(String, String)] = []
        for section in root.keys.sorted() {
            guard let keys = root[section] as? [String: Any] else {
                out.append((section, text(root[section]!)))
                continue
            }
            for key in keys.keys.sorted() { out.append(("\(section).\(key)", text(keys[key]!))) }
        }
        return out
    }

    private static func text(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject([value]),
            let d = try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys])
        else { return "\(value)" }
        return String(decoding: d, as: UTF8.self)
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// FNV-1a over UTF-8: the same on every rank (Swift's Hasher is seeded per process).
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
}
