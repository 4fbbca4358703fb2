import QTrainCore

/// The `data:` section.
public struct DataConfig: Codable, Equatable, Sendable, ConfigSection {
    /// Directory written by `qtrain-dist prepare`: `train_*.bin`, `val_*.bin`, `tokenizer.json`.
    public var dir = "data/sotu"

    package enum CodingKeys: String, CodingKey, CaseIterable { case dir }

    public init() {}

    package static let fields: [ConfigField<Self>] = [.init(.dir, \.dir)]

    package func validate(path: String = "data") throws {
        try ConfigCheck(path: path).require(!dir.isEmpty, "dir", "''", "a directory path")
    }
}
