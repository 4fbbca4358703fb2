import CCompression
import Foundation
import QTrainCore

/// A source of bytes read front to back in bounded pieces: a file, or a file decompressed as it
/// is read, so `prepare` holds only a buffer of any input, whatever its size.
public protocol ByteStream: AnyObject {
    /// Fills the front of `buffer`; returns how many bytes it wrote, 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Bytes consumed from the file so far (compressed bytes for a compressed file), for progress.
    var consumed: Int { get }
}

/// How an input file is compressed, from its name.
public enum Compression: String, Sendable {
    case none, gzip, zstd

    /// `.gz` → gzip, `.zst`/`.zstd` → zstd, else none.
    init(fileName: String) {
        if fileName.hasSuffix(".gz") {
            self = .gzip
        } else if fileName.hasSuffix(".zst") || fileName.hasSuffix(".zstd") {
            self = .zstd
        } else {
            self = .none
        }
    }

    /// Opens `url` as a stream of its decompressed bytes.
    func open(_ url: URL) throws -> any ByteStream {
        let file = try FileByteStream(url)
        switch self {
        case .none: return file
        case .gzip: return try GzipByteStream(file, name: url.path)
        case .zstd: return try ZstdByteStream(file, name: url.path)
        }
    }
}

/// A file's bytes, read with `read(2)`.
final class FileByteStream: ByteStream {
    let fd: Int32
    let path: String
    private(set) var consumed = 0

    init(_ url: URL) throws {
        path = url.path
        fd = Foundation.open(url.path, O_RDONLY)
        guard fd >= 0 else {
            throw QTrainError.data(
                "cannot open \(url.path): \(String(cString: strerror(errno)))", hint: "check the corpus path")
        }
    }

    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Foundation.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 {
                consumed += n
                return n
            }
            if errno != EINTR {
                throw QTrainError(.io, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// A gzip file (one member or several concatenated, as `cat a.gz b.gz` makes) inflated by zlib.
final class GzipByteStream: ByteStream {
    private let file: FileByteStream
    private let name: String
    private var stream = z_stream()
    private var input: UnsafeMutableRawBufferPointer
    private var atEnd = false
    /// Whether the current member has ended (its trailer read) and no byte of another followed yet.
    private var betweenMembers = false

    var consumed: Int { file.consumed }

    init(_ file: FileByteStream, name: String) throws {
        self.file = file
        self.name = name
        input = .allocate(byteCount: 1 << 18, alignment: 64)
        // 15 + 16: a gzip header and trailer around the deflate data.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            input.deallocate()
            throw QTrainError(.io, "zlib could not start inflating \(name)")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !atEnd else { return 0 }
        stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
        let room = UInt32(min(buffer.count, Int(UInt32.max)))
        stream.avail_out = room
        while stream.avail_out == room {
            if stream.avail_in == 0 {
                let n = try file.read(into: input)
                if n == 0 {
                    guard betweenMembers else {
                        throw QTrainError.data(
                            "\(name) is truncated: the gzip stream ends before its last member is complete",
                            hint: "re-create or re-download the file (gzip -t checks it)")
                    }
                    atEnd = true
                    return 0
                }
                stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = UInt32(n)
            }
            betweenMembers = false
            let status = inflate(&stream, Z_NO_FLUSH)
            switch status {
            case Z_OK, Z_BUF_ERROR: break
            case Z_STREAM_END:
                // Another member may follow; the next read sees its header or the file's end.
                betweenMembers = true
                inflateReset(&stream)
            default:
                let detail = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw QTrainError.data("\(name) is not valid gzip data: \(detail)", hint: "check the file (gzip -t)")
            }
        }
        return Int(room - stream.avail_out)
    }
}

/// A zstd file (one frame or several) decompressed by libzstd.
final class ZstdByteStream: ByteStream {
    private let file: FileByteStream
    private let name: String
    private let context: OpaquePointer
    private var input: UnsafeMutableRawBufferPointer
    private var inBuffer = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
    private var frameOpen = false
    private var atEnd = false

    var consumed: Int { file.consumed }

    init(_ file: FileByteStream, name: String) throws {
        self.file = file
        self.name = name
        guard let dctx = ZSTD_createDCtx() else { throw QTrainError(.io, "libzstd could not start on \(name)") }
        context = dctx
        input = .allocate(byteCount: ZSTD_DStreamInSize(), alignment: 64)
    }

    deinit {
        ZSTD_freeDCtx(context)
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !atEnd else { return 0 }
        var out = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
        while out.pos == 0 {
            if inBuffer.pos == inBuffer.size {
                let n = try file.read(into: input)
                if n == 0 {
                    guard !frameOpen else {
                        throw QTrainError.data(
                            "\(name) is truncated: the zstd stream ends inside a frame",
                            hint: "re-create or re-download the file (zstd -t checks it)")
                    }
                    atEnd = true
                    return 0
                }
                inBuffer = ZSTD_inBuffer(src: UnsafeRawPointer(input.baseAddress), size: n, pos: 0)
            }
            let hint = ZSTD_decompressStream(context, &out, &inBuffer)
            if ZSTD_isError(hint) != 0 {
                throw QTrainError.data(
                    "\(name) is not valid zstd data: \(String(cString: ZSTD_getErrorName(hint)))",
                    hint: "check the file (zstd -t)")
            }
            // 0: a frame ended and everything it holds was written out.
            frameOpen = hint != 0
        }
        return out.pos
    }
}
