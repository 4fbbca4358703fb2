import Foundation

/// Writes `data` to `url` and fsyncs it.
public func writeDurably(_ data: Data, to url: URL) throws {
    let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw QTrainError(.io, "cannot create \(url.path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    try data.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw QTrainError(.io, "cannot write \(url.path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
    guard fsync(fd) == 0 else { throw QTrainError(.io, "cannot sync \(url.path): \(String(cString: strerror(errno)))") }
}

/// fsyncs a directory, so that renames and new entries in it survive a crash.
public func syncDirectory(_ url: URL) throws {
    let fd = open(url.path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw QTrainError(.io, "cannot open directory \(url.path)") }
    defer { close(fd) }
    _ = fsync(fd)
}

/// Renames `from` to `to` in one step (POSIX rename: atomic within a file system).
public func rename(_ from: URL, to: URL) throws {
    guard Foundation.rename(from.path, to.path) == 0 else {
        throw QTrainError(.io, "cannot rename \(from.path) to \(to.path): \(String(cString: strerror(errno)))")
    }
}

/// SHA-256 of a file, read in 4 MB blocks.
public func sha256(of url: URL) throws -> String {
    let fd = open(url.path, O_RDONLY)
    guard fd >= 0 else { throw QTrainError(.io, "cannot open \(url.path)") }
    defer { close(fd) }
    var hash = SHA256()
    let size = 4 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    defer { buffer.deallocate() }
    while true {
        let n = read(fd, buffer, size)
        if n < 0 {
            if errno == EINTR { continue }
            throw QTrainError(.io, "cannot read \(url.path)")
        }
        if n == 0 { break }
        hash.update(UnsafeRawBufferPointer(start: buffer, count: n))
    }
    return hash.finalize().hexString
}
