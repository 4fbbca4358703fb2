// qtrain-fuzz: a seeded random-mutation fuzzer for every file format qtrain reads from a user.
//
//   qtrain-fuzz --run RUN --data DATA [--sentencepiece MODEL] [--gguf MODEL.gguf] [--targets a,b] [--iterations N]
//               [--seed S] --work DIR
//
// Seeds are real files: a run directory's newest checkpoint (model.safetensors, state.json), a
// prepared data directory (its shard, tokenizer.json) and the config in the run. Each execution
// applies one to four mutations (bit flips, random and boundary bytes, inserted, deleted and
// duplicated ranges, truncation, and in text formats numbers swapped for boundary values) to a
// seed, writes the input to WORK/current-<target> and hands it to the reader under test. A reader
// may reject the input with a QTrainError (or any Swift error); anything else — a trap, a
// segfault, an out-of-memory — kills the process, and the input that did it is left in
// WORK/current-<target> for the caller (launch/fuzz.sh, FuzzTests) to keep. There is no coverage
// feedback (the toolchain's libFuzzer is not available to SwiftPM builds here), so the corpus is
// the seeds and the search is breadth by count.
import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainData
import QTrainImport
import QTrainModel
import QTrainTraining
import QTrainWeights

struct Options {
    var run: URL?
    var data: URL?
    var sentencepiece: URL?
    var gguf: URL?
    var targets = [
        "yaml", "state", "safetensors", "shard", "tokenizer", "sentencepiece", "gguf", "jsonl", "jsonl-gz", "jsonl-zst"
    ]
    var iterations = 1000
    var seed: UInt64 = 1
    var work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("qtrain-fuzz")

    init(_ args: [String]) {
        var i = 1
        func value() -> String {
            i += 1
            guard i < args.count else { fail("\(args[i - 1]) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--run": run = URL(fileURLWithPath: value())
            case "--data": data = URL(fileURLWithPath: value())
            case "--sentencepiece": sentencepiece = URL(fileURLWithPath: value())
            case "--gguf": gguf = URL(fileURLWithPath: value())
            case "--targets": targets = value().split(separator: ",").map(String.init)
            case "--iterations": iterations = Int(value()) ?? { fail("--iterations takes a count") }()
            case "--seed": seed = UInt64(value()) ?? { fail("--seed takes a non-negative integer") }()
            case "--work": work = URL(fileURLWithPath: value())
            case "-h", "--help":
                print(
                    "usage: qtrain-fuzz --run RUN --data DATA [--sentencepiece MODEL] [--gguf MODEL.gguf] [--targets yaml,state,safetensors,shard,tokenizer,sentencepiece,gguf,jsonl,jsonl-gz,jsonl-zst] [--iterations N] [--seed S] [--work DIR]"
                )
                exit(0)
            default: fail("unknown argument \(args[i])")
            }
            i += 1
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("qtrain-fuzz: \(message)\n".utf8))
    exit(2)
}

/// SplitMix64: the mutations of a run are fixed by its seed.
struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

let boundaryBytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0xF2, 0xF3]
let boundaryNumbers = [
    "-1", "0", "-0", "4294967296", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
    "1e308", "-1e308", "nan", "inf", "2147483648", "65536", "256", "243", "1e-45"
]

/// One to four mutations of `seed`; text formats also get numbers swapped for boundary values.
func mutate(_ seed: [UInt8], text: Bool, _ rng: inout Random) -> [UInt8] {
    var b = seed
    for _ in 0...rng.below(4) {
        let kind = rng.below(text ? 9 : 8)
        if b.isEmpty && kind < 7 {
            b = [UInt8(truncatingIfNeeded: rng.next())]
            continue
        }
        switch kind {
        case 0: b[rng.below(b.count)] ^= UInt8(1 << rng.below(8))
        case 1: b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next())
        case 2: b[rng.below(b.count)] = boundaryBytes[rng.below(boundaryBytes.count)]
        case 3:  // an 8-byte little-endian boundary integer (lengths, counts, offsets)
            let at = rng.below(b.count)
            let v: UInt64 = [0, 1, UInt64.max, UInt64(Int64.max), 1 << 32, 1 << 63, UInt64(UInt32.max)][rng.below(7)]
            for k in 0..<8 where at + k < b.count { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        case 4:
            b.insert(
                contentsOf: (0..<(1 + rng.below(16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                at: rng.below(b.count + 1))
        case 5:
            let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(64))
            b.removeSubrange(at..<(at + n))
        case 6:
            let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(64))
            b.insert(contentsOf: b[at..<(at + n)], at: rng.below(b.count + 1))
        case 7: b = Array(b.prefix(rng.below(b.count + 1)))
        default:  // replace a run of digits (or a word) with a boundary number
            let digits = b.indices.filter { (0x30...0x39).contains(b[$0]) }
            guard let start = digits.isEmpty ? nil : digits[rng.below(digits.count)] else { continue }
            var end = start
            while end < b.count && ((0x30...0x39).contains(b[end]) || b[end] == 0x2E || b[end] == 0x2D) { end += 1 }
            b.replaceSubrange(start..<end, with: Array(boundaryNumbers[rng.below(boundaryNumbers.count)].utf8))
        }
    }
    return b
}

/// A reader under test: a seed and what to do with one input (written to `file` first).
struct Target {
    let name: String
    let seed: [UInt8]
    let text: Bool
    let file: URL
    let body: (URL, Data) throws -> Void
}

let options = Options(CommandLine.arguments)
let fm = FileManager.default
try? fm.createDirectory(at: options.work, withIntermediateDirectories: true)

func copyDirectory(_ src: URL, to dst: URL) {
    try? fm.removeItem(at: dst)
    do { try fm.copyItem(at: src, to: dst) } catch { fail("cannot copy \(src.path): \(error)") }
}

/// A copy of the run's newest checkpoint under WORK/`sub`, keeping its `step-NNNNNNN` name
/// (the checkpoint reader checks that the name and state.json agree).
func copyOfNewestCheckpoint(_ run: URL, into sub: String) -> URL {
    guard let source = Checkpointer.candidates(in: run).first else {
        fail("\(run.path) holds no checkpoint to take seeds from")
    }
    let copy = options.work.appendingPathComponent(sub).appendingPathComponent(source.lastPathComponent)
    try? fm.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
    copyDirectory(source, to: copy)
    return copy
}

/// The JSON Lines seed: records as `datasets` writes them, with escapes, nesting and Unicode.
let jsonLinesSeed = """
    {"id": 0, "text": "The cat sat on the mat.\\nA second line, with \\"quotes\\" and a tab\\there."}
    {"id": 1, "text": "caf\\u00e9 na\\u00efve \\ud83d\\ude00 \\u6771\\u4eac", "meta": {"tags": ["a", 1, null, true, -2.5e-3]}}
    {"text": "ünïcode written raw ✓ 東京 🙂", "n": [[], {}, [1, [2, {"x": false}]]]}
    {"id": 3, "text": ""}

    {"id": 4, "text": "<|endoftext|> typed in the text"}

    """

func bytes(_ url: URL) -> [UInt8] {
    guard let d = try? Data(contentsOf: url) else { fail("cannot read seed \(url.path)") }
    return [UInt8](d)
}

var targets: [Target] = []
for name in options.targets {
    switch name {
    case "yaml":
        guard let run = options.run else { fail("yaml needs --run (its config.yaml is the seed)") }
        targets.append(
            Target(
                name: name, seed: bytes(run.appendingPathComponent("config.yaml")), text: true,
                file: options.work.appendingPathComponent("current-yaml.yaml")
            ) { _, data in
                let config = try RunConfig.parse(yaml: String(decoding: data, as: UTF8.self))
                try config.validate()
                _ = MemoryPlan(config, microBatch: (try? config.train.microBatch(world: 1)) ?? 1)
            })
    case "state":
        guard let run = options.run else { fail("state needs --run") }
        let copy = copyOfNewestCheckpoint(run, into: "state")
        targets.append(
            Target(
                name: name, seed: bytes(copy.appendingPathComponent("state.json")), text: true,
                file: copy.appendingPathComponent("state.json")
            ) { _, _ in
                _ = try Checkpointer.verify(copy)
            })
    case "safetensors":
        guard let run = options.run else { fail("safetensors needs --run") }
        let copy = copyOfNewestCheckpoint(run, into: "model")
        let loaded = try LoadedCheckpoint(path: copy)
        targets.append(
            Target(
                name: name, seed: bytes(copy.appendingPathComponent("model.safetensors")), text: false,
                file: options.work.appendingPathComponent("current-model.safetensors")
            ) { url, _ in
                let model = Model(config: loaded.config.model, quant: loaded.config.quant, batch: 1, ledger: nil)
                try CheckpointFormat.loadModel(model.weights, from: SafetensorsFile(url: url))
            })
    case "shard":
        guard let data = options.data else { fail("shard needs --data") }
        let dir = options.work.appendingPathComponent("data-shard")
        copyDirectory(data, to: dir)
        for f in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
        where f.hasPrefix("val_") || f.hasPrefix("train_0") && f != "train_000.bin" {
            try? fm.removeItem(at: dir.appendingPathComponent(f))
        }
        targets.append(
            Target(
                name: name, seed: bytes(dir.appendingPathComponent("train_000.bin")), text: false,
                file: dir.appendingPathComponent("train_000.bin")
            ) { _, _ in
                let set = try TokenDataset(directory: dir, split: "train", seqLen: 16)
                let t = UnsafeMutablePointer<Int32>.allocate(capacity: 16),
                    y = UnsafeMutablePointer<Int32>.allocate(capacity: 16)
                defer {
                    t.deallocate()
                    y.deallocate()
                }
                for w in [0, set.windowCount / 2, set.windowCount - 1] { set.window(w, tokens: t, targets: y) }
            })
    case "tokenizer":
        guard let data = options.data else { fail("tokenizer needs --data") }
        let dir = options.work.appendingPathComponent("data-tokenizer")
        try? fm.createDirectory(at: dir, withIntermediateDirectories: true)
        targets.append(
            Target(
                name: name, seed: bytes(data.appendingPathComponent("tokenizer.json")), text: true,
                file: dir.appendingPathComponent("tokenizer.json")
            ) { _, _ in
                let tok = try TokenizerLoader.load(from: dir)
                let ids = tok.encode("the cat sat on the mat. Ünïcode ✓ 123")
                _ = tok.decode(ids.filter { $0 >= 0 && Int($0) < tok.vocabSize })
            })
    case "sentencepiece":
        guard let model = options.sentencepiece else { continue }  // optional: the model is a download
        targets.append(
            Target(
                name: name, seed: bytes(model), text: false,
                file: options.work.appendingPathComponent("current-sentencepiece.model")
            ) { _, data in
                let tok = try SentencePieceTokenizer(modelData: data)
                _ = tok.decode(tok.encode("The quick brown fox: 12 ünïcode ✓"))
            })
    case "gguf":
        guard let model = options.gguf else { continue }  // optional: a model file to start from
        targets.append(
            Target(
                name: name, seed: bytes(model), text: false,
                file: options.work.appendingPathComponent("current-model.gguf")
            ) { url, _ in
                // What `import` does: open, check, read every tensor into weights, build the tokenizer.
                let source = try PretrainedModel.open(url.path)
                var config = source.config
                config.seqLen = min(config.seqLen, 16)
                let weights = ModelWeights(layout: ParameterLayout(config), quant: QuantConfig(), ledger: nil)
                _ = try source.load(into: weights, scale: .search)
                let tok = try source.tokenizer()
                _ = tok.decode(tok.encode("The quick brown fox: 12 ünïcode ✓"))
            })
    case "jsonl", "jsonl-gz", "jsonl-zst":
        // What `prepare` reads from a JSON Lines file (plain, gzip, zstd): records, fields, UTF-8,
        // then every document through the data's tokenizer.
        guard let data = options.data else { fail("\(name) needs --data (its tokenizer encodes the documents)") }
        let tokenizer = try TokenizerLoader.load(from: data)
        let plain = Array(jsonLinesSeed.utf8)
        let (seed, suffix): ([UInt8], String) =
            name == "jsonl"
            ? (plain, "") : name == "jsonl-gz" ? (Compressor.gzip(plain), ".gz") : (Compressor.zstd(plain), ".zst")
        targets.append(
            Target(
                name: name, seed: seed, text: name == "jsonl",
                file: options.work.appendingPathComponent("current-corpus.jsonl" + suffix)
            ) { url, _ in
                let reader = DocumentReader(
                    inputs: try InputFile.expand([url.path]), textField: "text", maximumDocumentBytes: 4096,
                    problems: try ProblemLog(url: nil, shown: 0, log: { _ in }),
                    parquet: ParquetRunner(cache: options.work, log: { _ in }))
                let encoder = tokenizer.makeDocumentEncoder()
                var ids: [Int32] = []
                while let document = try reader.next() {
                    document.bytes.withUnsafeBufferPointer { encoder.encode(utf8: $0, appendingTo: &ids) }
                }
            })
    default: fail("unknown target \(name)")
    }
}

var rng = Random(state: options.seed)
for target in targets {
    let start = Date()
    var rejected = 0
    for _ in 0..<options.iterations {
        let input = Data(mutate(target.seed, text: target.text, &rng))
        do {
            try input.write(to: target.file)
        } catch {
            fail("cannot write \(target.file.path): \(error)")
        }
        do { try target.body(target.file, input) } catch { rejected += 1 }
    }
    // The seed itself must still be accepted: the harness tests readers, not its own setup.
    try Data(target.seed).write(to: target.file)
    do { try target.body(target.file, Data(target.seed)) } catch {
        fail("\(target.name): the unmutated seed is rejected: \(error)")
    }
    print(
        String(
            format: "%@: %d executions, %d rejected cleanly, 0 crashes, corpus 1 seed (%d bytes), %.1f s",
            target.name, options.iterations, rejected, target.seed.count, Date().timeIntervalSince(start)))
}
