import Foundation

/// The learning rate of a step: linear warm-up from lr/warmup to lr over `warmupSteps`,
/// then cosine decay to `minLRRatio · lr` at `totalSteps` (or constant).
public struct LearningRateSchedule: Sendable {
    public let config: OptimConfig
    public let totalSteps: Int

    public init(_ config: OptimConfig, totalSteps: Int) {
        self.config = config
        self.totalSteps = totalSteps
    }

    /// Learning rate of `step` (0-based).
    public func callAsFunction(_ step: Int) -> Double {
        let lr = config.lr, warm = config.warmupSteps
        if step < warm { return lr * Double(step + 1) / Double(warm) }
        switch config.schedule {
        case .constant:
            return lr
        case .cosine:
            let span = max(totalSteps - warm, 1)
            let progress = min(max(Double(step - warm) / Double(span), 0), 1)
            let floor = config.minLRRatio * lr
            return floor + 0.5 * (lr - floor) * (1 + cos(Double.pi * progress))
        }
    }
}
