import Foundation
import QTrainCore

/// What `prepare` could not use, counted by kind and listed with file and line: the first few
/// on the console, every one in a file beside the shards (`skipped.txt`).
public final class ProblemLog: @unchecked Sendable {
    /// Why a record or document was skipped.
    public enum Kind: String, CaseIterable, Sendable, Codable {
        case notJSON = "not_json"
        case missingField = "missing_field"
        case notString = "field_not_string"
        case invalidUTF8 = "invalid_utf8"
        case tooLong = "too_long"
    }

    private let lock = NSLock()
    private var writeError: (any Error)?
    private var file: FileHandle?
    private let shown: Int
    private let log: (String) -> Void
    public private(set) var counts: [Kind: Int] = [:]
    public let url: URL?

    /// Lists problems in `url` (nil: nowhere) and prints the first `shown` of them through `log`.
    public init(url: URL?, shown: Int = 10, log: @escaping (String) -> Void) throws {
        self.url = url
        self.shown = shown
        self.log = log
        if let url {
            guard FileManager.default.createFile(atPath: url.path, contents: nil),
                let handle = FileHandle(forWritingAtPath: url.path)
            else {
                throw QTrainError(.io, "cannot create \(url.path)", hint: "check that the output directory is writable")
            }
            file = handle
        }
    }

    deinit { try? file?.close() }

    /// Records one problem.
    public func add(_ kind: Kind, _ message: String) {
        lock.lock()
        defer { lock.unlock() }
        counts[kind, default: 0] += 1
        let total = counts.values.reduce(0, +)
        if total <= shown { log("skipped \(message)") }
        if total == shown + 1, let url { log("… more skipped records are listed in \(url.path)") }
        do {
            try file?.write(contentsOf: Data((message + "\n").utf8))
        } catch {
            writeError = writeError ?? error
        }
    }

    /// Problems so far.
    public var total: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.values.reduce(0, +)
    }

    /// "3 not JSON, 1 invalid UTF-8" or nil.
    public var summary: String? {
        lock.lock()
        defer { lock.unlock() }
        let names: [Kind: String] = [
            .notJSON: "not JSON", .missingField: "without the text field", .notString: "with a non-string text field",
            .invalidUTF8: "not valid UTF-8", .tooLong: "over the document limit"
        ]
        let parts = Kind.allCases.compactMap { k in counts[k].map { "\($0) \(names[k]!)" } }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }

    /// Closes the list.
    public func close() throws {
        lock.lock()
        defer { lock.unlock() }
        if let writeError, let url {
            throw QTrainError(
                .io, "cannot write \(url.path): \(writeError.localizedDescription)", hint: "check free disk space")
        }
        try file?.synchronize()
        try file?.close()
        file = nil
    }
}
