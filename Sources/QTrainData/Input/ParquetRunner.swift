import Foundation
import QTrainCore

/// Reads Parquet files through pyarrow in a Python helper process that writes one column as
/// JSON Lines (`{"COLUMN": …}`, row by row, a record batch at a time) to a pipe. No Swift or C
/// Parquet reader ships with Debian; pyarrow is PyPI's. When the system's Python lacks it,
/// it is installed once into the cache (`pip install --target`), nothing into the system.
public final class ParquetRunner {
    let cache: URL
    let log: (String) -> Void
    private var environment: [String: String]?
    private var messageFiles: [ObjectIdentifier: URL] = [:]

    public init(cache: URL, log: @escaping (String) -> Void) {
        self.cache = cache
        self.log = log
    }

    static let script = """
        import json, sys
        try:
            import pyarrow.parquet as pq
        except ImportError:
            sys.exit(17)
        path, column = sys.argv[1], sys.argv[2]
        try:
            table = pq.ParquetFile(path)
        except Exception as error:
            sys.stderr.write(str(error).splitlines()[0] if str(error) else type(error).__name__)
            sys.exit(18)
        names = table.schema_arrow.names
        if column not in names:
            sys.stderr.write(", ".join(names))
            sys.exit(19)
        out = sys.stdout
        for batch in table.iter_batches(columns=[column], batch_size=256):
            for value in batch.column(0).to_pylist():
                out.write(json.dumps({column: value}))
                out.write("\\n")
        out.flush()
        """

    var python: String { ProcessInfo.processInfo.environment["QTRAIN_PYTHON"] ?? "python3" }

    /// The environment in which `python` imports pyarrow, installing it into the cache if needed.
    func pythonEnvironment() throws -> [String: String] {
        if let environment { return environment }
        var env = ProcessInfo.processInfo.environment
        let target = cache.appendingPathComponent("python-packages")
        func imports() -> Bool {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [python, "-c", "import pyarrow.parquet"]
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { return false }
            p.waitUntilExit()
            return p.terminationStatus == 0
        }
        env["PYTHONPATH"] = ([target.path] + (env["PYTHONPATH"].map { [$0] } ?? [])).joined(separator: ":")
        if !imports() {
            log("reading Parquet needs pyarrow: installing it with pip into \(target.path)")
            let result = try runProcess(
                python,
                ["-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", target.path, "pyarrow"])
            guard result.status == 0, imports() else {
                throw QTrainError.data(
                    "reading Parquet needs pyarrow, and pip could not install it: \(result.output.split(separator: "\n").last ?? "no output")",
                    hint:
                        "install pyarrow for \(python) (pip install pyarrow), or set QTRAIN_PYTHON to a Python that has it"
                )
            }
        }
        environment = env
        return env
    }

    /// Starts the helper on `input`; its standard output is the JSON Lines stream.
    func start(_ input: InputFile, column: String) throws -> (Process, any ByteStream) {
        let env = try pythonEnvironment()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", Self.script, input.url.path, column]
        process.environment = env
        // Its messages go to a file: a pipe nobody reads while rows stream could fill and stall it.
        let out = Pipe()
        let messages = FileManager.default.temporaryDirectory.appendingPathComponent(
            "qtrain-parquet-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).txt")
        FileManager.default.createFile(atPath: messages.path, contents: nil)
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: messages)
        messageFiles[ObjectIdentifier(process)] = messages
        do {
            try process.run()
        } catch {
            throw QTrainError(.io, "cannot run \(python): \(error.localizedDescription)", hint: "install Python 3")
        }
        return (process, PipeByteStream(out.fileHandleForReading.fileDescriptor, handle: out.fileHandleForReading))
    }

    /// Waits for the helper; throws with what it said if it failed.
    func finish(_ process: Process, file: InputFile) throws {
        process.waitUntilExit()
        var said = ""
        if let messages = messageFiles.removeValue(forKey: ObjectIdentifier(process)) {
            said = String(decoding: (try? Data(contentsOf: messages)) ?? Data(), as: UTF8.self)
            try? FileManager.default.removeItem(at: messages)
        }
        switch process.terminationStatus {
        case 0: return
        case 18: throw QTrainError.data("\(file.name) is not a Parquet file pyarrow can read: \(said)")
        case 19:
            throw QTrainError.data(
                "\(file.name) has no column \"\(process.arguments?.last ?? "")\" (its columns: \(said))",
                hint: "choose the column with --text-field")
        default:
            throw QTrainError.data(
                "reading \(file.name) with pyarrow failed (exit \(process.terminationStatus)): \(said.split(separator: "\n").last ?? "")"
            )
        }
    }
}

/// The read end of a pipe as a byte stream.
final class PipeByteStream: ByteStream {
    let fd: Int32
    let handle: FileHandle
    private(set) var consumed = 0

    init(_ fd: Int32, handle: FileHandle) {
        self.fd = fd
        self.handle = handle
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Foundation.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR {
                throw QTrainError(.io, "cannot read from the Parquet reader: \(String(cString: strerror(errno)))")
            }
        }
    }
}
