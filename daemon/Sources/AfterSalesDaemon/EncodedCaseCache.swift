// GetCase answers from bytes already written. A mutation encodes the case it made (for
// its reply, its announcement and the journal); a read of a case written or read lately
// copies those bytes into the reply instead of encoding the case again (~5 500
// instructions of a GetCase's ~26 000 in callgrind). Bounded, so a million open cases do
// not carry a second copy each (row 4's 1 GiB).
import CaseEngine

/// The encoded form (`EncodedCase.full`) of recently written or read cases, direct-mapped
/// by case number. An entry holds the case's version: a case changed since is re-encoded,
/// so an entry can be stale but never wrong, and nothing has to be invalidated.
struct EncodedCaseCache {
    private struct Slot {
        var number: UInt64 = .max
        var version: UInt64 = 0
        var bytes: [UInt8] = []
    }

    /// Slots (a power of two): the most recent cases by number each have their own.
    static let slotCount = 2_048
    private var slots: [Slot] = []

    /// The case's encoded bytes at its current version: from the cache, or encoded and kept.
    mutating func encoded(_ c: Case) -> [UInt8] {
        guard let (number, index) = Self.slot(of: c) else { return EncodedCase(c).full }
        if !slots.isEmpty, slots[index].number == number, slots[index].version == c.version {
            return slots[index].bytes
        }
        let full = EncodedCase(c).full
        keep(number: number, version: c.version, full, at: index)
        return full
    }

    /// Keeps what a change already encoded.
    mutating func keep(_ c: Case, _ encoded: EncodedCase) {
        guard let (number, index) = Self.slot(of: c) else { return }
        keep(number: number, version: c.version, encoded.full, at: index)
    }

    /// The case's number and its slot; nil for an id that is not a case number.
    private static func slot(of c: Case) -> (number: UInt64, index: Int)? {
        CaseStore.caseNumber(of: c.caseID).map { ($0, Int(truncatingIfNeeded: $0) & (slotCount - 1)) }
    }

    private mutating func keep(number: UInt64, version: UInt64, _ bytes: [UInt8], at index: Int) {
        if slots.isEmpty { slots = Array(repeating: Slot(), count: Self.slotCount) }
        slots[index] = Slot(number: number, version: version, bytes: bytes)
    }
}
