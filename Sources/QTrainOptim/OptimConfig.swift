import QTrainCore

/// Learning-rate schedule shape (`optim.schedule`).
public enum ScheduleKind: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Linear warm-up, then cosine decay to `min_lr_ratio · lr` at the last step.
    case cosine
    /// Linear warm-up, then constant.
    case constant
}

/// The `optim:` section. Defaults are the paper's settings for its 130M model.
public struct OptimConfig: Codable, Equatable, Sendable, ConfigSection {
    /// Peak learning rate.
    public var lr = 5e-4
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var eps = 1e-6
    /// Decoupled weight decay, applied to weight matrices only (not to RMSNorm gains).
    public var weightDecay = 0.01
    /// Global gradient-norm clip; 0 switches clipping off.
    public var gradClip = 1.0
    /// Linear warm-up steps.
    public var warmupSteps = 2000
    public var schedule: ScheduleKind = .cosine
    /// Final learning rate as a fraction of `lr` (cosine).
    public var minLRRatio = 0.0
    /// Storage of the moments; the update itself always computes in FP32.
    public var stateDtype: StateType = .fp32
    /// Storage of the gradients; clipping and the update read them widened to FP32.
    public var gradDtype: GradientType = .fp32

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case lr, beta1, beta2, eps, weightDecay = "weight_decay", gradClip = "grad_clip"
        case warmupSteps = "warmup_steps", schedule, minLRRatio = "min_lr_ratio", stateDtype = "state_dtype"
        case gradDtype = "grad_dtype"
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.lr, \.lr), .init(.beta1, \.beta1), .init(.beta2, \.beta2), .init(.eps, \.eps),
        .init(.weightDecay, \.weightDecay), .init(.gradClip, \.gradClip), .init(.warmupSteps, \.warmupSteps),
        .init(.schedule, \.schedule), .init(.minLRRatio, \.minLRRatio), .init(.stateDtype, \.stateDtype),
        .init(.gradDtype, \.gradDtype)
    ]

    package func validate(path: String = "optim") throws {
        let check = ConfigCheck(path: path)
        try check.require(lr > 0 && lr < 1, "lr", lr, "between 0 and 1")
        try check.require(beta1 >= 0 && beta1 < 1, "beta1", beta1, "in [0, 1)")
        try check.require(beta2 >= 0 && beta2 < 1, "beta2", beta2, "in [0, 1)")
        try check.require(eps > 0 && eps < 1, "eps", eps, "between 0 and 1")
        try check.require(weightDecay >= 0 && weightDecay < 1, "weight_decay", weightDecay, "in [0, 1)")
        try check.require(gradClip >= 0, "grad_clip", gradClip, "0 (off) or positive")
        try check.require(warmupSteps >= 0, "warmup_steps", warmupSteps, "0 or more")
        try check.require(minLRRatio >= 0 && minLRRatio <= 1, "min_lr_ratio", minLRRatio, "in [0, 1]")
    }
}
