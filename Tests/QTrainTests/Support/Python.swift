import Foundation

/// The Python interpreter of the test oracles (launch/test.sh sets QTRAIN_TEST_PYTHON to a
/// virtual environment with safetensors, tokenizers, numpy and sentencepiece), or nil.
enum TestPython {
    static var path: String? {
        let p = ProcessInfo.processInfo.environment["QTRAIN_TEST_PYTHON"] ?? "/usr/bin/python3"
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }

    /// Whether the interpreter can import all of `modules`.
    static func has(_ modules: [String]) -> Bool {
        guard let path else { return false }
        let r = try? runProgram(
            URL(fileURLWithPath: path), ["-c", "import " + modules.joined(separator: ", ")], timeout: 120)
        return r?.status == 0
    }

    /// Runs `script` with `arguments`; returns standard output.
    static func run(_ script: String, _ arguments: [String] = []) throws -> CommandResult {
        try runProgram(URL(fileURLWithPath: path!), ["-c", script] + arguments, timeout: 600)
    }
}
