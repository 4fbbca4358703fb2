import Foundation
import QTrainCore

/// A document as read from its file: bytes not yet checked as UTF-8, and where it starts.
package struct SourceDocument {
    package var bytes: [UInt8]
    /// Index of its file among the reader's inputs.
    package var file: Int
    /// The line (JSON Lines), row (Parquet) or first line (a piece of a text file) it starts at, from 1.
    package var line: Int
    /// More pieces of the same document follow (a text file longer than the document limit).
    package var continues = false
}

/// Reads the documents of a corpus in order, one at a time: a text file is one document (cut
/// into pieces past the document limit), a JSON Lines or Parquet record one document. What
/// cannot be read as a document (a line that is not JSON, a missing or non-string field, a line
/// past the limit) goes to `problems`, with its file and line.
package final class DocumentReader {
    let inputs: [InputFile]
    let field: [UInt8]
    let maximumDocumentBytes: Int
    let problems: ProblemLog
    let parquet: ParquetRunner
    private var fileIndex = -1
    private var current: Current?
    /// Bytes of finished files plus what the open file has consumed: progress against `totalBytes`.
    private var finishedBytes = 0
    /// Each input's size on disk (compressed size for compressed files).
    private let sizes: [Int]
    let totalBytes: Int
    /// Where text files are read into, one buffer for every file.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)

    private enum Current {
        case lines(LineReader, any ByteStream, Process?)
        case text(TextPieces)
    }

    package init(
        inputs: [InputFile], textField: String, maximumDocumentBytes: Int, problems: ProblemLog,
        parquet: ParquetRunner
    ) {
        self.inputs = inputs
        field = Array(textField.utf8)
        self.maximumDocumentBytes = maximumDocumentBytes
        self.problems = problems
        self.parquet = parquet
        sizes = inputs.map { (try? FileManager.default.attributesOfItem(atPath: $0.url.path)[.size] as? Int) ?? 0 }
        totalBytes = sizes.reduce(0, +)
    }

    deinit { readBuffer.deallocate() }

    /// Bytes of the input files read so far (compressed bytes for compressed files).
    var consumedBytes: Int {
        switch current {
        case .lines(_, let stream, _): return finishedBytes + stream.consumed
        case .text(let pieces): return finishedBytes + pieces.stream.consumed
        case nil: return finishedBytes
        }
    }

    /// The next document, or nil after the last.
    package func next() throws -> SourceDocument? {
        while true {
            if current == nil {
                fileIndex += 1
                guard fileIndex < inputs.count else { return nil }
                current = try open(inputs[fileIndex])
            }
            switch current! {
            case .text(let pieces):
                while let piece = try pieces.next() {
                    let document = SourceDocument(
                        bytes: piece.bytes, file: fileIndex, line: piece.line, continues: piece.continues)
                    if isUTF8(document) { return document }
                    // A text cut into pieces ends at a piece that cannot be read: the rest of the
                    // file is skipped, and pieces already handed out are closed as one document.
                    if piece.continues || pieces.handedOut > 1 {
                        try pieces.abandon()
                        if pieces.handedOut > 1 {
                            return SourceDocument(bytes: [], file: fileIndex, line: piece.line, continues: false)
                        }
                    }
                }
            case .lines(let reader, _, let process):
                while let line = try reader.next() {
                    if let document = record(line, number: reader.lineNumber), isUTF8(document) { return document }
                }
                if let process { try parquet.finish(process, file: inputs[fileIndex]) }
            }
            finishedBytes += sizes[fileIndex]
            current = nil
        }
    }

    /// Checked here, before the document takes its place in the split, so a skipped document
    /// never takes a validation slot.
    private func isUTF8(_ document: SourceDocument) -> Bool {
        guard let bad = firstInvalidUTF8(document.bytes) else { return true }
        let input = inputs[document.file]
        // In a text the bad byte's own line; in a record, the record's.
        let line =
            input.format == .text
            ? document.line + document.bytes[..<bad].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } : document.line
        problems.add(.invalidUTF8, "\(input.name): \(place(line, in: input)) is not valid UTF-8")
        return false
    }

    /// "line N", or "row N" of a Parquet table.
    private func place(_ number: Int, in input: InputFile) -> String {
        input.format == .parquet ? "row \(number)" : "line \(number)"
    }

    private func open(_ input: InputFile) throws -> Current {
        switch input.format {
        case .text:
            let stream = try input.compression.open(input.url)
            return .text(
                TextPieces(
                    stream, limit: maximumDocumentBytes, file: input.name, problems: problems, buffer: readBuffer))
        case .jsonLines:
            let stream = try input.compression.open(input.url)
            return .lines(LineReader(stream, maximumLineBytes: maximumDocumentBytes), stream, nil)
        case .parquet:
            let (process, stream) = try parquet.start(input, column: String(decoding: field, as: UTF8.self))
            return .lines(LineReader(stream, maximumLineBytes: maximumDocumentBytes), stream, process)
        }
    }

    /// The document of one JSON Lines record, or nil (blank line, or a problem logged).
    private func record(_ line: LineReader.Line, number: Int) -> SourceDocument? {
        let input = inputs[fileIndex]
        let place = place(number, in: input)
        switch line {
        case .tooLong(let bytes):
            problems.add(
                .tooLong,
                "\(input.name): \(place) is \(bytes) bytes, over the document limit of \(maximumDocumentBytes)")
            return nil
        case .text(let text):
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return nil }
            switch JSONTextField.extract(field, from: text) {
            case .text(let bytes): return SourceDocument(bytes: bytes, file: fileIndex, line: number)
            case .missing:
                problems.add(
                    .missingField, "\(input.name): \(place) has no field \"\(String(decoding: field, as: UTF8.self))\"")
            case .notString(let kind):
                problems.add(
                    .notString,
                    "\(input.name): \(place): field \"\(String(decoding: field, as: UTF8.self))\" is a \(kind), not a string"
                )
            case .invalid(let reason):
                problems.add(.notJSON, "\(input.name): \(place) is not a JSON object: \(reason)")
            }
            return nil
        }
    }
}

/// A text file as one document, handed out in pieces of at most `limit` bytes. A piece ends
/// after a line break (`\n` or `\r\n`) between two characters that are neither spaces nor
/// breaks: byte-level BPE pre-tokenizers split there anyway, so the pieces give the ids the
/// whole file would (SentencePiece may add a word-start mark at a piece's start).
final class TextPieces {
    let stream: any ByteStream
    let limit: Int
    let file: String
    let problems: ProblemLog
    /// The reader's buffer that reads go through.
    private let chunk: UnsafeMutableRawBufferPointer
    private var held: [UInt8] = []
    private var line = 1
    private var done = false
    /// Pieces returned so far.
    private(set) var handedOut = 0

    init(
        _ stream: any ByteStream, limit: Int, file: String, problems: ProblemLog, buffer: UnsafeMutableRawBufferPointer
    ) {
        chunk = buffer
        self.stream = stream
        self.limit = limit
        self.file = file
        self.problems = problems
    }

    func next() throws -> (bytes: [UInt8], line: Int, continues: Bool)? {
        guard !done else { return nil }
        handedOut += 1
        while held.count <= limit {
            let n = try stream.read(into: chunk)
            if n == 0 {
                done = true
                let piece = held
                held = []
                return (piece, line, false)
            }
            held += UnsafeRawBufferPointer(rebasing: chunk[0..<n])
        }
        // Past the limit: cut at the last safe line break within it.
        var cut = -1
        var i = min(limit - 1, held.count - 2)
        while i >= 1 {
            if held[i] == 0x0A, Self.wordAt(held, i + 1),
                Self.wordBefore(held, i) || (held[i - 1] == 0x0D && Self.wordBefore(held, i - 1))
            {
                cut = i + 1
                break
            }
            i -= 1
        }
        guard cut > 0 else {
            problems.add(
                .tooLong,
                "\(file): from line \(line) on, \(limit) bytes hold no line break to cut the text at; the rest of the file is skipped"
            )
            try abandon()
            // Close the document only if part of it went out.
            return handedOut > 1 ? ([], line, false) : nil
        }
        let piece = Array(held[0..<cut])
        held.removeFirst(cut)
        let startLine = line
        line += piece.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        return (piece, startLine, true)
    }

    /// Skips the rest of the file.
    func abandon() throws {
        done = true
        held = []
        while try stream.read(into: chunk) > 0 {}
    }

    /// Whether the character starting at byte `start` is neither a space nor a line break.
    static func wordAt(_ b: [UInt8], _ start: Int) -> Bool {
        guard start < b.count else { return false }
        if b[start] < 0x80 { return b[start] > 0x20 && b[start] < 0x7F }
        let end = min(b.count, start + 4)
        guard let s = String(decoding: b[start..<end], as: UTF8.self).unicodeScalars.first else { return false }
        return s != "\u{FFFD}" && !s.properties.isWhitespace
    }

    /// Whether the character ending just before byte `end` is neither a space nor a line break.
    static func wordBefore(_ b: [UInt8], _ end: Int) -> Bool {
        var s = end - 1
        guard s >= 0 else { return false }
        while s > 0 && end - s < 4 && b[s] & 0xC0 == 0x80 { s -= 1 }
        return wordAt(Array(b[s..<end]), 0)
    }
}
