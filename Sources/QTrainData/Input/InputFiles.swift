import Foundation
import QTrainCore

/// One file of a corpus and how `prepare` reads it.
public struct InputFile: Equatable, Sendable {
    /// How documents are laid out in a file.
    public enum Format: String, Sendable {
        /// The whole file is one document.
        case text
        /// One JSON object per line; a string field holds the document.
        case jsonLines = "jsonl"
        /// A Parquet table (a `datasets` export); a string column holds the documents.
        case parquet
    }

    public let url: URL
    /// The name reports use: the path as given, or relative to the directory given.
    public let name: String
    public let format: Format
    public let compression: Compression

    /// The format and compression that `name` implies, or nil for a file `prepare` does not read:
    /// `.txt`, `.jsonl`/`.json`/`.ndjson`, `.parquet`, the first two also `.gz`/`.zst`.
    public init?(url: URL, name: String) {
        let compression = Compression(fileName: name)
        var base = name
        if compression != .none, let dot = base.lastIndex(of: ".") { base = String(base[..<dot]) }
        let ext = (base as NSString).pathExtension.lowercased()
        switch ext {
        case "txt", "text", "md": format = .text
        case "jsonl", "ndjson", "json": format = .jsonLines
        case "parquet" where compression == .none: format = .parquet
        default: return nil
        }
        self.url = url
        self.name = name
        self.compression = compression
    }

    /// The files that `arguments` name, in the order `prepare` reads them: each argument in turn;
    /// a directory gives its readable files (recursively, sorted by relative path); a pattern
    /// with `*`, `?` or `[` gives its matches, sorted. A file named explicitly whose extension is
    /// unknown is read as text.
    public static func expand(_ arguments: [String]) throws -> [InputFile] {
        var files: [InputFile] = []
        for argument in arguments {
            let paths: [String]
            if argument.contains(where: { "*?[".contains($0) }) {
                paths = try glob(argument)
            } else {
                paths = [argument]
            }
            for path in paths {
                let url = URL(fileURLWithPath: path)
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                    throw QTrainError.data(
                        "corpus path \(path) does not exist",
                        hint:
                            "give text (.txt), JSON Lines (.jsonl) or Parquet files, .gz/.zst of the first two, directories or patterns of them, sotu or shakespeare"
                    )
                }
                if isDir.boolValue {
                    let found = try directoryFiles(url, shownAs: path)
                    guard !found.isEmpty else {
                        throw QTrainError.data(
                            "directory \(path) holds no .txt, .jsonl or .parquet files (nor .gz/.zst of them)",
                            hint: "point --corpus at the files")
                    }
                    files += found
                } else {
                    files.append(
                        InputFile(url: url, name: path)
                            ?? InputFile(url: url, name: path, format: .text, compression: Compression(fileName: path)))
                }
            }
        }
        return files
    }

    init(url: URL, name: String, format: Format, compression: Compression) {
        self.url = url
        self.name = name
        self.format = format
        self.compression = compression
    }

    static func directoryFiles(_ directory: URL, shownAs shown: String) throws -> [InputFile] {
        guard let walker = FileManager.default.enumerator(atPath: directory.path) else {
            throw QTrainError.data("cannot list directory \(directory.path)")
        }
        var relative: [String] = []
        while let next = walker.nextObject() as? String {
            // Hidden files and folders (.cache, editor backups) are not corpus.
            if (next as NSString).lastPathComponent.hasPrefix(".") {
                if (walker.fileAttributes?[.type] as? FileAttributeType) == .typeDirectory { walker.skipDescendants() }
                continue
            }
            if (walker.fileAttributes?[.type] as? FileAttributeType) != .typeDirectory { relative.append(next) }
        }
        let base = shown.hasSuffix("/") ? shown : shown + "/"
        return relative.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).compactMap {
            InputFile(url: directory.appendingPathComponent($0), name: base + $0)
        }
    }

    static func glob(_ pattern: String) throws -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        let status = Foundation.glob(pattern, 0, nil, &result)
        guard status == 0 else {
            if status == GLOB_NOMATCH {
                throw QTrainError.data(
                    "no file matches \(pattern)", hint: "check the pattern (quote it for qtrain, not the shell)")
            }
            throw QTrainError.data("cannot expand \(pattern) (glob error \(status))")
        }
        var paths: [String] = []
        for i in 0..<Int(result.gl_pathc) {
            if let p = result.gl_pathv[i] { paths.append(String(cString: p)) }
        }
        return paths.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
    }
}
