import Foundation
import QTrainCheckpoint
import QTrainCore
import QTrainData

/// Human-readable summaries of what qtrain writes (`qtrain-dist inspect`).
public enum Inspector {
    /// Describes a checkpoint or run directory, a prepared data directory, a token shard, a
    /// safetensors file or a tokenizer file.
    public static func describe(_ url: URL) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw QTrainError(.io, "\(url.path) does not exist")
        }
        if isDir.boolValue {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("meta.json").path) {
                return try dataDirectory(url)
            }
            return try checkpoint(url)
        }
        switch url.pathExtension {
        case "bin": return try shard(url)
        case "safetensors": return try safetensors(url)
        case "json": return try tokenizer(url)
        default:
            throw QTrainError(
                .io,
                "\(url.path): not a file qtrain knows (checkpoint, data directory, .bin, .safetensors, tokenizer.json)")
        }
    }

    static func checkpoint(_ url: URL) throws -> String {
        let ckpt = try LoadedCheckpoint(path: url)
        let s = ckpt.state, c = ckpt.config
        var lines = ["checkpoint \(ckpt.directory.path) (all \(s.files.count) files match their SHA-256)"]
        lines.append(
            "  step \(s.step), \(formatCount(s.tokensSeen)) tokens seen, written by \(s.worldSize) rank(s)\(s.shardOptimizer ? " with ZeRO-1" : ""), \(s.created)"
        )
        lines.append(
            "  model: \(c.model.summary())"
        )
        lines.append("  weights: \(c.policyLabel); tokenizer: \(ckpt.tokenizer.identity); fingerprint \(s.fingerprint)")
        for (name, _) in s.files.sorted(by: { $0.key < $1.key }) {
            let size =
                (try? FileManager.default.attributesOfItem(atPath: ckpt.directory.appendingPathComponent(name).path)[
                    .size] as? Int) ?? 0
            lines.append("  \(name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(formatBytes(size))")
        }
        let file = try SafetensorsFile(url: ckpt.directory.appendingPathComponent("model.safetensors"))
        lines.append("  tensors:")
        for spec in ParameterLayout(c.model).specs {
            let e = try file.entry(spec.name)
            var what = "\(e.dtype.rawValue) \(spec.shape)"
            if let bits = file.metadata[spec.name + ".bits"] {
                let scale = try file.floats(spec.name + ".scale")[0]
                what = "\(bits)-bit codes \(spec.shape) in \(formatBytes(e.range.count)), scale \(scale)"
            }
            lines.append("    \(spec.name.padding(toLength: 48, withPad: " ", startingAt: 0)) \(what)")
        }
        return lines.joined(separator: "\n")
    }

    static func dataDirectory(_ url: URL) throws -> String {
        let meta = try JSONDecoder().decode(
            PreparedData.self, from: Data(contentsOf: url.appendingPathComponent("meta.json")))
        return """
            data directory \(url.path): \(meta.source), tokenizer \(meta.tokenizer) (vocabulary \(meta.vocabSize))
              train: \(formatCount(meta.trainTokens)) tokens from \(meta.trainDocumentCount) documents
              validation: \(formatCount(meta.valTokens)) tokens from \(meta.valDocumentCount) documents (\(meta.valDocumentSample.prefix(4).joined(separator: ", "))\(meta.valDocumentCount > 4 ? ", …" : ""))
              unigram entropy of the training tokens: \(String(format: "%.4f", meta.unigramEntropy)) nats
            """
                + (meta.skipped.isEmpty
                    ? ""
                    : "\n  skipped: "
                        + meta.skipped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(
                            separator: ", "))
    }

    static func shard(_ url: URL) throws -> String {
        let s = try MappedShard(url: url)
        let h = s.header
        var text =
            "token shard \(url.path): format \(ShardHeader.version), \(formatCount(h.tokenCount)) tokens of \(h.tokenBytes) bytes, vocabulary \(h.vocabSize), tokenizer \(h.tokenizerHash.prefix(8).hexString)…"
        let dir = url.deletingLastPathComponent()
        if let tok = try? TokenizerLoader.load(from: dir), tok.identityHash == h.tokenizerHash {
            let head = (0..<min(120, s.count)).map { s[$0] }
            text += "\n  begins: \(tok.decode(head).debugDescription)"
        }
        return text
    }

    static func safetensors(_ url: URL) throws -> String {
        let f = try SafetensorsFile(url: url)
        var lines = ["safetensors \(url.path): \(f.entries.count) tensors, \(f.metadata.count) metadata entries"]
        for (name, e) in f.entries.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(name.padding(toLength: 48, withPad: " ", startingAt: 0)) \(e.dtype.rawValue) \(e.shape)")
        }
        return lines.joined(separator: "\n")
    }

    static func tokenizer(_ url: URL) throws -> String {
        let tok = try TokenizerLoader.load(from: url.deletingLastPathComponent())
        return "tokenizer \(url.path): \(tok.identity), vocabulary \(tok.vocabSize), end of text = \(tok.endOfText)"
    }
}
