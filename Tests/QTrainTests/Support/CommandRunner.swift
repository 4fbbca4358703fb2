import Foundation
import XCTest
@testable import QTrain

/// Runs the built `qtrain-dist` (next to the test bundle) and captures its output.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum QTrainBinary {
    /// The executable built alongside the tests.
    static var url: URL {
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent()
        for dir in [bundleDir, URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("qtrain-dist")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return URL(fileURLWithPath: repositoryFile(".build/release/qtrain-dist"))
    }

    /// Runs `qtrain-dist arguments…` in `directory` and waits (at most `timeout` seconds).
    @discardableResult
    static func run(_ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
                    timeout: TimeInterval = 300) throws -> CommandResult {
        try runProgram(url, arguments, in: directory, environment: environment, timeout: timeout)
    }
}

/// Runs a program and waits for it; kills it after `timeout` seconds.
func runProgram(_ program: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
                timeout: TimeInterval = 300) throws -> CommandResult {
    let p = Process()
    p.executableURL = program
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = directory }
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let outData = DataBox(), errData = DataBox()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
        p.terminate()
        usleep(200_000)
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }
    p.waitUntilExit()
    // A daemon the program started may hold its output open; do not wait for it for ever.
    _ = group.wait(timeout: .now() + 10)
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                         stderr: String(decoding: errData.data, as: UTF8.self))
}

/// Output collected by a reader thread.
private final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    var data: Data {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set { lock.lock(); value = newValue; lock.unlock() }
    }
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("qtrain-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A small synthetic prepared data directory (byte tokenizer, a repetitive text so that a
/// model can learn it quickly).
func makeSyntheticData(in dir: URL, documents: Int = 12) throws -> URL {
    var docs: [Document] = []
    for i in 0..<documents {
        var text = ""
        for j in 0..<(60 + i) { text += "the \(["cat", "dog", "bird"][j % 3]) sat on the mat number \(j % 10). " }
        docs.append(Document(name: String(format: "doc%03d.txt", i), text: text))
    }
    let out = dir.appendingPathComponent("data")
    _ = try DataPreparer.prepare(documents: docs, source: "synthetic", tokenizer: ByteTokenizer(), valEvery: 4,
                                       to: out, log: { _ in })
    return out
}
