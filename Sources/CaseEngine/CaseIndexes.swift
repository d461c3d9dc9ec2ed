// The store's secondary indexes, keyed by case number (the UInt64 inside "AS0000000042")
// rather than by id string: a number costs 8 bytes or 1 bit instead of a 16-byte String
// plus hash-trie node overhead, and needs no string hashing on every change. They are
// plain Swift values (copy-on-write arrays), not persistent structures: the daemon's
// O(1) snapshot copies only `CaseStore.cases`.

/// A set of case numbers as a bitmap: bit n is set when case number n is a member.
/// Case numbers are dense (1, 2, 3…), so one status costs 1 bit per case ever created,
/// and members come out in ascending number order, which is case id order.
struct CaseNumberBitmap: Sendable {
    private var words: [UInt64] = []
    /// Members held.
    private(set) var count = 0

    /// Adds `number`; no effect if present.
    mutating func insert(_ number: UInt64) {
        let (word, mask) = Self.position(of: number)
        if word >= words.count { words.append(contentsOf: repeatElement(0, count: word - words.count + 1)) }
        if words[word] & mask == 0 {
            words[word] |= mask
            count += 1
        }
    }

    /// Removes `number`; no effect if absent.
    mutating func remove(_ number: UInt64) {
        let (word, mask) = Self.position(of: number)
        guard word < words.count, words[word] & mask != 0 else { return }
        words[word] &= ~mask
        count -= 1
    }

    /// Calls `body` with each member >= `start` in ascending order until it returns false.
    func forEach(from start: UInt64, _ body: (UInt64) -> Bool) {
        var (word, _) = Self.position(of: start)
        guard word < words.count else { return }
        var bits = words[word] & (~0 << (start % 64))
        while true {
            while bits != 0 {
                let number = UInt64(word) * 64 + UInt64(bits.trailingZeroBitCount)
                bits &= bits - 1
                if !body(number) { return }
            }
            word += 1
            guard word < words.count else { return }
            bits = words[word]
        }
    }

    /// Every member in ascending order.
    var members: [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(count)
        forEach(from: 0) { result.append($0); return true }
        return result
    }

    private static func position(of number: UInt64) -> (word: Int, mask: UInt64) {
        (Int(number / 64), 1 << (number % 64))
    }
}

extension CaseNumberBitmap: Equatable {
    /// Same members (trailing empty words do not count).
    static func == (lhs: CaseNumberBitmap, rhs: CaseNumberBitmap) -> Bool {
        lhs.count == rhs.count && lhs.members == rhs.members
    }
}

/// One `CaseNumberBitmap` per status in a fixed array: a status change costs two array
/// accesses instead of two dictionary look-ups (a raw-value enum hashes its String).
struct StatusBitmaps: Sendable, Equatable {
    private var bitmaps = [CaseNumberBitmap](repeating: CaseNumberBitmap(), count: CaseStatus.allCases.count)

    subscript(status: CaseStatus) -> CaseNumberBitmap {
        get { bitmaps[Self.position(of: status)] }
        _modify { yield &bitmaps[Self.position(of: status)] }
    }

    /// The status's position in `CaseStatus.allCases`, without comparing raw values.
    private static func position(of status: CaseStatus) -> Int {
        switch status {
        case .awaitingMerchantReview: 0
        case .proposalPending: 1
        case .merchantOfferPending: 2
        case .merchantRejected: 3
        case .platformArbitration: 4
        case .awaitingReturnShipment: 5
        case .awaitingMerchantReceipt: 6
        case .refunded: 7
        case .closed: 8
        }
    }
}

extension Array where Element == UInt64 {
    /// The index of the first element >= `number` in this ascending array (binary search).
    func firstIndex(atLeast number: UInt64) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < number { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
