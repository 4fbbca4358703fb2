import CMPI
import Foundation

/// Facts about the Open MPI library and launch environment, available before MPI_Init.
public enum MPILibrary {
    /// The library's version line, e.g. `Open MPI v4.1.4, …`.
    public static func version() -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        // Open MPI counts the terminating NUL in `length`; stop at the first NUL so that logs stay text.
        let bytes = buffer.prefix(Int(length)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n").first.map(String.init) ?? text
    }

    /// Whether this process was started by `mpirun`/`srun` as one rank of several (Open MPI
    /// and PMI set these variables).
    public static var launchedAsRank: Bool {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"] where env[key] != nil { return true }
        return false
    }
}
