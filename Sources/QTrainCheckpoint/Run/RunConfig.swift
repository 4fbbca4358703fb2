import Foundation
import QTrainCore
import QTrainData
import QTrainDist
import QTrainOptim
import QTrainWeights
import Yams

/// A whole run's configuration: one section per component, each documented where it lives.
/// Unknown keys and out-of-range values are errors that name the key; `--set a.b=v`
/// overrides any key.
public struct RunConfig: Codable, Equatable, Sendable, ConfigSection {
    public var model = ModelConfig()
    public var quant = QuantConfig()
    public var optim = OptimConfig()
    public var data = DataConfig()
    public var train = TrainSection()
    public var log = LogSection()
    public var dist = DistConfig()
    public var checkpoint = CheckpointConfig()

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case model, quant, optim, data, train, log, dist, checkpoint
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.model, \.model), .init(.quant, \.quant), .init(.optim, \.optim), .init(.data, \.data),
        .init(.train, \.train), .init(.log, \.log), .init(.dist, \.dist), .init(.checkpoint, \.checkpoint)
    ]

    /// The weight policy, plus every memory option that is not the paper's setting:
    /// "dqt ternary", "dqt ternary, bf16 gradients, int8 optimizer state, recomputed blocks".
    public var policyLabel: String {
        var parts = [quant.label]
        if optim.gradDtype != .fp32 { parts.append("\(optim.gradDtype.rawValue) gradients") }
        if optim.stateDtype != .fp32 { parts.append("\(optim.stateDtype.rawValue) optimizer state") }
        if dist.shardGradients { parts.append("ZeRO-2") }
        if train.activationCheckpointing == .blocks { parts.append("recomputed blocks") }
        return parts.joined(separator: ", ")
    }

    /// Checks every section's ranges and the combinations between keys.
    public func validate() throws {
        try model.validate()
        try quant.validate()
        try optim.validate()
        try data.validate()
        try train.validate()
        try log.validate()
        try dist.validate()
        try checkpoint.validate()
    }

    /// Reads `path` (or the defaults when nil), applies `overrides` (`section.key=value`), validates.
    public static func load(path: String?, overrides: [String] = []) throws -> RunConfig {
        var root: Node = .mapping(.init([]))
        if let path {
            guard FileManager.default.fileExists(atPath: path) else {
                throw QTrainError.config(
                    "config file \(path) does not exist",
                    hint: "pass an existing file, e.g. configs/tiny.yaml, configs/small.yaml or configs/130m.yaml")
            }
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw QTrainError.config("cannot read config file \(path): \(error.localizedDescription)")
            }
            do {
                if let node = try Yams.compose(yaml: text) { root = node }
            } catch {
                throw QTrainError.config("config file \(path) is not valid YAML: \(error)")
            }
            guard root.mapping != nil else {
                throw QTrainError.config("config file \(path) must be a mapping of sections (model:, optim:, …)")
            }
        }
        for o in overrides { try apply(override: o, to: &root) }
        let config: RunConfig
        do {
            config = try YAMLDecoder().decode(RunConfig.self, from: root)
        } catch let e as QTrainError {
            throw e
        } catch {
            throw QTrainError.config("config \(path ?? "defaults") could not be read: \(error)")
        }
        try config.validate()
        return config
    }

    /// Parses a configuration from YAML text (e.g. the copy a checkpoint keeps).
    public static func parse(yaml text: String) throws -> RunConfig {
        guard let node = try Yams.compose(yaml: text) else { return RunConfig() }
        let config = try YAMLDecoder().decode(RunConfig.self, from: node)
        try config.validate()
        return config
    }

    /// The keys a configuration sets, as `section.key` → the value as written (what a report
    /// compares between runs); nil when the text is not a YAML mapping.
    public static func settings(ofYAML text: String) -> [String: String]? {
        guard let root = (try? Yams.compose(yaml: text)) ?? nil, let sections = root.mapping else { return nil }
        var out: [String: String] = [:]
        for (section, keys) in sections {
            guard let name = section.string, let keys = keys.mapping else { continue }
            for (key, value) in keys {
                guard let key = key.string else { continue }
                out[name + "." + key] =
                    value.scalar?.string ?? (try? Yams.serialize(node: value))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            }
        }
        return out
    }

    /// Sets `a.b=v` in the YAML tree; `v` is parsed as a YAML scalar.
    static func apply(override: String, to root: inout Node) throws {
        guard let eq = override.firstIndex(of: "=") else {
            throw QTrainError.config("--set \(override): expected section.key=value")
        }
        let path = override[..<eq].split(separator: ".").map(String.init)
        let text = String(override[override.index(after: eq)...])
        guard path.count == 2, !path[0].isEmpty, !path[1].isEmpty else {
            throw QTrainError.config("--set \(override): the key must be section.key, e.g. optim.lr")
        }
        let value: Node = (try? Yams.compose(yaml: text)) ?? nil ?? Node(text)
        guard var top = root.mapping else { return }
        if RunConfig.CodingKeys(rawValue: path[0]) == nil {
            throw ConfigReader<RunConfig.CodingKeys>.unknownKey(
                path[0], in: "", known: RunConfig.CodingKeys.allCases.map(\.rawValue))
        }
        var section = top[path[0]]?.mapping ?? Node.Mapping([])
        section[path[1]] = value
        top[path[0]] = .mapping(section)
        root = .mapping(top)
    }

    /// The configuration as YAML (saved in every run directory), with the defaults a mode
    /// resolves written out (`quant.bits`, `quant.scale`, `quant.latent_dtype`) and numbers in
    /// their shortest form (`1e-05`, `8`, `0.003`), so that the file says what ran.
    public func yaml() -> String {
        var c = self
        c.quant = c.quant.resolved
        let text = (try? YAMLEncoder().encode(c)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { Self.shortestNumber(in: String($0)) }
            .joined(separator: "\n")
    }

    /// `key: 1.0000000000000001e-05` → `key: 1e-05`, `key: 8e+0` → `key: 8`; other lines unchanged.
    static func shortestNumber(in line: String) -> String {
        guard let colon = line.range(of: ": ") else { return line }
        let raw = String(line[colon.upperBound...])
        guard raw.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let x = Double(raw), x.isFinite else {
            return line
        }
        let shortest = x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)"
        return String(line[..<colon.upperBound]) + shortest
    }
}
