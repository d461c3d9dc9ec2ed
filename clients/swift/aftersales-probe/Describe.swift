import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC

// Human-readable renderings of the contract's messages: compact, key fields first.

/// A case: the header line, the fields that matter now, and optionally its history.
func describe(_ item: Aftersales_V1_Case, history: Bool = true) -> String {
    var lines = ["\(item.caseID)  \(protoName(item.status))  v\(item.version)"]
    let line = item.orderLineID.isEmpty ? "" : " / line \(item.orderLineID)"
    lines.append("  order      \(item.orderID)\(line)   category \(item.category)")
    lines.append("  parties    consumer \(item.consumerID)   merchant \(item.merchantID)")
    var ask = "  request    \(protoName(item.type))  refund \(money(item.refundAmount)) of \(money(item.paidAmount))  delivery \(protoName(item.delivery))"
    if item.returnShippingPayer != .unspecified { ask += "  return shipping paid by \(protoName(item.returnShippingPayer))" }
    lines.append(ask)
    if !item.reason.isEmpty { lines.append("  reason     \(item.reason)") }
    if item.hasDeadline {
        lines.append("  deadline   \(protoName(item.deadline.kind)) at \(isoTime(item.deadline.dueAtMs)) (\(relative(item.deadline.dueAtMs)))")
    }
    if item.pausedReviewRemainingMs > 0 {
        lines.append("  review     paused with \(compactDuration(item.pausedReviewRemainingMs)) left")
    }
    if item.hasProposal {
        let p = item.proposal
        var text = "  proposal   \(protoName(p.state))  \(protoName(p.issueKind))  score \(p.score)"
        if p.state == .pending {
            text += "  expires \(isoTime(p.expiresAtMs)) (\(relative(p.expiresAtMs)))"
        } else if p.decidedAtMs > 0 {
            text += "  decided \(isoTime(p.decidedAtMs))"
        }
        if !p.reasons.isEmpty { text += "  [\(p.reasons.joined(separator: ", "))]" }
        lines.append(text)
    }
    if item.hasMerchantOffer {
        let o = item.merchantOffer
        var text = "  offer      \(protoName(o.state))  \(protoName(o.type))  refund \(money(o.refundAmount))"
        if o.returnShippingPayer != .unspecified { text += "  shipping \(protoName(o.returnShippingPayer))" }
        if o.state == .pending { text += "  expires \(isoTime(o.expiresAtMs)) (\(relative(o.expiresAtMs)))" }
        if !o.note.isEmpty { text += "  \"\(o.note)\"" }
        lines.append(text)
    }
    if item.hasReturnShipment {
        let r = item.returnShipment
        lines.append("  return     \(r.carrier) \(r.trackingNumber) shipped \(isoTime(r.shippedAtMs))")
    }
    if item.closeReason != .unspecified { lines.append("  closed     \(protoName(item.closeReason))") }
    if item.refundReason != .unspecified { lines.append("  refunded   \(protoName(item.refundReason))") }
    if item.hasSignals {
        let s = item.signals
        var parts: [String] = []
        if !s.logisticsAnomalies.isEmpty { parts.append("anomalies " + s.logisticsAnomalies.map(protoName).joined(separator: ",")) }
        if !s.evidence.isEmpty { parts.append("evidence " + s.evidence.map { "\(protoName($0.kind).lowercased()):\($0.tags.map(protoName).joined(separator: ","))" }.joined(separator: " ")) }
        if s.merchantViolations90D > 0 { parts.append("violations \(s.merchantViolations90D)") }
        if s.merchantComplaintRateBp > 0 { parts.append("complaints \(s.merchantComplaintRateBp)bp") }
        if s.consumerRefundOnlyCount30D > 0 { parts.append("refund-only/30d \(s.consumerRefundOnlyCount30D)") }
        if !parts.isEmpty { lines.append("  signals    " + parts.joined(separator: "  ")) }
    }
    lines.append("  updated    \(isoTime(item.updatedAtMs)) (created \(isoTime(item.createdAtMs)))")
    if history, !item.history.isEmpty {
        lines.append("  history")
        lines.append(contentsOf: item.history.map { "    " + describe($0) })
    }
    return lines.joined(separator: "\n")
}

/// One history line: time, actor, the calling service (audit), action, status change, note.
func describe(_ entry: Aftersales_V1_HistoryEntry) -> String {
    var text = "\(isoTime(entry.atMs))  \(protoName(entry.actor))"
    if !entry.actorID.isEmpty { text += " \(entry.actorID)" }
    if !entry.client.isEmpty { text += " via \(entry.client)" }
    text += "  \(entry.action)"
    if entry.fromStatus != entry.toStatus {
        text += "  \(entry.fromStatus == .unspecified ? "" : protoName(entry.fromStatus) + " ")→ \(protoName(entry.toStatus))"
    }
    if !entry.note.isEmpty { text += "  \"\(entry.note)\"" }
    return text
}

/// The judgement: verdict, score against threshold, reasons.
func describe(_ judgement: Aftersales_V1_Judgement) -> String {
    var text = "judgement  eligible \(judgement.eligible ? "yes" : "no")  intervene \(judgement.intervene ? "yes" : "no")"
    if judgement.issueKind != .unspecified { text += "  issue \(protoName(judgement.issueKind))" }
    text += "  score \(judgement.score)/\(judgement.threshold)"
    if !judgement.reasons.isEmpty { text += "\n  reasons  \(judgement.reasons.joined(separator: ", "))" }
    return text
}

/// One announcement line: seq, time, topic, case, status change, (late).
func describe(_ event: EventEnvelope) -> String {
    var text = "\(event.seq)  \(isoTime(event.timeMs))  \(event.topic)  \(event.caseID)"
    if event.hasCase {
        let to = protoName(event.case.status)
        text += event.previousStatus == .unspecified || event.previousStatus == event.case.status
            ? "  \(to)" : "  \(protoName(event.previousStatus)) → \(to)"
    }
    if event.late { text += "  (late)" }
    return text
}

/// A case in one list line.
func listLine(_ item: Aftersales_V1_Case) -> String {
    let columns = [
        item.caseID, protoName(item.status), protoName(item.type),
        "\(money(item.refundAmount))/\(money(item.paidAmount))",
        "consumer \(item.consumerID)", "merchant \(item.merchantID)", "order \(item.orderID)",
        "v\(item.version)",
    ]
    return columns.joined(separator: "  ")
}

/// The daemon's figures as a small table.
func describe(_ stats: Aftersales_V1_GetStatsResponse) -> String {
    var lines: [String] = []
    func row(_ name: String, _ value: String) { lines.append(name.padding(toLength: 20, withPad: " ", startingAt: 0) + value) }
    row("version", stats.version)
    row("started", "\(isoTime(stats.startedAtMs)) (up \(compactDuration(stats.uptimeMs)))")
    let byStatus = stats.casesByStatus.filter { $0.count > 0 }.map { "\(protoName($0.status)) \($0.count)" }
    row("cases", "\(stats.casesTotal)" + (byStatus.isEmpty ? "" : "  (" + byStatus.joined(separator: ", ") + ")"))
    row("pending proposals", "\(stats.pendingProposals)")
    row("next deadline", stats.nextDeadlineAtMs == 0 ? "none" : "\(isoTime(stats.nextDeadlineAtMs)) (\(relative(stats.nextDeadlineAtMs)))")
    row("journal", "\(stats.journalBytes) bytes, fsync \(stats.fsyncPolicy)")
    row("last snapshot", stats.lastSnapshotAtMs == 0 ? "none since start-up"
        : "\(isoTime(stats.lastSnapshotAtMs)), \(stats.lastSnapshotBytes) bytes in \(stats.lastSnapshotDurationMs) ms")
    row("events", "last seq \(stats.lastEventSeq), oldest replayable \(stats.oldestReplayableSeq)")
    row("idempotency keys", "\(stats.idempotencyKeys)")
    row("dropped frames", "\(stats.droppedFrames)")
    if !stats.methods.isEmpty {
        lines.append("")
        let width = max(6, stats.methods.map(\.method.count).max() ?? 0)
        lines.append("method".padding(toLength: width, withPad: " ", startingAt: 0) + "       calls   errors   p50 µs   p99 µs")
        for m in stats.methods {
            lines.append(m.method.padding(toLength: width, withPad: " ", startingAt: 0)
                         + pad(m.calls, 12) + pad(m.errors, 9) + pad(m.p50Us, 9) + pad(m.p99Us, 9))
        }
    }
    return lines.joined(separator: "\n")
}

private func pad(_ value: UInt64, _ width: Int) -> String {
    let text = "\(value)"
    return String(repeating: " ", count: max(0, width - text.count)) + text
}

/// The slow-call log: what it holds, then one call a line, newest first.
func describe(_ log: Aftersales_V1_SlowCallsResponse) -> String {
    guard log.thresholdUs > 0 else { return "the slow-call log is off (aftersalesd --slow-call-threshold turns it on)" }
    let summary = "\(log.calls.count) of the \(log.totalLogged) calls logged since start-up that took at least \(milliseconds(log.thresholdUs)), newest first"
    guard !log.calls.isEmpty else { return summary }
    let rows = [["id", "time", "duration", "method", "code", "case", "client", "caller"]] + log.calls.map { call in
        ["\(call.id)", isoTime(call.atMs), milliseconds(call.durationUs), call.method, call.code.name,
         call.caseID, call.client, call.caller].map { $0.isEmpty ? "-" : $0 }
    }
    return ([summary] + aligned(rows)).joined(separator: "\n")
}

/// Microseconds as "12.31 ms".
private func milliseconds(_ us: UInt64) -> String { String(format: "%.2f ms", Double(us) / 1000) }

/// Rows as lines, each column padded to its widest cell.
private func aligned(_ rows: [[String]]) -> [String] {
    let widths = rows.reduce(into: [Int]()) { widths, row in
        for (index, cell) in row.enumerated() {
            if index < widths.count { widths[index] = max(widths[index], cell.count) } else { widths.append(cell.count) }
        }
    }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
        }.joined()
    }
}
