import CBLAS
import Foundation
import QKernels

/// Which OpenBLAS kernel family runs the GEMMs.
///
/// OpenBLAS picks kernels from the CPU model; on processors it does not know (virtual
/// machines often report a generic model) it falls back to decade-old SSE3 kernels that run
/// 4–6× slower than the CPU allows. OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads,
/// so ``ensureFastKernels(arguments:)`` sets the variable from the CPU's features (and the
/// threads' spin time) and re-executes the program once, before anything else has run.
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

    /// How long OpenBLAS's idle threads spin before sleeping (`OPENBLAS_THREAD_TIMEOUT`: 2^n
    /// cycles; OpenBLAS's default, 2^28, is about 0.1 s). Its threads then sleep almost at once
    /// after each GEMM instead of spinning on the cores that oneDNN's int8 GEMM and qtrain's own
    /// kernels run on next: the int8 GEMM's rate right after an SGEMM doubles and a 130M int8-int8
    /// step is 8–13% shorter (README, "Low-precision compute").
    static let threadTimeout = "4"

    /// Re-executes the current program once, before anything else has run, with what OpenBLAS
    /// reads only when it loads: `OPENBLAS_CORETYPE` when it fell back to generic kernels on a
    /// CPU that supports better ones, and ``threadTimeout``. A variable already set (by the user
    /// or by the first pass) is kept, so it cannot loop.
    public static func ensureFastKernels(arguments: [String]) {
        let environment = ProcessInfo.processInfo.environment
        var changed = false
        if environment["OPENBLAS_CORETYPE"] == nil, let core = recommended {
            setenv("OPENBLAS_CORETYPE", core, 1)
            changed = true
        }
        if environment["OPENBLAS_THREAD_TIMEOUT"] == nil {
            setenv("OPENBLAS_THREAD_TIMEOUT", threadTimeout, 1)
            changed = true
        }
        guard changed else { return }
        let exe = "/proc/self/exe"
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv(exe, &argv)
        // execv only returns on failure; carry on with OpenBLAS as it is.
    }
}
