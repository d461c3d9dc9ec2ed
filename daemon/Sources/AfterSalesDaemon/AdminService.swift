// AdminService's handlers: liveness, figures, re-delivery of announcements. TakeSnapshot
// is answered by the snapshot coordinator (Snapshots.swift) when the file is on disk.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf

enum AdminService {
    /// Check: `state` for the daemon and each of its services; NOT_FOUND for another name.
    /// The loop answers SERVING (a daemon that cannot write its journal stops); the
    /// recovery phase answers NOT_SERVING "recovering".
    static func check(_ payload: Data, state: ServingState = .serving, detail: String = "") throws(RPCError) -> [UInt8] {
        let r = try CaseService.decode(Aftersales_V1_CheckRequest.self, payload)
        let services = Set(Contract.serviceNames)
        guard r.service.isEmpty || services.contains(r.service) else {
            throw RPCError(.notFound, "service '\(r.service)' is not served here; services: \(services.sorted().joined(separator: ", "))")
        }
        return try! Aftersales_V1_CheckResponse.with {
            $0.status = state.isServing ? .serving : .notServing
            if !state.isServing { $0.reason = state.reason + (detail.isEmpty ? "" : " (\(detail))") }
        }.serializedBytes()
    }

    /// ListServices: the services of the contract.
    static func listServices(_ payload: Data) throws(RPCError) -> [UInt8] {
        _ = try CaseService.decode(Aftersales_V1_ListServicesRequest.self, payload)
        return try! Aftersales_V1_ListServicesResponse.with { $0.services = Contract.serviceNames }.serializedBytes()
    }

    /// GetClusterMap on a daemon on its own: a cluster of one shard, served here, so
    /// clients need one code path for both.
    static func standaloneClusterMap(_ payload: Data, endpoints: (rpc: String, pub: String), startedAt: Millis) throws(RPCError) -> [UInt8] {
        _ = try CaseService.decode(Aftersales_V1_GetClusterMapRequest.self, payload)
        return try! Aftersales_V1_GetClusterMapResponse.with {
            $0.shardCount = 1
            $0.answeredBy = "standalone"
            $0.shards = [.with {
                $0.shard = 0
                $0.member = "standalone"
                $0.rpcEndpoint = endpoints.rpc
                $0.pubEndpoint = endpoints.pub
                $0.epoch = UInt64(startedAt)
            }]
            $0.members = [.with {
                $0.member = "standalone"
                $0.rpcEndpoint = endpoints.rpc
                $0.pubEndpoint = endpoints.pub
                $0.shards = 1
            }]
        }.serializedBytes()
    }

    /// GetDescriptors: the contract this daemon was built from, as a FileDescriptorSet.
    static func descriptors(_ payload: Data) throws(RPCError) -> [UInt8] {
        _ = try CaseService.decode(Aftersales_V1_GetDescriptorsRequest.self, payload)
        return try! Aftersales_V1_GetDescriptorsResponse.with {
            $0.fileDescriptorSet = Contract.descriptorSetBytes
            $0.protoDigest = protoSourceDigest
        }.serializedBytes()
    }

    /// Ping: echoes the payload with the daemon's clock and version.
    static func ping(_ payload: Data, now: Millis) throws(RPCError) -> [UInt8] {
        let r = try CaseService.decode(Aftersales_V1_PingRequest.self, payload)
        if r.payload.count > 65_536 {
            throw RPCError(.invalidArgument, "payload: \(r.payload.count) bytes; Ping echoes at most 65536")
        }
        return try! Aftersales_V1_PingResponse.with {
            $0.payload = r.payload
            $0.serverTimeMs = now
            $0.version = Daemon.version
        }.serializedBytes()
    }

    /// Answered by splicing the kept announcement bytes into the response: field 1 is
    /// `repeated EventEnvelope events`, so each kept event is one length-delimited field.
    static func replay(_ payload: Data, from announcements: AnnouncementLog) throws(RPCError) -> [UInt8] {
        let r = try replayRequest(payload, shards: .max)  // the shard is checked against this stream below
        guard r.shard == announcements.shard else {
            throw RPCError(.invalidArgument, "shard: \(r.shard) is not served here; a daemon on its own has one stream, shard 0")
        }
        guard let events = announcements.replay(from: r.fromSeq, limit: Int(r.maxEvents)) else {
            throw RPCError(.outOfRange, "announcement \(r.fromSeq) is no longer kept; the oldest available is \(announcements.oldestKept). Re-read the cases you follow (GetCase/ListCases), then replay from \(announcements.oldestKept)")
        }
        return replayAnswer(events.lazy.map(\.bytes), latest: announcements.publishedSeq, oldest: announcements.oldestKept,
                            incarnation: (announcements.incarnation, announcements.incarnationStartSeq))
    }

    /// A ReplayEvents request checked: from_seq ≥ 1, shard below `shards`, max_events
    /// defaulted (0 = 1000) and bounded (10000).
    static func replayRequest(_ payload: Data, shards: UInt64) throws(RPCError) -> Aftersales_V1_ReplayEventsRequest {
        var r = try CaseService.decode(Aftersales_V1_ReplayEventsRequest.self, payload)
        guard r.fromSeq >= 1 else { throw RPCError(.invalidArgument, "from_seq: sequence numbers start at 1") }
        guard UInt64(r.shard) < shards else {
            throw RPCError(.invalidArgument, "shard: \(r.shard) is not a shard here (0..<\(shards))")
        }
        guard r.maxEvents <= 10_000 else { throw RPCError(.invalidArgument, "max_events: \(r.maxEvents) is over the maximum of 10000") }
        if r.maxEvents == 0 { r.maxEvents = 1_000 }
        return r
    }

    /// The ReplayEventsResponse, spliced: field 1 is `repeated EventEnvelope events`, so each
    /// kept event's bytes are one length-delimited field; then the stream's bounds.
    static func replayAnswer(_ events: some Sequence<[UInt8]>, latest: UInt64, oldest: UInt64,
                             incarnation: (value: UInt64, startSeq: UInt64)? = nil) -> [UInt8] {
        var room = 48
        for event in events { room += event.count + 4 }
        return ProtoWriter.bytes(capacity: room) { w in
            for event in events { w.bytesField(1, event) }
            w.varintField(2, latest)
            w.varintField(3, oldest)
            if let incarnation {
                w.varintField(4, incarnation.value)
                w.varintField(5, incarnation.startSeq)
            }
        }
    }
}

extension DaemonCore {
    /// GetStats: the core's own figures, read as they stand.
    func statistics() -> Aftersales_V1_GetStatsResponse {
        let now = clock.now()
        let counts = store.countsByStatus
        return .with {
            $0.version = Daemon.version
            $0.startedAtMs = startedAt
            $0.uptimeMs = now - startedAt
            $0.casesTotal = UInt64(store.count)
            $0.casesByStatus = CaseStatus.allCases.map { status in
                .with {
                    $0.status = EnumMapping.proto(status)
                    $0.count = UInt64(counts[status] ?? 0)
                }
            }
            $0.pendingProposals = UInt64(store.pendingProposalCount)
            $0.nextDeadlineAtMs = store.nextDeadline ?? 0
            $0.methods = stats.report
            $0.journalBytes = journal.bytesOnDisk
            $0.fsyncPolicy = config.fsync.rawValue
            $0.lastSnapshotAtMs = snapshots.completedAt
            $0.lastSnapshotDurationMs = snapshots.lastDurationMs
            $0.lastSnapshotBytes = snapshots.lastBytes
            $0.lastEventSeq = announcements.publishedSeq
            $0.oldestReplayableSeq = announcements.oldestKept
            $0.droppedFrames = droppedFrames
            $0.idempotencyKeys = UInt64(idempotency.count)
            $0.incarnation = announcements.incarnation
            $0.incarnationStartSeq = announcements.incarnationStartSeq
            $0.unpublishedEvents = UInt64(announcements.unpublishedCount)
            $0.peerDisconnects = peerDisconnects
            $0.zapRefusals = zapRefusals
        }
    }
}
