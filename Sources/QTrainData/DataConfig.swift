import QTrainCore

/// The `data:` section: one prepared directory (`dir`) or a weighted mixture of them (`mix`).
/// A config writes one of the two; `dir` unwritten means `data/sotu` when there is no `mix`.
public struct DataConfig: Codable, Sendable, ConfigSection {
    /// The directory a config that names no data reads.
    public static let defaultDirectory = "data/sotu"

    /// Directory written by `qtrain-dist prepare`: `train_*.bin`, `val_*.bin`, `tokenizer.json`.
    public var dir: String {
        get { dirSetting ?? Self.defaultDirectory }
        set { dirSetting = newValue }
    }
    /// `dir` as the config wrote it (nil: not written), so that a config writing both `dir` and
    /// `mix` is refused rather than silently reading one of them.
    package var dirSetting: String?
    /// Several prepared directories sampled by weight (``DataMix``); nil: train on ``dir``.
    public var mix: DataMix?

    package enum CodingKeys: String, CodingKey, CaseIterable { case dir, mix }

    public init() {}

    package static let fields: [ConfigField<Self>] = [.init(.dir, \.dirSetting), .init(.mix, \.mix)]

    /// What the run samples from: the mixture's entries, or `dir` with weight 1.
    public var sources: [DataMix.Entry] { mix?.entries ?? [DataMix.Entry(path: dir, weight: 1)] }

    /// The directory that stands for the data where one is needed (its tokenizer is every
    /// source's): `dir`, or the mixture's first path.
    public var firstDirectory: String { sources[0].path }

    package func validate(path: String = "data") throws {
        let check = ConfigCheck(path: path)
        guard let mix else {
            try check.require(!dir.isEmpty, "dir", "''", "a directory path")
            return
        }
        if dirSetting != nil {
            throw QTrainError.config(
                "config keys '\(path).dir' and '\(path).mix' are both set; a run reads one of them",
                hint:
                    "keep \(path).mix and remove \(path).dir (on the command line: --set \(path).dir=null), or the reverse"
            )
        }
        try check.require(!mix.entries.isEmpty, "mix", "{}", "at least one data directory and its weight")
        for e in mix.entries {
            try check.require(!e.path.isEmpty, "mix", "''", "a directory path for every weight")
            try check.require(e.weight > 0 && e.weight.isFinite, "mix.\(e.path)", e.weight, "a weight > 0 and finite")
        }
    }

    /// Writes `mix` when there is one, else `dir`: the saved config reads back as the same run.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let mix { try c.encode(mix, forKey: .mix) } else { try c.encode(dir, forKey: .dir) }
    }
}

extension DataConfig: Equatable {
    /// Equal when they read the same data (an unwritten `dir` equals the default written out).
    public static func == (a: DataConfig, b: DataConfig) -> Bool {
        a.mix == b.mix && (a.mix != nil || a.dir == b.dir)
    }
}
