// swift-tools-version:6.1
// protoc-gen-aftersales: generates the method table and the typed client methods from the
// services in proto/ and their options (proto/aftersales/v1/options.proto). Built and run
// by scripts/generate-proto only; its output is committed, so builds never need it.
import PackageDescription

let package = Package(
    name: "protoc-gen-aftersales",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        .executableTarget(
            name: "protoc-gen-aftersales",
            dependencies: [.product(name: "SwiftProtobufPluginLibrary", package: "swift-protobuf")]
        ),
    ]
)
