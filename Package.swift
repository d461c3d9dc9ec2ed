// swift-tools-version:6.1
import PackageDescription

// The generated message types and the engine's `Case` keep their fields in class-backed
// storage, and every field access pays a dynamic exclusivity check (about a fifth of the
// daemon's instructions in callgrind). Release builds of the message, engine and daemon
// code skip those checks; debug builds, and so every test, keep them.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

// Layout: proto/ is the contract, Sources/ the shared libraries, daemon/ the daemon,
// clients/ the clients, Tests/ the tests (one target per library).
let package = Package(
    name: "aftersales",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "aftersalesd", targets: ["aftersalesd"]),
        .executable(name: "aftersales-probe", targets: ["aftersales-probe"]),
        .library(name: "AfterSalesClient", targets: ["AfterSalesClient"]),
        .library(name: "CaseEngine", targets: ["CaseEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: shared libraries
        .systemLibrary(
            name: "CZeroMQ",
            path: "Sources/CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .systemLibrary(
            name: "CSodium",
            path: "Sources/CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // PostgreSQL for cluster mode (journal, snapshots, shard ownership): libpq through a
        // system library, and a small synchronous Swift layer over it.
        .systemLibrary(
            name: "CLibPQ",
            path: "Sources/CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(name: "Postgres", dependencies: ["CLibPQ"]),
        // CRC-32C with the CPU's instruction where there is one (Storage/CRC32C.swift).
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),
        .target(
            name: "AfterSalesProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "AfterSalesRPC",
            dependencies: [
                "AfterSalesProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "CaseEngine",
            dependencies: [
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: hotPathSettings
        ),

        // MARK: daemon
        .target(
            name: "AfterSalesDaemon",
            dependencies: [
                "CaseEngine", "AfterSalesRPC", "AfterSalesProto", "ZeroMQ", "CSodium", "Postgres", "CCRC32C",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            path: "daemon/Sources/AfterSalesDaemon",
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "aftersalesd",
            dependencies: [
                "AfterSalesDaemon", "CaseEngine", "AfterSalesRPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "daemon/Sources/aftersalesd"
        ),

        // MARK: clients
        .target(
            name: "AfterSalesClient",
            dependencies: [
                "AfterSalesRPC", "AfterSalesProto", "ZeroMQ",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "clients/swift/AfterSalesClient"
        ),
        .executableTarget(
            name: "aftersales-probe",
            dependencies: [
                "AfterSalesClient", "AfterSalesRPC", "AfterSalesProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "clients/swift/aftersales-probe"
        ),

        // MARK: benchmarks
        .executableTarget(
            name: "aftersales-bench",
            dependencies: [
                "AfterSalesClient", "AfterSalesRPC", "AfterSalesProto", "AfterSalesTestSupport", "ZeroMQ", "CEpoll",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "bench/Sources/aftersales-bench"
        ),
        .systemLibrary(name: "CEpoll", path: "bench/Sources/CEpoll"),

        // MARK: tests
        // What the test targets and the benchmarks share (like swift-nio's NIOTestUtils): the
        // daemon as a process, plain sockets on it, fixture cases, the seeded generator.
        .target(
            name: "AfterSalesTestSupport",
            dependencies: ["AfterSalesRPC", "AfterSalesProto", "ZeroMQ", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tests/AfterSalesTestSupport"
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "AfterSalesTestSupport"]),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["AfterSalesDaemon", "AfterSalesProto", "AfterSalesRPC", "AfterSalesTestSupport", "Postgres",
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .testTarget(name: "AfterSalesRPCTests", dependencies: ["AfterSalesRPC", "AfterSalesProto", "AfterSalesTestSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "CaseEngineTests", dependencies: ["CaseEngine", "AfterSalesTestSupport"]),
        .testTarget(name: "DaemonTests", dependencies: ["AfterSalesDaemon", "AfterSalesRPC", "AfterSalesProto", "AfterSalesTestSupport", "CaseEngine", "ZeroMQ", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "ClientTests", dependencies: ["AfterSalesClient", "AfterSalesRPC", "AfterSalesProto", "AfterSalesTestSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    ]
)
