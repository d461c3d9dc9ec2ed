// `--log-format json`: one JSON object a line on standard error, for log shippers. The
// timestamp has milliseconds (UTC), and metadata keeps its keys as fields of their own.
import Foundation
import CaseEngine
import Logging

/// A swift-log handler writing one JSON object per line to standard error.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    /// A handler for `label` (the logger's name, written as "logger").
    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: Any] = [
            "time": Self.timestamp(), "level": event.level.rawValue, "logger": label, "message": "\(event.message)",
        ]
        if !event.source.isEmpty { object["source"] = event.source }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            object[key] = "\(value)"
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(0x0a)
        FileHandle.standardError.write(line)
    }

    /// e.g. 2026-11-30T12:56:01.123Z.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let ms = Int64(spec.tv_sec) * 1_000 + Int64(spec.tv_nsec) / 1_000_000
        return ISO8601.format(ms)
    }
}
