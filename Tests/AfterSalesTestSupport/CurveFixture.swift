// A CURVE daemon's keys and clients file, made in a temporary directory for one test.
import Foundation
import ZeroMQ

/// The daemon's key pair and one key pair per client, with the clients file naming them.
public final class CurveFixture: @unchecked Sendable {
    public let directory: String
    public let server: CurveKeyPair
    public private(set) var clients: [String: CurveKeyPair] = [:]
    public var serverKeyFile: String { directory + "/daemon.pub" }
    public var secretKeyFile: String { directory + "/daemon.key" }
    public var clientsFile: String { directory + "/clients" }

    /// Keys for `lines` (name, role, scope words) and the clients file listing them.
    public init(_ lines: [(name: String, role: String, scope: String)]) throws {
        directory = temporaryDataDirectory() + "-keys"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        server = try CurveKeyPair.generate()
        try Data((server.publicKey + "\n").utf8).write(to: URL(fileURLWithPath: serverKeyFile))
        try Data((server.secretKey + "\n").utf8).write(to: URL(fileURLWithPath: secretKeyFile))
        chmod(secretKeyFile, 0o600)
        for line in lines { clients[line.name] = try CurveKeyPair.generate() }
        try writeClients(lines)
    }

    /// Rewrites the clients file with `lines` (keys of names not seen before are made).
    public func writeClients(_ lines: [(name: String, role: String, scope: String)]) throws {
        var text = "# NAME ROLE PUBLIC_KEY [SCOPE…]\n"
        for line in lines {
            if clients[line.name] == nil { clients[line.name] = try CurveKeyPair.generate() }
            text += "\(line.name) \(line.role) \(clients[line.name]!.publicKey) \(line.scope)\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: clientsFile))
    }

    /// What a socket needs to connect as `name`.
    public func credentials(_ name: String) -> (serverKey: String, keys: CurveKeyPair) {
        (server.publicKey, clients[name] ?? (try! CurveKeyPair.generate()))
    }

    /// `name`'s secret key as a file (mode 0600), as `aftersalesd keygen` writes it: for
    /// clients that read their key from a file (the probe, `CurveCredentials`).
    public func secretKeyFile(_ name: String) throws -> String {
        let path = directory + "/\(name).key"
        try Data((clients[name]!.secretKey + "\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        return path
    }

    /// The daemon arguments that turn CURVE on with these keys.
    public var daemonArguments: [String] { ["--curve-secret-key", secretKeyFile, "--clients", clientsFile] }
}
