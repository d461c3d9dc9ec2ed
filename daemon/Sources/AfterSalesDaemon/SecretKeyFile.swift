// A CURVE secret key on disk: 40 Z85 characters in a file only its owner may read.
import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing the daemon's (or a client's) secret key file.
public enum SecretKeyFile {
    /// The key in `path`; refuses a file that group or others may read, or that holds no key.
    public static func read(_ path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw AccessError("cannot read the secret key file \(path): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw AccessError("the secret key file \(path) can be read by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); "
                              + "run: chmod 600 \(path)")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard Z85.decode(text) != nil else {
            throw AccessError("\(path) does not hold a CURVE secret key (40 Z85 characters, as `aftersalesd keygen` writes)")
        }
        return text
    }

    /// Writes `key` to a new file at `path` with mode 0600 (never over an existing one).
    public static func write(_ key: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AccessError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array((key + "\n").utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw AccessError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
