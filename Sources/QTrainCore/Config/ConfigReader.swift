import Foundation

/// A coding key that accepts any string, used to list the keys a YAML mapping really has.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Reads one config section: every key optional with a default, unknown keys rejected with
/// the nearest valid key, type mismatches reported with the key's full path.
package struct ConfigReader<Key: CodingKey & CaseIterable & RawRepresentable> where Key.RawValue == String {
    private let container: KeyedDecodingContainer<AnyKey>
    /// Dotted path of the section, e.g. `optim`.
    let path: String

    package init(_ decoder: Decoder) throws {
        path = decoder.codingPath.map(\.stringValue).joined(separator: ".")
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            throw QTrainError.config("config section '\(path)' must be a mapping of keys to values")
        }
        let known = Key.allCases.map(\.rawValue)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw ConfigReader.unknownKey(key.stringValue, in: path, known: known)
        }
    }

    package static func unknownKey(_ key: String, in path: String, known: [String]) -> QTrainError {
        let full = path.isEmpty ? key : "\(path).\(key)"
        var hint = "valid keys: \(known.joined(separator: ", "))"
        if let near = nearest(key, among: known) {
            hint = "did you mean '\(path.isEmpty ? near : "\(path).\(near)")'?"
        }
        return QTrainError.config("unknown config key '\(full)'", hint: hint)
    }

    /// The value of `key`, or `fallback` when the key is absent.
    package func callAsFunction<T: Decodable>(_ key: Key, _ fallback: T) throws -> T {
        let k = AnyKey(stringValue: key.rawValue)
        guard container.contains(k) else { return fallback }
        do {
            if try container.decodeNil(forKey: k) { return fallback }
            return try container.decode(T.self, forKey: k)
        } catch let error as QTrainError {
            throw error
        } catch {
            let shown = (try? container.decode(String.self, forKey: k)).map { "'\($0)'" } ?? "a value of another type"
            throw QTrainError.config(
                "config key '\(path).\(key.rawValue)' expects \(ConfigReader.describe(T.self)), got \(shown)")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        case let t as ConfigEnum.Type: return "one of \(t.choices.joined(separator: ", "))"
        default: return "a value of type \(type)"
        }
    }
}

/// String-valued config options; decoding an unknown spelling names the choices.
package protocol ConfigEnum: Decodable {
    static var choices: [String] { get }
}

extension ConfigEnum where Self: RawRepresentable & CaseIterable, RawValue == String {
    package static var choices: [String] { allCases.map(\.rawValue) }
}

/// The closest string to `word`, if any is reasonably close.
public func nearest(_ word: String, among candidates: [String]) -> String? {
    let w = word.lowercased()
    // A key cut short or run on ("warmup" for "warmup_steps") is the likeliest slip.
    if w.count >= 3,
        let partial = candidates.first(where: { $0.lowercased().hasPrefix(w) || w.hasPrefix($0.lowercased()) })
    {
        return partial
    }
    let scored = candidates.map { ($0, editDistance(w, $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, word.count / 2) ? best.0 : nil
}

/// Range checks that produce the standard message.
package struct ConfigCheck {
    let path: String

    package init(path: String) { self.path = path }

    package func require(_ ok: Bool, _ key: String, _ value: Any, _ expectation: String) throws {
        if !ok {
            throw QTrainError.config("config key '\(path).\(key)' = \(value) is out of range: \(expectation)")
        }
    }
}
