// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "LSTMKit",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "LSTMKit", targets: ["LSTMKit"]),
        .executable(name: "lstm", targets: ["lstm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Documentation only (`swift package generate-documentation`); nothing is linked from it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The innermost kernels, in C for per-function target attributes (AVX2 + FMA) without unsafe flags.
        .target(name: "_LSTMKernels"),
        // MPI loaded at run time (dlopen), so nothing about MPI is needed to build or to run a single process.
        .target(name: "_LSTMMPI", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        .target(name: "LSTMKit", dependencies: ["_LSTMKernels", "_LSTMMPI"]),
        .executableTarget(
            name: "lstm",
            dependencies: [
                "LSTMKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            resources: [.copy("Resources/default-corpus.txt")]
        ),
        .testTarget(name: "LSTMKitTests", dependencies: ["LSTMKit"], exclude: ["Fixtures"]),
        .testTarget(name: "LSTMCLITests", dependencies: ["LSTMKit", "lstm"]),
    ],
    swiftLanguageModes: [.v6]
)
