import Foundation

/// This process's memory as the kernel counts it (`/proc/self/status`).
public enum ProcessMemory {
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
}
