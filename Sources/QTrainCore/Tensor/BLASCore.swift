import CBLAS
import Foundation
import QKernels

/// Which OpenBLAS kernel family runs the GEMMs.
///
/// OpenBLAS picks kernels from the CPU model; on processors it does not know (virtual
/// machines often report a generic model) it falls back to decade-old SSE3 kernels that run
/// 4–6× slower than the CPU allows. OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads,
/// so ``ensureFastKernels(arguments:)`` sets the variable from the CPU's features and
/// re-executes the program once, before anything else has run.
public enum BLASCore {
    /// OpenBLAS's name for the kernels in use, e.g. `SkylakeX`.
    public static var name: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Kernel families OpenBLAS falls back to when it does not recognise the CPU.
    static let genericCores: Set<String> = [
        "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "unknown"
    ]

    /// The family this CPU's features support, if better than what OpenBLAS chose.
    public static var recommended: String? {
        guard genericCores.contains(name) else { return nil }
        if qk_cpu_has_avx512() != 0 { return "SkylakeX" }
        if qk_cpu_has_avx2() != 0 { return "Haswell" }
        return nil
    }

    /// Re-executes the current program with `OPENBLAS_CORETYPE` set when OpenBLAS fell back
    /// to generic kernels on a CPU that supports better ones. Does nothing when the variable
    /// is already set (by the user or by the first pass), so it cannot loop.
    public static func ensureFastKernels(arguments: [String]) {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = recommended else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let exe = "/proc/self/exe"
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv(exe, &argv)
        // execv only returns on failure; carry on with the generic kernels.
    }
}
