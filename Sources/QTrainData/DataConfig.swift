import QTrainCore

/// The `data:` section.
public struct DataConfig: Codable, Equatable, Sendable {
    /// Directory written by `qtrain-dist prepare`: `train_*.bin`, `val_*.bin`, `tokenizer.json`.
    public var dir = "data/sotu"

    enum CodingKeys: String, CodingKey, CaseIterable { case dir }

    public init() {}

    public init(from decoder: Decoder) throws {
        let read = try ConfigReader<CodingKeys>(decoder)
        dir = try read(.dir, dir)
    }

    package func validate(path: String = "data") throws {
        try ConfigCheck(path: path).require(!dir.isEmpty, "dir", "''", "a directory path")
    }
}
