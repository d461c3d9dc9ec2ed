// The read-only calls: answered from the store as it stands, nothing journaled.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf

extension Daemon {
    func query(_ method: Method, _ payload: Data) throws(RPCError) -> [UInt8] {
        let response: any SwiftProtobuf.Message
        switch method {
        case .getCase:
            let r = try CaseCalls.decode(Aftersales_V1_GetCaseRequest.self, payload)
            try CaseCalls.requireCaseID(r.caseID)
            guard let found = store[r.caseID] else { throw RPCError(.notFound, "no case \(r.caseID)") }
            return WireAssembly.getCaseResponse(EncodedCase(found))
        case .listCases:
            response = try listCases(try CaseCalls.decode(Aftersales_V1_ListCasesRequest.self, payload))
        case .evaluateIntervention:
            let r = try CaseCalls.decode(Aftersales_V1_EvaluateInterventionRequest.self, payload)
            try CaseCalls.requireCaseID(r.caseID)
            do {
                let judgement = try store.evaluate(caseID: r.caseID)
                response = Aftersales_V1_EvaluateInterventionResponse.with { $0.judgement = .init(judgement) }
            } catch {
                throw RPCError(error)
            }
        case .ping:
            let r = try CaseCalls.decode(Aftersales_V1_PingRequest.self, payload)
            if r.payload.count > 65_536 {
                throw RPCError(.invalidArgument, "payload: \(r.payload.count) bytes; Ping echoes at most 65536")
            }
            response = Aftersales_V1_PingResponse.with {
                $0.payload = r.payload
                $0.serverTimeMs = clock.now()
                $0.version = Daemon.version
            }
        case .getStats:
            _ = try CaseCalls.decode(Aftersales_V1_GetStatsRequest.self, payload)
            response = statistics()
        case .replayEvents:
            return try replay(try CaseCalls.decode(Aftersales_V1_ReplayEventsRequest.self, payload))
        default:
            preconditionFailure("\(method.fullName) is not a query")
        }
        do {
            return try response.serializedBytes()
        } catch {
            throw RPCError(.internal, "could not encode the answer: \(error)")
        }
    }

    private func listCases(_ r: Aftersales_V1_ListCasesRequest) throws(RPCError) -> Aftersales_V1_ListCasesResponse {
        let pageSize = r.pageSize == 0 ? 50 : Int(r.pageSize)
        guard pageSize <= 1_000 else {
            throw RPCError(.invalidArgument, "page_size: \(r.pageSize) is over the maximum of 1000")
        }
        let status: CaseStatus? = EnumMapping.engine(r.status)
        if status == nil, r.status != .unspecified {
            throw RPCError(.invalidArgument, "status: unknown value \(r.status.rawValue)")
        }
        var after: String?
        if !r.pageToken.isEmpty {
            guard CaseStore.caseNumber(of: r.pageToken) != nil else {
                throw RPCError(.invalidArgument, "page_token: '\(r.pageToken)' is not a token this daemon issued; pass next_page_token from the previous page")
            }
            after = r.pageToken
        }
        let page = store.list(status: status, merchantID: r.merchantID.isEmpty ? nil : r.merchantID,
                              consumerID: r.consumerID.isEmpty ? nil : r.consumerID, after: after, limit: pageSize)
        return .with {
            $0.cases = page.cases.map { Aftersales_V1_Case($0, includeHistory: r.includeHistory) }
            $0.nextPageToken = page.nextAfter ?? ""
        }
    }

    /// Answered by splicing the kept announcement bytes into the response: field 1 is
    /// `repeated EventEnvelope events`, so each kept event is one length-delimited field.
    private func replay(_ r: Aftersales_V1_ReplayEventsRequest) throws(RPCError) -> [UInt8] {
        guard r.fromSeq >= 1 else { throw RPCError(.invalidArgument, "from_seq: sequence numbers start at 1") }
        let limit = r.maxEvents == 0 ? 1_000 : Int(r.maxEvents)
        guard limit <= 10_000 else { throw RPCError(.invalidArgument, "max_events: \(r.maxEvents) is over the maximum of 10000") }
        guard let events = announcements.replay(from: r.fromSeq, limit: limit) else {
            throw RPCError(.outOfRange, "announcement \(r.fromSeq) is no longer kept; the oldest available is \(announcements.oldestKept). Re-read the cases you follow (GetCase/ListCases), then replay from \(announcements.oldestKept)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(events.reduce(16) { $0 + $1.bytes.count + 6 })
        for event in events { ProtoWire.appendField(1, event.bytes, to: &bytes) }
        ProtoWire.appendVarintField(2, announcements.publishedSeq, to: &bytes)
        ProtoWire.appendVarintField(3, announcements.oldestKept, to: &bytes)
        ProtoWire.appendVarintField(4, announcements.incarnation, to: &bytes)
        ProtoWire.appendVarintField(5, announcements.incarnationStartSeq, to: &bytes)
        return bytes
    }

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
        }
    }
}
