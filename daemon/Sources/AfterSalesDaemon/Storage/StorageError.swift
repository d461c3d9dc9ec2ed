// The one error type of the storage layer. Its message is written for an operator: it
// names the file, the byte offset when there is one, and what to do.

import Foundation

/// An error from the storage layer; `description` is a complete, operator-facing message.
public struct StorageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for callers that map errors to statuses.
    public enum Kind: Sendable, Equatable {
        /// A journal or snapshot holds bytes that are not a valid record (not a torn tail).
        case damaged
        /// A system call failed (ENOSPC, EIO, EACCES…). The daemon answers UNAVAILABLE.
        case io
        /// Another process holds the data directory's `LOCK`.
        case dataDirectoryInUse
        /// Snapshot files exist but none of them is complete and valid.
        case noValidSnapshot
        /// The journal does not reach back to the sequence number recovery must start from.
        case missingJournalRecords
        /// A record longer than `RecordFraming.maxRecordLength`.
        case recordTooLarge
        /// The API was used out of contract (closed journal, sequence number going back…).
        case misuse
    }

    /// What went wrong.
    public let kind: Kind
    /// The file concerned, when there is one.
    public let path: String?
    /// The byte offset of the bad record, for `.damaged`.
    public let offset: UInt64?
    /// The errno of the failed system call, for `.io`.
    public let errno: Int32?
    /// The full message.
    public let message: String

    init(_ kind: Kind, path: String? = nil, offset: UInt64? = nil, errno: Int32? = nil, _ message: String) {
        self.kind = kind
        self.path = path
        self.offset = offset
        self.errno = errno
        self.message = message
    }

    public var description: String { message }
}

extension StorageError: LocalizedError {
    public var errorDescription: String? { message }
}
