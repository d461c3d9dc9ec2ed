"""Issue 6 "Must show", against a real aftersalesd started with --proposal-ttl 300ms
(see conftest.py). Every wait is bounded."""
from __future__ import annotations

import random
import time
import uuid

import pytest

from aftersales_client import (Client, RpcError, RpcTimeout, StatusCode, Subscriber, case_pb2,
                               case_service_pb2, envelope_pb2)

from conftest import PROPOSAL_TTL_MS

EVENT_WAIT_S = 5.0  # far more than the 300 ms ttl; bounds every wait for an announcement


def quality_issue_request(tag: str) -> case_service_pb2.CreateCaseRequest:
    """A signed, full, refund-only apparel case with a defect photo: the platform
    proposes at once."""
    return case_service_pb2.CreateCaseRequest(
        order_id=f"py-order-{tag}",
        order_line_id="1",
        consumer_id=f"py-consumer-{tag}",
        merchant_id=f"py-merchant-{tag}",
        category="apparel",
        type=case_pb2.CASE_TYPE_REFUND_ONLY,
        delivery=case_pb2.DELIVERY_STATE_SIGNED,
        paid_amount=12900,
        refund_amount=12900,
        reason="seam split on first wear",
        signals=case_pb2.Signals(evidence=[
            case_pb2.Evidence(kind=case_pb2.EVIDENCE_KIND_PHOTO, tags=[case_pb2.ISSUE_TAG_DEFECT],
                              description="photo of the split seam"),
        ]),
    )


def new_tag() -> str:
    return uuid.uuid4().hex[:12]


def test_ping(client):
    resp = client.ping(payload=b"py")
    assert resp.payload == b"py"
    assert resp.server_time_ms > 0


def test_quality_issue_gets_proposal_that_expires_with_next_seq(daemon, client):
    # Where the announcement stream stands now; the subscriber replays anything after it
    # that its SUB socket misses while connecting, so no sleep is needed.
    start_seq = client.get_stats().last_event_seq
    with Subscriber(daemon.pub, client=client, last_seq=start_seq) as sub:
        req = quality_issue_request(new_tag())
        created = client.create_case(req)
        case = created.case
        assert case.case_id, "daemon assigned no case_id"
        assert (case.order_id, case.consumer_id, case.merchant_id) == \
            (req.order_id, req.consumer_id, req.merchant_id)
        assert case.status == case_pb2.CASE_STATUS_PROPOSAL_PENDING, \
            f"status {case_pb2.CaseStatus.Name(case.status)}, judgement: {created.judgement}"
        assert created.judgement.intervene
        p = case.proposal
        assert p.state == case_pb2.PROPOSAL_STATE_PENDING
        assert p.issue_kind == case_pb2.ISSUE_KIND_QUALITY
        assert p.expires_at_ms - p.issued_at_ms == PROPOSAL_TTL_MS

        seen = []  # every announcement after start_seq, in the order delivered
        expired = None
        deadline = time.monotonic() + EVENT_WAIT_S
        while expired is None:
            left = deadline - time.monotonic()
            assert left > 0, (f"no proposal.expired for {case.case_id} within {EVENT_WAIT_S}s "
                              f"(ttl {PROPOSAL_TTL_MS} ms); saw "
                              f"{[(e.seq, e.topic, e.case_id) for e in seen]}")
            ev = sub.recv(timeout=left)
            if ev is None:
                continue
            seen.append(ev)
            if ev.topic == "proposal.expired" and ev.case_id == case.case_id:
                expired = ev

    seqs = [e.seq for e in seen]
    # No gaps, no repeats: each announcement is the next sequence number after the last.
    assert seqs == list(range(start_seq + 1, start_seq + 1 + len(seen))), seqs
    before = seen[-2].seq if len(seen) > 1 else start_seq
    assert expired.seq == before + 1
    mine = [e.topic for e in seen if e.case_id == case.case_id]
    assert "proposal.issued" in mine and mine[-1] == "proposal.expired", mine
    assert mine.index("proposal.issued") < mine.index("proposal.expired")
    assert expired.previous_status == case_pb2.CASE_STATUS_PROPOSAL_PENDING
    assert expired.case.case_id == case.case_id
    assert expired.case.proposal.state == case_pb2.PROPOSAL_STATE_EXPIRED
    assert expired.time_ms >= p.expires_at_ms

    # The stored case agrees with the announcement.
    after = client.get_case(case_id=case.case_id).case
    assert after.proposal.state == case_pb2.PROPOSAL_STATE_EXPIRED
    assert after.status != case_pb2.CASE_STATUS_PROPOSAL_PENDING


def test_merchant_reject_while_proposal_pending_is_failed_precondition(client):
    req = quality_issue_request(new_tag())
    t0 = time.monotonic()
    case = client.create_case(req).case
    assert case.status == case_pb2.CASE_STATUS_PROPOSAL_PENDING
    with pytest.raises(RpcError) as ei:
        client.merchant_reject(case_id=case.case_id, merchant_id=req.merchant_id,
                               reason="we think the seam was cut", expected_version=case.version)
    elapsed_ms = (time.monotonic() - t0) * 1000
    assert elapsed_ms < PROPOSAL_TTL_MS, f"too slow to test the window ({elapsed_ms:.0f} ms)"
    assert ei.value.code == StatusCode.FAILED_PRECONDITION, str(ei.value)
    assert ei.value.message
    # The rejection was not applied.
    again = client.get_case(case_id=case.case_id).case
    assert again.status != case_pb2.CASE_STATUS_MERCHANT_REJECTED


def test_random_payload_is_invalid_argument_and_daemon_still_answers(client):
    rng = random.Random(6)
    junk = bytes(rng.getrandbits(8) for _ in range(64))
    with pytest.raises(Exception):  # sanity: it really is not a CreateCaseRequest
        case_service_pb2.CreateCaseRequest.FromString(junk)
    resp = client.call_raw("aftersales.v1.CaseService/CreateCase", junk, idempotency_key=new_tag())
    assert resp.code == StatusCode.INVALID_ARGUMENT, (StatusCode.Name(resp.code), resp.message)
    assert resp.message and resp.payload == b""
    assert client.ping(payload=b"still there").payload == b"still there"


def test_random_bytes_as_envelope_gets_an_answer_and_daemon_still_answers(client):
    rng = random.Random(66)  # first byte 0x12: no request_id field the daemon could salvage
    junk = bytes(rng.getrandbits(8) for _ in range(64))
    with pytest.raises(Exception):
        envelope_pb2.RequestEnvelope.FromString(junk)
    resp = client.send_envelope(junk)
    assert resp.code == StatusCode.INVALID_ARGUMENT, (StatusCode.Name(resp.code), resp.message)
    assert resp.request_id == 0 and resp.message
    assert client.ping(payload=b"ok").payload == b"ok"


def test_unknown_method_is_unimplemented(client):
    for method in ("aftersales.v1.CaseService/FlyToTheMoon", "nope.v1.Nothing/Ping"):
        resp = client.call_raw(method, b"")
        assert resp.code == StatusCode.UNIMPLEMENTED, (method, StatusCode.Name(resp.code), resp.message)
        assert resp.message
    with pytest.raises(RpcError) as ei:
        client.call("aftersales.v1.AdminService/Reboot", case_service_pb2.GetCaseRequest())
    assert ei.value.code == StatusCode.UNIMPLEMENTED


def test_same_idempotency_key_is_applied_once(client):
    req = quality_issue_request(new_tag())
    key = "py-idem-" + new_tag()
    first = client.create_case(req, idempotency_key=key).case
    second = client.create_case(req, idempotency_key=key).case  # a retry: same answer
    assert second.case_id == first.case_id and second.version == first.version
    with pytest.raises(RpcError) as ei:  # a new key is a new request: the line is taken
        client.create_case(req)
    assert ei.value.code == StatusCode.ALREADY_EXISTS


def test_get_unknown_case_is_not_found(client):
    with pytest.raises(RpcError) as ei:
        client.get_case(case_id="AS9999999999")
    assert ei.value.code == StatusCode.NOT_FOUND


def test_subscriber_replays_announcements_made_before_it_connected(daemon, client):
    start_seq = client.get_stats().last_event_seq
    first = client.create_case(quality_issue_request(new_tag())).case
    # A barrier: under --fsync everysec announcements leave about one fdatasync after the
    # reply, so wait until none is waiting; then first's announcements are surely out.
    deadline = time.monotonic() + EVENT_WAIT_S
    while client.get_stats().unpublished_events:
        assert time.monotonic() < deadline, "announcements still unpublished"
        time.sleep(0.01)
    with Subscriber(daemon.pub, client=client, last_seq=start_seq) as sub:
        # first's announcements were published before this socket existed; the next live
        # one exposes the gap and they are fetched with ReplayEvents.
        time.sleep(0.2)
        second = client.create_case(quality_issue_request(new_tag())).case
        got, deadline = [], time.monotonic() + EVENT_WAIT_S
        while not any(e.case_id == second.case_id for e in got):
            assert time.monotonic() < deadline, [(e.seq, e.topic, e.case_id) for e in got]
            ev = sub.recv(timeout=max(0.0, deadline - time.monotonic()))
            if ev is not None:
                got.append(ev)
        assert [e.seq for e in got] == list(range(start_seq + 1, start_seq + 1 + len(got)))
        assert ("case.created", first.case_id) in [(e.topic, e.case_id) for e in got]
        assert sub.replayed >= 1


def test_announcements_carry_the_daemons_incarnation(daemon, client):
    stats = client.get_stats()
    assert stats.incarnation != 0
    assert 1 <= stats.incarnation_start_seq <= stats.last_event_seq + 1
    with Subscriber(daemon.pub, client=client, last_seq=stats.last_event_seq,
                    incarnation=stats.incarnation) as sub:
        case = client.create_case(quality_issue_request(new_tag())).case
        got, deadline = [], time.monotonic() + EVENT_WAIT_S
        while not any(e.case_id == case.case_id for e in got):
            assert time.monotonic() < deadline, [(e.seq, e.topic, e.case_id) for e in got]
            ev = sub.recv(timeout=max(0.0, deadline - time.monotonic()))
            if ev is not None:
                got.append(ev)
    # No restart in between: every announcement is of the incarnation GetStats named.
    assert {(e.incarnation, e.incarnation_start_seq) for e in got} == \
        {(stats.incarnation, stats.incarnation_start_seq)}
    replay = client.replay_events(from_seq=got[0].seq, max_events=1)
    assert (replay.incarnation, replay.incarnation_start_seq) == \
        (stats.incarnation, stats.incarnation_start_seq)
    assert replay.events[0].incarnation == stats.incarnation


def test_curve_keys_roles_and_strangers(curve_daemon):
    """CURVE daemon (conftest.curve_daemon): "gateway" is a consumer-gateway, "watcher" an
    observer, "stranger" has a key the clients file does not list."""
    d = curve_daemon
    with Client(d.rpc, timeout=2.0, retries=1, curve=d.curve("gateway")) as gateway, \
            Client(d.rpc, timeout=2.0, retries=1, curve=d.curve("watcher")) as watcher:
        stats = watcher.get_stats()
        # The Subscriber takes the watcher's keys for its SUB socket; anything published
        # while its handshake is under way is replayed from last_seq.
        with Subscriber(d.pub, topics=["case."], client=watcher, last_seq=stats.last_event_seq,
                        incarnation=stats.incarnation) as sub:
            req = quality_issue_request(new_tag())
            case = gateway.create_case(req).case
            assert case.case_id and case.consumer_id == req.consumer_id
            got, deadline = [], time.monotonic() + EVENT_WAIT_S
            while ("case.created", case.case_id) not in [(e.topic, e.case_id) for e in got]:
                assert time.monotonic() < deadline, [(e.seq, e.topic, e.case_id) for e in got]
                ev = sub.recv(timeout=max(0.0, deadline - time.monotonic()))
                if ev is not None:
                    got.append(ev)

        # An observer may read but not act for a consumer.
        assert watcher.get_case(case_id=case.case_id).case.case_id == case.case_id
        with pytest.raises(RpcError) as ei:
            watcher.cancel_case(case_id=case.case_id, consumer_id=req.consumer_id,
                                expected_version=case.version)
        assert ei.value.code == StatusCode.PERMISSION_DENIED, str(ei.value)
        assert gateway.get_case(case_id=case.case_id).case.status == case.status  # not cancelled

        # An unlisted key: the handshake is refused, so no answer ever comes.
        with Client(d.rpc, timeout=0.5, retries=0, curve=d.curve("stranger")) as stranger:
            with pytest.raises(RpcTimeout):
                stranger.ping()
        assert watcher.get_stats().zap_refusals >= 1
