/// A section of the YAML config (`model:`, `optim:`, …) read key by key: every key optional
/// with the section's default (``init()``), unknown keys refused with the nearest valid one,
/// type mismatches named with the key's path (``ConfigReader``). A section lists its keys once,
/// in ``fields``; decoding is this protocol's, so no section writes a decoder of its own.
package protocol ConfigSection: Decodable {
    associatedtype CodingKeys: CodingKey & CaseIterable & RawRepresentable where CodingKeys.RawValue == String
    /// The defaults.
    init()
    /// Every key of the section and the property it sets, in reading order.
    static var fields: [ConfigField<Self>] { get }
}

/// One key of a config section and the property it sets.
package struct ConfigField<Section: ConfigSection> {
    let key: Section.CodingKeys
    let read: (inout Section, ConfigReader<Section.CodingKeys>) throws -> Void

    /// `key` sets the property at `path` (absent: it keeps its default).
    package init<Value: Decodable>(_ key: Section.CodingKeys, _ path: WritableKeyPath<Section, Value>) {
        self.key = key
        read = { section, reader in section[keyPath: path] = try reader(key, section[keyPath: path]) }
    }
}

extension ConfigSection {
    public init(from decoder: Decoder) throws {
        self.init()
        let reader = try ConfigReader<CodingKeys>(decoder)
        for field in Self.fields { try field.read(&self, reader) }
    }
}
