import Foundation
import QTrainCheckpoint
import QTrainCore

/// Where a run's words go: plain lines on standard output, and on a terminal a live
/// progress line that rewrites itself. Only rank 0 speaks (others are silent).
public final class Console: @unchecked Sendable {
    public let enabled: Bool
    private let live: Bool
    private var liveShown = false
    private let lock = NSLock()

    public init(enabled: Bool, mode: ProgressMode = .auto) {
        self.enabled = enabled
        live = enabled && mode == .auto && isatty(STDOUT_FILENO) != 0
    }

    /// A permanent line.
    public func line(_ text: String) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        if liveShown {
            FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
            liveShown = false
        }
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// A progress line: rewritten in place on a terminal; when `force` or not on a terminal,
    /// a permanent line.
    public func progress(_ text: String, permanent: Bool) {
        guard enabled else { return }
        if live && !permanent {
            lock.lock()
            defer { lock.unlock() }
            FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + text).utf8))
            liveShown = true
        } else {
            line(text)
        }
    }
}

/// Appends one JSON object per line to `metrics.jsonl`.
public final class MetricsWriter {
    private let handle: FileHandle?
    public let url: URL

    /// Opens (creating or, with `append` false, truncating) the file; rank 0 only.
    public init(url: URL, append: Bool, enabled: Bool) throws {
        self.url = url
        guard enabled else {
            handle = nil
            return
        }
        if !append || !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw QTrainError(.io, "cannot create \(url.path)", hint: "check that the run directory is writable")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        handle?.seekToEndOfFile()
    }

    deinit { try? handle?.close() }

    /// Set once a write failed (a full disk): later records are dropped, training goes on.
    public private(set) var failure: String?

    /// Writes one record as one line in one write; on failure, warns once on standard error
    /// and stops writing (the checkpoints, not the metrics, are what a run must not lose).
    public func write(_ record: MetricsRecord) {
        guard let handle, failure == nil, let data = try? record.jsonLine() else { return }
        do {
            try handle.write(contentsOf: data + Data("\n".utf8))
        } catch {
            failure = error.localizedDescription
            FileHandle.standardError.write(
                Data(
                    "warning: cannot append to \(url.path) (\(error.localizedDescription)); metrics are no longer recorded, training goes on\n"
                        .utf8))
        }
    }
}
