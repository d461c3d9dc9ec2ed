// The scratch pad one command writes on: the case being changed, the history it appends
// and the topics it will announce. The reducer turns it into an `Outcome` at the end.

struct Transition {
    var subject: Case
    let statusBefore: CaseStatus?
    let request: Request
    let now: Millis
    private(set) var topics: [Topic] = []
    private(set) var changed = false
    var late = false
    var judgement: Judgement?

    init(subject: Case, statusBefore: CaseStatus?, request: Request, now: Millis) {
        self.subject = subject
        self.statusBefore = statusBefore
        self.request = request
        self.now = now
    }

    /// Appends a history entry by the requesting party and moves to `status`.
    mutating func record(_ action: HistoryAction, to status: CaseStatus, note: String = "") {
        record(action, to: status, note: note, actor: request.actor,
               actorID: request.actor == .system ? "" : request.actorID)
    }

    /// Appends a history entry by an explicit party (the judgement) and moves to `status`.
    mutating func record(_ action: HistoryAction, to status: CaseStatus, note: String, actor: Party, actorID: String) {
        let from: CaseStatus? = subject.history.isEmpty ? nil : subject.status
        subject.history.append(HistoryEntry(at: now, actor: actor, actorID: actorID, client: request.actor == .system ? "" : request.client, action: action,
                                            fromStatus: from, toStatus: status, note: note))
        subject.status = status
        changed = true
    }

    mutating func announce(_ topic: Topic) {
        topics.append(topic)
    }

    /// The outcome: version and updatedAt move only if something changed. Stamps
    /// `subject` in place rather than on a copy, so the case's storage is not copied again.
    mutating func outcome() -> Outcome {
        guard changed else {
            return Outcome(case: subject, announcements: [], judgement: judgement)
        }
        subject.version += 1
        subject.updatedAt = now
        let announcements = topics.map {
            Announcement(topic: $0, caseID: subject.caseID, previousStatus: statusBefore, status: subject.status, late: late)
        }
        return Outcome(case: subject, announcements: announcements, judgement: judgement)
    }
}
