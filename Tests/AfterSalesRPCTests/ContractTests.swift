import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import Testing

/// The repository root, found from this file's path so the tests run from any directory.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs a program and returns its exit status, standard output and standard error.
func run(_ executable: String, _ arguments: [String], in directory: URL = repositoryRoot) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [executable] + arguments
    process.currentDirectoryURL = directory
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

func protoFiles() throws -> [String] {
    let root = repositoryRoot.appendingPathComponent("proto").resolvingSymlinksInPath()
    let files = FileManager.default.enumerator(atPath: root.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".proto") }
    return files.sorted()
}

@Suite struct ContractTests {
    @Test func generatedSwiftMatchesTheProtoSources() throws {
        let result = try run("bash", ["scripts/proto-digest"])
        #expect(result.status == 0, "scripts/proto-digest failed: \(result.err)")
        let current = result.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(current == protoSourceDigest,
                "proto/ changed since Sources/AfterSalesProto was generated: run scripts/generate-proto and commit the result")
    }

    @Test func methodTableMatchesTheServicesInTheProto() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("aftersales-\(UUID()).pb")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try run("protoc", ["-I", "proto", "--include_imports", "--descriptor_set_out=\(out.path)"] + protoFiles())
        #expect(result.status == 0 && result.err.isEmpty, "protoc --descriptor_set_out: \(result.err)")
        // The method options (mutating, roles) are read through the generated extensions.
        let set = try Google_Protobuf_FileDescriptorSet(serializedBytes: Data(contentsOf: out), extensions: Aftersales_V1_Options_Extensions)

        var declared: [String: (input: String, output: String)] = [:]
        for file in set.file {
            for service in file.service {
                for method in service.method {
                    let name = "\(file.package).\(service.name)/\(method.name)"
                    declared[name] = (String(method.inputType.dropFirst()), String(method.outputType.dropFirst()))
                    let generated = try #require(Method(fullName: name))
                    #expect(generated.isMutating == method.options.Aftersales_V1_mutating, "\(name) (mutating)")
                    #expect(generated.roles.map(\.rawValue).sorted()
                            == method.options.Aftersales_V1_roles.map { "\($0)" }.map(roleName).sorted(), "\(name) (roles)")
                }
            }
        }
        #expect(!declared.isEmpty)
        #expect(Set(declared.keys) == Set(Method.allCases.map(\.fullName)),
                "Method table and proto services differ: proto-only \(Set(declared.keys).subtracting(Method.allCases.map(\.fullName))), table-only \(Set(Method.allCases.map(\.fullName)).subtracting(declared.keys))")
        for method in Method.allCases {
            guard let types = declared[method.fullName] else { continue }
            #expect(method.requestType.protoMessageName == types.input, "\(method.fullName) request type")
            #expect(method.responseType.protoMessageName == types.output, "\(method.fullName) response type")
        }
    }

    @Test func protoCompilesForPythonWithoutWarnings() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("aftersales-py-\(UUID())")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try run("protoc", ["-I", "proto", "--python_out=\(out.path)"] + protoFiles())
        #expect(result.status == 0)
        #expect(result.err.isEmpty, "protoc warned: \(result.err)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("aftersales/v1/case_service_pb2.py").path))
    }

    @Test func statusCodesHaveGRPCNumbersAndNames() {
        let expected = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                        "UNAUTHENTICATED"]
        for (number, name) in expected.enumerated() {
            #expect(StatusCode(rawValue: number)?.name == name)
        }
    }

    @Test func methodLookupByShortAndFullName() {
        #expect(Method.named("CreateCase") == .createCase)
        #expect(Method.named("createcase") == .createCase)
        #expect(Method.named("aftersales.v1.AdminService/Ping") == .ping)
        #expect(Method.named("Nope") == nil)
        #expect(Method.createCase.isMutating && !Method.getCase.isMutating)
        #expect(Method.createCase.serviceName == "aftersales.v1.CaseService")
        #expect(Method.ping.methodName == "Ping")
    }
}

/// consumerGateway (a proto enum case as Swift prints it) → consumer-gateway.
func roleName(_ swiftCase: String) -> String {
    swiftCase.map { $0.isUppercase ? "-" + $0.lowercased() : String($0) }.joined()
}
