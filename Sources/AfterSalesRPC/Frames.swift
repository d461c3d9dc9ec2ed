/// How calls, answers and announcements are laid out in ZeroMQ message frames.
///
/// A call arrives at the daemon's ROUTER socket as `[routing id…, empty delimiter, envelope]`:
/// the ROUTER prepends the peer's routing id, and the empty delimiter is what a REQ
/// socket adds by itself (a DEALER must send it). The answer goes back as
/// `[routing id…, empty delimiter, envelope]` so REQ and DEALER peers both accept it.
public enum WireFrames {
    /// A call as the ROUTER socket delivered it.
    public struct RoutedCall {
        /// The frames before the delimiter: where the answer must go.
        public var routing: ArraySlice<[UInt8]>
        /// The frames after the delimiter; a well-formed call has exactly one.
        public var body: ArraySlice<[UInt8]>
    }

    /// Splits a message received on a ROUTER socket; nil when there is no routing id or no
    /// delimiter, i.e. when no answer can be addressed (such messages are counted and dropped).
    public static func splitRouted(_ frames: [[UInt8]]) -> RoutedCall? {
        // A closure, not the key path `\.isEmpty`: the key path is not folded here and cost
        // more than the rest of the split (callgrind).
        guard let delimiter = frames.firstIndex(where: { $0.isEmpty }), delimiter > 0 else { return nil }
        return RoutedCall(routing: frames[..<delimiter], body: frames[(delimiter + 1)...])
    }

    /// The frames of an answer to `routing`: routing ids, delimiter, envelope.
    public static func routedReply(routing: ArraySlice<[UInt8]>, body: [UInt8]) -> [[UInt8]] {
        var frames = [[UInt8]]()
        frames.reserveCapacity(routing.count + 2)
        frames.append(contentsOf: routing)
        frames.append([])
        frames.append(body)
        return frames
    }

    /// The frames a DEALER sends for one call: delimiter, envelope.
    public static func dealerCall(body: [UInt8]) -> [[UInt8]] { [[], body] }

    /// The frames of a message a DEALER receives: nil unless it is `[delimiter, envelope]`.
    public static func dealerReply(_ frames: [[UInt8]]) -> [UInt8]? {
        guard frames.count == 2, frames[0].isEmpty else { return nil }
        return frames[1]
    }

    /// The frames of one announcement on the PUB socket: topic, event envelope.
    public static func announcement(topic: String, body: [UInt8]) -> [[UInt8]] { [Array(topic.utf8), body] }
}
