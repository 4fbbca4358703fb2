import Foundation

/// Wall time per kind of operation of the forward and backward passes (`bench --profile`).
/// Off unless enabled; when on, each timed region costs two clock reads.
public final class OpProfile: @unchecked Sendable {
    public static let shared = OpProfile()
    public var enabled = false
    private var seconds: [String: Double] = [:]
    private var order: [String] = []

    /// Runs `body`, adding its duration to `name` when profiling.
    @inline(__always)
    public func time<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        guard enabled else { return try body() }
        let t = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
        if seconds[name] == nil { order.append(name) }
        seconds[name, default: 0] += dt
        return r
    }

    public func reset() {
        seconds.removeAll()
        order.removeAll()
    }

    /// Seconds per operation, in first-seen order, divided by `steps`.
    public func report(steps: Int) -> [(String, Double)] { order.map { ($0, seconds[$0]! / Double(max(steps, 1))) } }
}
