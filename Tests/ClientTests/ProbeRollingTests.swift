import AfterSalesProto
import Foundation
import Testing

@Suite("aftersales-probe's rolling views: ping --latency and stats --interval", .serialized, .timeLimit(.minutes(2)))
struct ProbeRollingTests {
    @Test("ping --latency --count 20: redis-cli's line, 20 samples, min <= avg <= max")
    func latencyBounded() async throws {
        try await withDaemon { daemon in
            let run = try await onThread { try runProbe(["ping", "--latency", "--count", "20", "--endpoint", daemon.rpc]) }
            #expect(run.status == 0, "\(run.stderr)")
            let figures = try run.lines.map(latencyFigures)
            let last = try #require(figures.last)
            #expect(last.samples == 20)
            #expect(last.min <= last.avg && last.avg <= last.max && last.min > 0, "\(run.stdout)")
            // Not a terminal: no carriage returns, a line at most once a second, then the last.
            #expect(!run.stdout.contains("\r"))
            #expect(figures.map(\.samples) == figures.map(\.samples).sorted())
        }
    }

    @Test("ping --latency until Ctrl-C: prints where it stands and exits 0")
    func latencyInterrupted() async throws {
        try await withDaemon { daemon in
            let probe = try RunningProbe(["ping", "--latency", "--endpoint", daemon.rpc])
            let first = try await onThread { try probe.nextLine() }
            #expect(try latencyFigures(first).samples == 1)
            probe.interrupt()
            let run = try await onThread { try probe.finish() }
            #expect(run.status == 0, "\(run.stderr)")
            // The final figures, always printed on Ctrl-C.
            let last = try latencyFigures(try #require(run.lines.last))
            #expect(last.samples >= 1 && last.min <= last.avg && last.avg <= last.max)
        }
    }

    @Test("stats --interval 100ms --count 3: a header and 3 rows; rates from the change in call counts")
    func statsRolling() async throws {
        try await withDaemon { daemon in
            let client = try daemon.client()
            defer { client.close() }
            _ = try await client.createCase(createRequest("o-s1", damaged: true))
            _ = try await client.createCase(createRequest("o-s2", damaged: false))

            let run = try await onThread { try runProbe(["stats", "--interval", "100ms", "--count", "3", "--endpoint", daemon.rpc]) }
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.lines.count == 4, "\(run.stdout)")
            let header = run.lines[0].split(separator: " ", omittingEmptySubsequences: true)
            #expect(header == ["cases", "pending", "calls/s", "errors/s", "last", "seq", "journal", "idem", "keys"])
            let rows = run.lines.dropFirst().map { $0.split(separator: " ").map(String.init) }
            #expect(rows.allSatisfy { $0.count == 7 }, "\(run.stdout)")
            #expect(rows.allSatisfy { $0[0] == "2" && $0[1] == "1" })  // two cases, one proposal pending
            #expect(rows[0][2] == "-" && rows[0][3] == "-")  // no previous row to take a rate from
            // At least the probe's own GetStats call between two rows a tenth of a second apart.
            for row in rows.dropFirst() {
                let callsPerSecond = try #require(Double(row[2]))
                #expect(callsPerSecond >= 1 && callsPerSecond < 1000, "\(row)")
                #expect(row[3] == "0.0")
            }

            let json = try await onThread {
                try runProbe(["stats", "--interval", "100ms", "--count", "2", "--json", "--endpoint", daemon.rpc])
            }
            let objects = try json.lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(objects.count == 2)
            #expect(objects.first?["callsPerSecond"] is NSNull)
            #expect((objects.last?["callsPerSecond"] as? Double ?? 0) > 0)
            #expect(objects.allSatisfy { $0["cases"] as? Int == 2 })
        }
    }

    @Test("stats --interval repeats its header every 20 rows and stops on Ctrl-C with exit 0")
    func statsHeaderAndInterrupt() async throws {
        try await withDaemon { daemon in
            let run = try await onThread { try runProbe(["stats", "--interval", "5ms", "--count", "21", "--endpoint", daemon.rpc]) }
            #expect(run.status == 0, "\(run.stderr)")
            let headers = run.lines.indices.filter { run.lines[$0].hasPrefix("cases") }
            #expect(headers == [0, 21] && run.lines.count == 23, "\(run.stdout)")

            let probe = try RunningProbe(["stats", "--interval", "100ms", "--endpoint", daemon.rpc])
            let header = try await onThread { try probe.nextLine() }
            let firstRow = try await onThread { try probe.nextLine() }
            #expect(header.hasPrefix("cases") && firstRow.hasPrefix("0 "))
            probe.interrupt()
            let stopped = try await onThread { try probe.finish() }
            #expect(stopped.status == 0, "\(stopped.stderr)")
        }
    }
}

/// The figures of one `min: X, max: Y, avg: Z (N samples)` line.
private func latencyFigures(_ line: String) throws -> (min: Double, max: Double, avg: Double, samples: Int) {
    let match = try #require(try #/min: (\d+\.\d\d), max: (\d+\.\d\d), avg: (\d+\.\d\d) \((\d+) samples\)/#.wholeMatch(in: line),
                             "not a latency line: '\(line)'")
    return (try #require(Double(match.1)), try #require(Double(match.2)), try #require(Double(match.3)), try #require(Int(match.4)))
}
