// The daemon's two log formats, both one event a line on standard error with a
// millisecond UTC timestamp:
//   --log-format text  `2026-11-30T12:56:01.123Z info serving rpc=tcp://… error="a b"`
//                      (logfmt: a value is quoted when it has a space, a quote or '=')
//   --log-format json  one JSON object a line, metadata keys as fields, for log shippers
import CaseEngine
import Foundation
import Logging

/// The metadata and level every handler keeps, and the line it writes.
private protocol LineLogHandler: LogHandler {
    var label: String { get }
    func line(time: String, event: LogEvent, metadata: Logger.Metadata) -> Data?
}

extension LineLogHandler {
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new })
        guard let line = line(time: Self.timestamp(), event: event, metadata: merged) else { return }
        FileHandle.standardError.write(line)
    }

    /// e.g. 2026-11-30T12:56:01.123Z.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return ISO8601.format(Int64(spec.tv_sec) * 1_000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}

/// A swift-log handler writing one readable line per event (logfmt-style metadata).
public struct TextLogHandler: LineLogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    /// A handler for `label` (the logger's name).
    public init(label: String) { self.label = label }

    func line(time: String, event: LogEvent, metadata: Logger.Metadata) -> Data? {
        var text = "\(time) \(event.level.rawValue) \(label): \(event.message)"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            text += " \(key)=\(Self.quotedIfNeeded("\(value)"))"
        }
        return Data((text + "\n").utf8)
    }

    /// The value as is when it is one plain word; otherwise in double quotes with `"`, `\`
    /// and line breaks escaped, so every line splits into fields the same way.
    static func quotedIfNeeded(_ value: String) -> String {
        let plain = !value.isEmpty && !value.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.value < 0x20 }
        if plain { return value }
        var quoted = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\r": quoted += "\\r"
            case "\t": quoted += "\\t"
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }
}

/// A swift-log handler writing one JSON object per line.
public struct JSONLogHandler: LineLogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    /// A handler for `label` (the logger's name, written as "logger").
    public init(label: String) { self.label = label }

    func line(time: String, event: LogEvent, metadata: Logger.Metadata) -> Data? {
        var object: [String: Any] = ["time": time, "level": event.level.rawValue, "logger": label, "message": "\(event.message)"]
        if !event.source.isEmpty { object["source"] = event.source }
        for (key, value) in metadata { object[key] = "\(value)" }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
        line.append(0x0a)
        return line
    }
}
