import Foundation
import QTrainCore

/// The text a BPE learns from (`prepare --tokenizer bpe:N`): every training document when they
/// fit in the budget, else a uniform sample of them that does — the documents whose hashed
/// index is smallest, kept as the corpus streams by, so the sample is deterministic and the
/// memory bounded by the budget whatever the corpus size.
enum TrainingSample {
    static func documents(
        of source: any DocumentSource, valEvery: Int, budget: Int, log: (String) -> Void
    ) throws -> [Document] {
        var kept: [(key: UInt64, index: Int, text: String)] = []
        var bytes = 0, index = 0, seen = 0, trimmed = false
        var scratch: [UInt8] = []
        while let document = try source.next() {
            defer { if !document.continues { index += 1 } }
            guard !DataPreparer.isValidation(index, valEvery: valEvery) else { continue }
            seen += document.bytes.count
            normalizeLineEnds(document.bytes, into: &scratch)
            guard !scratch.isEmpty else { continue }
            kept.append((mix(UInt64(index)), index, String(decoding: scratch, as: UTF8.self)))
            bytes += scratch.count + entryOverhead
            // Past the budget by a quarter, keep the smallest keys that fit (amortised trimming).
            if bytes > budget + budget / 4 {
                bytes = trim(&kept, to: budget)
                trimmed = true
            }
        }
        if trimmed {
            _ = trim(&kept, to: budget)
            kept.sort { $0.index < $1.index }
            log(
                "learning the BPE from a sample of \(formatBytes(kept.reduce(0) { $0 + $1.text.utf8.count })) of the \(formatBytes(seen)) of training text (--bpe-sample-mb)"
            )
        }
        return kept.map { Document(name: "\($0.index)", text: $0.text) }
    }

    /// Keeps the documents of smallest key whose texts fit in `budget`; returns their bytes.
    static func trim(_ kept: inout [(key: UInt64, index: Int, text: String)], to budget: Int) -> Int {
        kept.sort { $0.key < $1.key }
        var total = 0, n = 0
        while n < kept.count && total + kept[n].text.utf8.count + entryOverhead <= budget {
            total += kept[n].text.utf8.count + entryOverhead
            n += 1
        }
        kept.removeSubrange(n...)
        return total
    }

    /// What an entry costs beside its text (key, index, string header), so many tiny documents
    /// cannot outgrow the budget.
    static let entryOverhead = 64

    /// SplitMix64's finaliser: a well-spread key for a document index.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
