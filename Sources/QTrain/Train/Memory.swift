import Foundation

/// Reads the process's memory use and formats the per-category table of a run.
public enum MemoryReport {
    /// Resident set size now (VmRSS), in bytes.
    public static func residentBytes() -> Int { statusField("VmRSS") }
    /// Peak resident set size so far (VmHWM), in bytes.
    public static func peakResidentBytes() -> Int { statusField("VmHWM") }

    private static func statusField(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return (digits.first ?? 0) * 1024
        }
        return 0
    }

    /// Everything but activations, per parameter: the number the paper's memory claim is about.
    public static func bytesPerParameter(_ ledger: MemoryLedger, parameters: Int) -> Double {
        let held = MemoryCategory.allCases.filter { $0 != .activations }.reduce(0) { $0 + ledger.bytes($1) }
        return Double(held) / Double(max(parameters, 1))
    }

    /// The start-of-run table, from the ledger's real allocations.
    public static func table(_ ledger: MemoryLedger, parameters: Int, title: String) -> String {
        var lines = ["memory per rank (\(title)), \(formatCount(parameters)) parameters:"]
        func row(_ name: String, _ b: Int) -> String {
            "  " + name.padding(toLength: 12, withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, 10 - formatBytes(b).count)) + formatBytes(b)
                + String(format: "  %8.3f", Double(b) / Double(max(parameters, 1)))
        }
        lines.append("  category         bytes   B/param")
        for c in MemoryCategory.allCases { lines.append(row(c.rawValue, ledger.bytes(c))) }
        lines.append(row("total", ledger.totalBytes))
        lines.append(String(format: "  without activations: %.3f B/param", bytesPerParameter(ledger, parameters: parameters)))
        return lines.joined(separator: "\n")
    }
}

/// 1.23 GB style.
public func formatBytes(_ b: Int) -> String {
    let v = Double(b)
    if v >= 1e9 { return String(format: "%.2f GB", v / 1e9) }
    if v >= 1e6 { return String(format: "%.1f MB", v / 1e6) }
    if v >= 1e3 { return String(format: "%.1f kB", v / 1e3) }
    return "\(b) B"
}

/// 134.1M style.
public func formatCount(_ n: Int) -> String {
    let v = Double(n)
    if v >= 1e9 { return String(format: "%.2fB", v / 1e9) }
    if v >= 1e6 { return String(format: "%.1fM", v / 1e6) }
    if v >= 1e3 { return String(format: "%.1fk", v / 1e3) }
    return "\(n)"
}

/// 3m12s style.
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}
