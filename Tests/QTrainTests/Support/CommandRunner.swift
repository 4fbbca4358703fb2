import Foundation
import XCTest

@testable import QTrainData

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
    static func run(
        _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
        timeout: TimeInterval = 300
    ) throws -> CommandResult {
        try runProgram(url, arguments, in: directory, environment: environment, timeout: timeout)
    }
}

/// Runs a program and waits for it; kills it after `timeout` seconds.
func runProgram(
    _ program: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
    timeout: TimeInterval = 300
) throws -> CommandResult {
    try SpawnedProgram(program, arguments, in: directory, environment: environment).wait(timeout: timeout)
}

/// A program started in the background with `posix_spawn`.
///
/// Output goes to temporary files rather than pipes, and the child is reaped here with
/// `waitpid`, so a daemon the program leaves behind (holding its output open) or a missed
/// SIGCHLD can never hang a test.
final class SpawnedProgram {
    /// The child's process id.
    let pid: pid_t
    private let files: URL
    private var status: Int32?

    init(_ program: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]) throws {
        files = FileManager.default.temporaryDirectory.appendingPathComponent("qtrain-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(
            &actions, 1, files.appendingPathComponent("out").path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(
            &actions, 2, files.appendingPathComponent("err").path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // A working directory goes through the shell (posix_spawn's chdir action is a GNU extension).
        var command = [program.path] + arguments
        if let directory {
            command = ["/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", directory.path] + command
        }
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command[0], &actions, nil, argv, envp)
        guard rc == 0 else {
            try? FileManager.default.removeItem(at: files)
            throw NSError(
                domain: "runProgram", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot run \(program.path)"]
            )
        }
        self.pid = pid
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = reap(blocking: true)
        }
        try? FileManager.default.removeItem(at: files)
    }

    /// Whether the program is still running (reaping it once it has ended).
    var isRunning: Bool { status == nil && !reap(blocking: false) }

    /// Sends `signal` to the program.
    func send(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the program to end (at most `timeout` seconds, then SIGTERM and SIGKILL)
    /// and returns its exit status as a shell reports it (the code, or 128 + the signal) and output.
    func wait(timeout: TimeInterval) -> CommandResult {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() > deadline {
                send(SIGTERM)
                usleep(500_000)
                send(SIGKILL)
                _ = reap(blocking: true)
                break
            }
            usleep(20_000)
        }
        let s = status ?? 0
        let code: Int32 = (s & 0x7f) == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
        let out = (try? String(contentsOf: files.appendingPathComponent("out"), encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: files.appendingPathComponent("err"), encoding: .utf8)) ?? ""
        return CommandResult(status: code, stdout: out, stderr: err)
    }

    /// Collects the exit status if the program has ended; returns whether it has.
    private func reap(blocking: Bool) -> Bool {
        if status != nil { return true }
        var s: Int32 = 0
        guard waitpid(pid, &s, blocking ? 0 : WNOHANG) == pid else { return false }
        status = s
        return true
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
func makeSyntheticData(
    in dir: URL, documents: Int = 12, tokenizer: any Tokenizer = ByteTokenizer(), name: String = "data"
) throws -> URL {
    var docs: [Document] = []
    for i in 0..<documents {
        var text = ""
        for j in 0..<(60 + i) { text += "the \(["cat", "dog", "bird"][j % 3]) sat on the mat number \(j % 10). " }
        docs.append(Document(name: String(format: "doc%03d.txt", i), text: text))
    }
    let out = dir.appendingPathComponent(name)
    _ = try DataPreparer.prepare(
        documents: docs, source: "synthetic", tokenizer: tokenizer, valEvery: 4,
        to: out, log: { _ in })
    return out
}
