/// The release of qtrain, as `qtrain-dist --version` prints it.
public enum QTrainVersion {
    public static let string = "0.13.0"
}
