import Foundation
import QTrainCore

/// Reads the process's memory use and formats the per-category table of a run.
public enum MemoryReport {
    /// Resident set size now (VmRSS), in bytes.
    public static func residentBytes() -> Int { ProcessMemory.residentBytes() }
    /// Peak resident set size so far (VmHWM), in bytes.
    public static func peakResidentBytes() -> Int { ProcessMemory.peakResidentBytes() }

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
        lines.append(
            String(format: "  without activations: %.3f B/param", bytesPerParameter(ledger, parameters: parameters)))
        return lines.joined(separator: "\n")
    }
}
