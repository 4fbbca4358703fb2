// swift-tools-version:6.0
import PackageDescription

// Release builds keep Swift's overflow and bounds traps: measured against -Ounchecked they cost
// nothing visible (the hot loops run in C or on unsafe buffers), and a crafted input then traps
// instead of corrupting memory. QTRAIN_UNCHECKED=1 builds without them.
let swiftSettings: [SwiftSetting] = Context.environment["QTRAIN_UNCHECKED"] != nil
    ? [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))] : []

/// A layer of the library: it may use only the targets it names, which sit below it (README,
/// "How it is built"); an upward reference does not compile.
func layer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .target(name: name, dependencies: dependencies, path: "Sources/\(name)", swiftSettings: swiftSettings)
}

let package = Package(
    name: "qtrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "qtrain-dist", targets: ["qtrain-dist"]),
        .library(name: "QTrain", targets: [
            "QTrainCore", "QTrainData", "QTrainWeights", "QTrainModel", "QTrainOptim", "QTrainDist",
            "QTrainImport", "QTrainCheckpoint", "QTrainTraining", "QTrainExport", "QTrainInference", "QTrainBench",
            "QTrainReport", "QTrainPNG", "QTrainMPI",
        ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        // The runtime only: the generated code is committed (tools/generate_protobuf.sh), no build plugin.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // Open MPI through pkg-config `ompi-c`; shim.h wraps the handle macros Swift cannot import.
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // OpenBLAS through pkg-config `openblas`.
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // librsvg and cairo through pkg-config, to draw the report's SVG as a PNG.
        .systemLibrary(
            name: "CRSVG", path: "Sources/CRSVG", pkgConfig: "librsvg-2.0",
            providers: [.apt(["librsvg2-dev", "fonts-dejavu-core"])]),
        // zlib and libzstd, to stream compressed corpora into `prepare`.
        .systemLibrary(
            name: "CCompression", path: "Sources/CCompression", pkgConfig: "libzstd",
            providers: [.apt(["zlib1g-dev", "libzstd-dev"])]),
        // Vectorised hot loops (Philox, stochastic rounding, unpacking) with per-CPU clones.
        .target(name: "QKernels", path: "Sources/QKernels",
                cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off", "-fno-math-errno"])]),

        // The layers, bottom to top (README, "How it is built"; tools/check_layers.py keeps the two equal).
        layer("QTrainCore", ["CBLAS", "QKernels", .product(name: "Crypto", package: "swift-crypto")]),
        layer("QTrainData", ["QTrainCore", "CCompression", "ZIPFoundation", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        layer("QTrainWeights", ["QTrainCore", "QKernels"]),
        layer("QTrainModel", ["QTrainWeights", "QTrainCore", "QKernels"]),
        layer("QTrainOptim", ["QTrainWeights", "QTrainCore", "QKernels"]),
        layer("QTrainDist", ["QTrainOptim", "QTrainWeights", "QTrainCore", "QKernels"]),
        // Pretrained models (GGUF files, Hugging Face folders) read as qtrain's architecture.
        layer("QTrainImport", ["QTrainData", "QTrainWeights", "QTrainCore"]),
        layer("QTrainCheckpoint", ["QTrainModel", "QTrainDist", "QTrainOptim", "QTrainData", "QTrainWeights", "QTrainCore",
                                   "QKernels", .product(name: "Yams", package: "Yams")]),
        layer("QTrainTraining", ["QTrainImport", "QTrainCheckpoint", "QTrainModel", "QTrainDist", "QTrainOptim", "QTrainData",
                                 "QTrainWeights", "QTrainCore", "QKernels"]),
        layer("QTrainExport", ["QTrainCheckpoint", "QTrainData", "QTrainWeights", "QTrainCore", "QKernels"]),
        layer("QTrainInference", ["QTrainCheckpoint", "QTrainModel", "QTrainData", "QTrainCore"]),
        layer("QTrainBench", ["QTrainTraining", "QTrainCheckpoint", "QTrainModel", "QTrainDist", "QTrainOptim",
                              "QTrainWeights", "QTrainCore", "QKernels"]),
        layer("QTrainReport", ["QTrainTraining", "QTrainCheckpoint", "QTrainCore"]),
        // SVG to PNG through librsvg and cairo, kept out of every other target.
        layer("QTrainPNG", ["QTrainCore", "CRSVG"]),
        // The Open MPI Communicator: the only importer of CMPI.
        .target(name: "QTrainMPI", dependencies: ["QTrainCore", "QKernels", "CMPI"], path: "Sources/QTrainMPI"),

        .executableTarget(
            name: "qtrain-dist",
            dependencies: [
                "QTrainCore", "QTrainData", "QTrainWeights", "QTrainModel", "QTrainDist", "QTrainImport",
                "QTrainCheckpoint", "QTrainTraining", "QTrainExport", "QTrainInference", "QTrainBench", "QTrainReport",
                "QTrainPNG", "QTrainMPI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/qtrain-dist"),
        // The file-format fuzzer (launch/fuzz.sh; a short run is part of the tests).
        .executableTarget(
            name: "qtrain-fuzz",
            dependencies: [
                "QTrainCore", "QTrainData", "QTrainWeights", "QTrainModel", "QTrainImport", "QTrainCheckpoint",
                "QTrainTraining",
            ],
            path: "Sources/qtrain-fuzz"),
        .testTarget(
            name: "QTrainTests",
            dependencies: [
                "QTrainCore", "QTrainData", "QTrainWeights", "QTrainModel", "QTrainOptim", "QTrainDist",
                "QTrainImport", "QTrainCheckpoint", "QTrainTraining", "QTrainExport", "QTrainInference", "QTrainBench",
                "QTrainReport", "QTrainPNG", "QTrainMPI",
            ],
            path: "Tests/QTrainTests", resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
