import QTrainCore

/// `data.mix`: prepared data directories and their sampling weights, as a YAML mapping
/// (`data/sotu: 0.7`). Weights need not sum to 1; each source is drawn with probability
/// weight ÷ sum. Entries are kept sorted by path, not in the order written, so that the same
/// mixture written in any order (or rewritten by a YAML or JSON encoder) is the same run.
public struct DataMix: Codable, Equatable, Sendable {
    /// One source of the mixture.
    public struct Entry: Equatable, Sendable {
        /// The directory, as the config writes it (also the source's name in logs and metrics).
        public var path: String
        public var weight: Double

        public init(path: String, weight: Double) {
            self.path = path
            self.weight = weight
        }
    }

    /// The sources, sorted by path.
    public private(set) var entries: [Entry]

    public init(_ weights: [String: Double]) {
        entries = weights.map { Entry(path: $0.key, weight: $0.value) }.sorted { $0.path < $1.path }
    }

    /// Each weight divided by their sum.
    public var normalizedWeights: [Double] {
        let total = entries.reduce(0) { $0 + $1.weight }
        return entries.map { $0.weight / total }
    }

    private struct PathKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let path = decoder.codingPath.map(\.stringValue).joined(separator: ".")
        let example = "e.g. {data/sotu: 0.7, data/shakespeare: 0.3}"
        guard let c = try? decoder.container(keyedBy: PathKey.self) else {
            throw QTrainError.config(
                "config key '\(path)' expects a mapping of data directories to weights, \(example)")
        }
        var weights: [String: Double] = [:]
        for key in c.allKeys {
            guard let w = try? c.decode(Double.self, forKey: key) else {
                throw QTrainError.config(
                    "config key '\(path).\(key.stringValue)' expects a number (the directory's weight), \(example)")
            }
            weights[key.stringValue] = w
        }
        self.init(weights)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: PathKey.self)
        for e in entries { try c.encode(e.weight, forKey: PathKey(stringValue: e.path)) }
    }
}
