import Foundation

/// Writes `obj` (JSON-compatible values) as sorted, indented JSON, atomically.
package func writeJSON(_ obj: Any, to url: URL) throws {
    let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: url, options: .atomic)
}
