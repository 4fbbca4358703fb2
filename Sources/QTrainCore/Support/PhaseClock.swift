import Foundation

/// Wall time of phases that run one after another, each ended by a ``mark(_:)`` (what
/// `generate --timing` reports of its start-up), counted from the clock's creation.
public final class PhaseClock {
    /// Each phase's name and seconds, in order.
    public private(set) var phases: [(name: String, seconds: Double)] = []
    private let start: UInt64
    private var last: UInt64

    public init() {
        start = DispatchTime.now().uptimeNanoseconds
        last = start
    }

    /// Ends the current phase as `name`: the time since the previous mark (or the start).
    public func mark(_ name: String) {
        let now = DispatchTime.now().uptimeNanoseconds
        phases.append((name, Double(now - last) * 1e-9))
        last = now
    }

    /// Seconds since the clock started.
    public var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
}
