import AfterSalesProto
import AfterSalesRPC
import Testing

@Suite struct FramesTests {
    @Test func routedCallSplitsAtTheFirstEmptyFrame() throws {
        let call = try #require(WireFrames.splitRouted([[0, 1, 2], [], [9, 9]]))
        #expect(Array(call.routing) == [[0, 1, 2]])
        #expect(Array(call.body) == [[9, 9]])
        let reply = WireFrames.routedReply(routing: call.routing, body: [7])
        #expect(reply == [[0, 1, 2], [], [7]])
    }

    @Test func messagesThatCannotBeAnsweredAreRecognised() {
        #expect(WireFrames.splitRouted([[1, 2, 3], [9]]) == nil)   // no delimiter
        #expect(WireFrames.splitRouted([[], [9]]) == nil)          // no routing id
        #expect(WireFrames.splitRouted([]) == nil)
    }

    @Test func dealerFraming() {
        #expect(WireFrames.dealerCall(body: [1]) == [[], [1]])
        #expect(WireFrames.dealerReply([[], [1]]) == [1])
        #expect(WireFrames.dealerReply([[1]]) == nil)
        #expect(WireFrames.dealerReply([[2], [1]]) == nil)
    }

    @Test func envelopeRoundTrip() throws {
        var ping = Aftersales_V1_PingRequest()
        ping.payload = .init([0, 0, 1])
        let request = RequestEnvelope(requestID: 42, method: .ping, payload: try ping.serializedBytes(),
                                      deadlineMilliseconds: 500, idempotencyKey: "k")
        let decoded = try RequestEnvelope(serializedBytes: try request.serializedBytes() as [UInt8])
        #expect(decoded.method == "aftersales.v1.AdminService/Ping" && decoded.requestID == 42 && decoded.deadlineMs == 500)

        let failure = ResponseEnvelope.failure(requestID: 42, RPCError(.notFound, "no case AS1"))
        #expect(throws: RPCError(.notFound, "no case AS1")) {
            try failure.decodedPayload(as: Aftersales_V1_PingResponse.self)
        }
        var pong = Aftersales_V1_PingResponse()
        pong.version = "x"
        let ok = ResponseEnvelope.ok(requestID: 42, payload: try pong.serializedBytes())
        #expect(try ok.decodedPayload(as: Aftersales_V1_PingResponse.self).version == "x")
    }
}

@Suite struct DurationTextTests {
    @Test(arguments: [("500ms", 500), ("30s", 30_000), ("12h", 43_200_000), ("7d", 604_800_000), ("15m", 900_000), ("250", 250), (" 2s ", 2000)] as [(String, Int64)])
    func parses(text: String, expected: Int64) {
        #expect(DurationText.milliseconds(text) == expected)
    }

    @Test(arguments: ["", "ms", "12x", "-5s", "1.5h", "99999999999999999999d"])
    func rejects(text: String) {
        #expect(DurationText.milliseconds(text) == nil)
    }

    @Test func formatsTheShortestExactUnit() {
        #expect(DurationText.format(milliseconds: 43_200_000) == "12h")
        #expect(DurationText.format(milliseconds: 300) == "300ms")
        #expect(DurationText.format(milliseconds: 90_000) == "90s")
    }
}
