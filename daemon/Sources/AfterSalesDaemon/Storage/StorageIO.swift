// Thin POSIX wrappers for the storage layer: each one retries EINTR, finishes partial
// reads and writes, and turns a failure into a `StorageError` naming the path and the
// strerror text — so every caller above is plain Swift with `try`.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum StorageIO {
    /// "No space left on device (errno 28)".
    static func describe(errno e: Int32) -> String {
        "\(String(cString: strerror(e))) (errno \(e))"
    }

    static func ioError(_ what: String, _ path: String, _ e: Int32 = errno) -> StorageError {
        StorageError(.io, path: path, errno: e, "\(what) \(path) failed: \(describe(errno: e))")
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StorageError(.io, path: path, "cannot create data directory \(path): \(error.localizedDescription)")
        }
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        while true {
            #if canImport(Darwin)
            let fd = Darwin.open(path, flags | O_CLOEXEC, mode)
            #else
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            #endif
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw ioError("open", path)
        }
    }

    static func close(_ fd: Int32) {
        #if canImport(Darwin)
        _ = Darwin.close(fd)
        #else
        _ = Glibc.close(fd)
        #endif
    }

    /// write(2) until every byte is out.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            #if canImport(Darwin)
            let n = Darwin.write(fd, p, left)
            #else
            let n = Glibc.write(fd, p, left)
            #endif
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write to", path)
            }
            p += n
            left -= n
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) }
    }

    /// pread(2) until `buffer` is full or end of file; returns the bytes read.
    static func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, path: String) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read from", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Flushes file data (and the metadata needed to read it back: size) to stable storage.
    static func dataSync(_ fd: Int32, path: String) throws {
        while true {
            #if os(Linux)
            let r = fdatasync(fd)
            #else
            let r = fsync(fd)
            #endif
            if r == 0 { return }
            if errno == EINTR { continue }
            throw ioError("fdatasync of", path)
        }
    }

    static func fullSync(_ fd: Int32, path: String) throws {
        while true {
            if fsync(fd) == 0 { return }
            if errno == EINTR { continue }
            throw ioError("fsync of", path)
        }
    }

    /// fsync of a directory, so that created, renamed and deleted names survive a crash.
    static func syncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fullSync(fd, path: path)
    }

    static func truncate(_ fd: Int32, to size: UInt64, path: String) throws {
        while true {
            if ftruncate(fd, off_t(size)) == 0 { return }
            if errno == EINTR { continue }
            throw ioError("ftruncate of", path)
        }
    }

    static func fileSize(_ fd: Int32, path: String) throws -> UInt64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw ioError("fstat of", path) }
        return UInt64(st.st_size)
    }

    static func fileSize(atPath path: String) throws -> UInt64 {
        var st = stat()
        if stat(path, &st) != 0 { throw ioError("stat of", path) }
        return UInt64(st.st_size)
    }

    static func fileExists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Names in `directory`, or [] when it does not exist.
    static func listDirectory(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else {
            if errno == ENOENT { return [] }
            throw ioError("opendir", directory)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// unlink(2); a name already gone is not an error.
    static func unlink(_ path: String) throws {
        #if canImport(Darwin)
        let r = Darwin.unlink(path)
        #else
        let r = Glibc.unlink(path)
        #endif
        if r != 0 && errno != ENOENT { throw ioError("unlink", path) }
    }

    static func rename(_ from: String, _ to: String) throws {
        #if canImport(Darwin)
        let r = Darwin.rename(from, to)
        #else
        let r = Glibc.rename(from, to)
        #endif
        if r != 0 {
            let e = errno
            throw StorageError(.io, path: from, errno: e, "rename \(from) -> \(to) failed: \(describe(errno: e))")
        }
    }

    /// "journal-00000000000000000042.log" style names: `prefix` + 20 digits + `suffix`.
    static func sequenceName(_ prefix: String, _ seq: UInt64, _ suffix: String) -> String {
        let digits = String(seq)
        return prefix + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// The sequence number in a name made by `sequenceName`, or nil for any other name.
    static func parseSequenceName(_ name: String, _ prefix: String, _ suffix: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix),
              name.utf8.count == prefix.utf8.count + 20 + suffix.utf8.count else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return UInt64(digits)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}
