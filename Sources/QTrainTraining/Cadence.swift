/// When a component acts: every `every` steps (0: never by count) and after the last step.
/// Each component owns one (validation, metrics), as torchtitan's own their cadence.
public struct Cadence: Sendable, Equatable {
    public let every: Int
    public let lastStep: Int

    /// Whether the component is due after `step`.
    public func isDue(step: Int) -> Bool { (every > 0 && step % every == 0) || step == lastStep }
}
