"""The client's framing, errors, Lazy Pirate retries, gap fill and rewinds, against fake
sockets (no daemon needed)."""
from __future__ import annotations

import random
import time

import pytest
import zmq

from aftersales_client import (Client, CurveKeys, EventsLost, EventsRewound, RpcError, RpcTimeout,
                               StatusCode, Subscriber, admin_service_pb2, case_service_pb2,
                               envelope_pb2, load_curve_keys)

from fakes import FakeRouter


def ok(env, msg) -> envelope_pb2.ResponseEnvelope:
    return envelope_pb2.ResponseEnvelope(request_id=env.request_id, code=StatusCode.OK,
                                         payload=msg.SerializeToString())


def ping_handler(env, n):
    assert env.method == "aftersales.v1.AdminService/Ping"
    req = admin_service_pb2.PingRequest.FromString(env.payload)
    return ok(env, admin_service_pb2.PingResponse(payload=req.payload, version="fake"))


def test_ping_over_req_has_one_envelope_frame_after_delimiter():
    with FakeRouter(ping_handler) as fake, Client(fake.endpoint, timeout=2, retries=0) as c:
        resp = c.ping(payload=b"hello")
    assert resp.payload == b"hello" and resp.version == "fake"
    frames, env = fake.received[0]
    assert frames[0] == b"" and len(frames) == 2  # REQ's delimiter + the envelope
    assert env.deadline_ms == 2000 and env.idempotency_key == ""  # read-only: no key


def test_error_code_and_message_raise_rpc_error():
    def handler(env, n):
        return envelope_pb2.ResponseEnvelope(request_id=env.request_id,
                                             code=StatusCode.NOT_FOUND, message="no case AS1")
    with FakeRouter(handler) as fake, Client(fake.endpoint, timeout=2, retries=0) as c:
        with pytest.raises(RpcError) as ei:
            c.get_case(case_id="AS1")
    assert ei.value.code == StatusCode.NOT_FOUND
    assert ei.value.code_name == "NOT_FOUND" and ei.value.message == "no case AS1"
    assert not ei.value.local


def test_lazy_pirate_retry_reuses_request_id_and_idempotency_key():
    def handler(env, n):
        if n < 3:
            return None  # the first two attempts are "lost"
        return ok(env, case_service_pb2.CreateCaseResponse())

    with FakeRouter(handler) as fake, Client(fake.endpoint, timeout=0.2, retries=3) as c:
        c.create_case(order_id="o-1")
        assert c.reconnects == 2
    envs = [env for _, env in fake.received]
    assert len(envs) == 3
    assert envs[0].idempotency_key  # a mutating call gets a key even if none given
    assert {e.idempotency_key for e in envs} == {envs[0].idempotency_key}
    assert {e.request_id for e in envs} == {envs[0].request_id}
    assert all(e.payload == envs[0].payload for e in envs)


def test_explicit_idempotency_key_is_sent_on_every_attempt():
    with FakeRouter(lambda env, n: None if n == 1 else ok(env, case_service_pb2.MerchantRejectResponse())) as fake, \
            Client(fake.endpoint, timeout=0.2, retries=1) as c:
        c.merchant_reject(case_id="AS1", merchant_id="m", reason="r", idempotency_key="k-42")
    assert [env.idempotency_key for _, env in fake.received] == ["k-42", "k-42"]


def test_no_answer_gives_up_after_all_attempts_in_bounded_time():
    with FakeRouter(lambda env, n: None) as fake, Client(fake.endpoint, timeout=0.15, retries=2) as c:
        t0 = time.monotonic()
        with pytest.raises(RpcTimeout) as ei:
            c.ping()
        elapsed = time.monotonic() - t0
    assert ei.value.code == StatusCode.DEADLINE_EXCEEDED and ei.value.local
    assert len(fake.received) == 3
    assert 0.4 < elapsed < 2.0


def test_client_recovers_after_a_timeout():
    with FakeRouter(lambda env, n: None if n == 1 else ping_handler(env, n)) as fake, \
            Client(fake.endpoint, timeout=0.2, retries=0) as c:
        with pytest.raises(RpcTimeout):
            c.ping()
        assert c.ping(payload=b"x").payload == b"x"


def test_curve_keys_survive_a_lazy_pirate_reconnect():
    server_pub, server_secret = zmq.curve_keypair()
    client_pub, client_secret = zmq.curve_keypair()
    curve = CurveKeys(server_key=server_pub.decode(), secret_key=client_secret)
    assert curve.public_key == client_pub
    # The first request goes unanswered: the retry is on a new socket, which must be a
    # CURVE client too or the server would never hear it.
    with FakeRouter(lambda env, n: None if n == 1 else ping_handler(env, n),
                    curve_secret_key=server_secret) as fake, \
            Client(fake.endpoint, timeout=0.5, retries=1, curve=curve) as c:
        assert c.ping(payload=b"x").payload == b"x"
        assert c.reconnects == 1


def test_load_curve_keys_reads_keygen_files_and_refuses_non_keys(tmp_path):
    server_pub, _ = zmq.curve_keypair()
    client_pub, client_secret = zmq.curve_keypair()
    (tmp_path / "daemon.pub").write_bytes(server_pub + b"\n")  # keygen ends with a newline
    (tmp_path / "me.key").write_bytes(client_secret + b"\n")
    keys = load_curve_keys(str(tmp_path / "daemon.pub"), str(tmp_path / "me.key"))
    assert (keys.server_key, keys.secret_key, keys.public_key) == \
        (server_pub, client_secret, client_pub)
    for bad in ("", "too short", "~" * 40):  # '~' is not a Z85 character
        with pytest.raises(ValueError):
            CurveKeys(server_key=bad, secret_key=client_secret)


# -- subscriber ------------------------------------------------------------------------------

class FakeDaemonEvents:
    """A PUB socket plus a ROUTER answering ReplayEvents from the events published so far.
    ``restart(start)`` begins a new incarnation at ``start``, losing what was kept from
    there on; ``drop_replays`` ReplayEvents calls go unanswered (a daemon that is down)."""

    def __init__(self, oldest: int = 1):
        self.events = {}
        self.oldest = oldest
        self.incarnation, self.start = random.getrandbits(64) | 1, 1
        self.drop_replays = 0
        self.router = FakeRouter(self._replay)
        self.pub = zmq.Context.instance().socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind("tcp://127.0.0.1:*")
        self.pub_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def _replay(self, env, n):
        assert env.method == "aftersales.v1.AdminService/ReplayEvents"
        if self.drop_replays > 0:
            self.drop_replays -= 1
            return None
        req = admin_service_pb2.ReplayEventsRequest.FromString(env.payload)
        if req.from_seq < self.oldest:
            return envelope_pb2.ResponseEnvelope(request_id=env.request_id,
                                                 code=StatusCode.OUT_OF_RANGE, message="too old")
        last = max(self.events, default=0)
        evs = [self.events[s] for s in range(req.from_seq, last + 1)][: req.max_events or 1000]
        return ok(env, admin_service_pb2.ReplayEventsResponse(
            events=evs, last_seq=last, oldest_available_seq=self.oldest,
            incarnation=self.incarnation, incarnation_start_seq=self.start))

    def make(self, seq, topic="case.updated"):
        self.events[seq] = envelope_pb2.EventEnvelope(
            seq=seq, topic=topic, case_id=f"AS{seq}-{self.incarnation:x}",
            incarnation=self.incarnation, incarnation_start_seq=self.start)
        return self.events[seq]

    def restart(self, start):
        old = self.incarnation
        while self.incarnation == old:
            self.incarnation = random.getrandbits(64) | 1
        self.start = start
        for s in [s for s in self.events if s >= start]:
            del self.events[s]
        return self.incarnation

    def publish(self, ev):
        self.pub.send_multipart([ev.topic.encode(), ev.SerializeToString()])

    def close(self):
        self.router.close()
        self.pub.close(linger=0)


@pytest.fixture
def fake_events():
    f = FakeDaemonEvents()
    yield f
    f.close()


def _drain(sub, n, timeout=5.0):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        ev = sub.recv(timeout=max(0.0, deadline - time.monotonic()))
        if ev is not None:
            out.append(ev)
    return out


def test_subscriber_fills_gaps_from_replay(fake_events):
    topics = {1: "case.created", 2: "proposal.issued", 3: "case.updated", 4: "proposal.expired",
              5: "case.created", 6: "proposal.issued", 7: "case.closed"}
    for s, t in topics.items():
        fake_events.make(s, t)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=0) as sub:
        time.sleep(0.3)  # let the subscription reach the PUB socket
        for s in (1, 2, 6, 7):  # 3..5 "lost" on the way
            fake_events.publish(fake_events.events[s])
        got = _drain(sub, 7)
        assert [e.seq for e in got] == [1, 2, 3, 4, 5, 6, 7]
        assert [e.topic for e in got] == [topics[s] for s in range(1, 8)]
        assert sub.replayed >= 3 and sub.last_seq == 7


def test_subscriber_topic_filter_is_local_and_still_sees_gaps(fake_events):
    for s, t in {1: "case.created", 2: "proposal.issued", 3: "case.updated",
                 4: "proposal.expired", 5: "case.closed"}.items():
        fake_events.make(s, t)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, topics=["proposal."], client=c, last_seq=0) as sub:
        time.sleep(0.3)
        fake_events.publish(fake_events.events[1])
        fake_events.publish(fake_events.events[5])  # 2..4 missed, 2 and 4 wanted
        got = _drain(sub, 2)
        assert [(e.seq, e.topic) for e in got] == [(2, "proposal.issued"), (4, "proposal.expired")]
        assert sub.recv(timeout=0.2) is None and sub.last_seq == 5


def test_subscriber_reports_unreplayable_gap_then_continues(fake_events):
    fake_events.oldest = 5
    for s in range(1, 7):
        fake_events.make(s, "case.updated")
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=1) as sub:
        time.sleep(0.3)
        fake_events.publish(fake_events.events[6])
        with pytest.raises(EventsLost) as ei:
            sub.recv(timeout=5)
        assert ei.value.from_seq == 2 and ei.value.to_seq == 5
        ev = sub.recv(timeout=1)
        assert ev is not None and ev.seq == 6 and sub.last_seq == 6


def _publish(fake, *seqs):
    for s in seqs:
        fake.publish(fake.events[s])


def test_subscriber_reports_rewind_then_delivers_the_reused_numbers(fake_events):
    a = fake_events.incarnation
    for s in range(1, 6):
        fake_events.make(s)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=0) as sub:
        time.sleep(0.3)
        _publish(fake_events, 1, 2, 3, 4, 5)
        assert [e.seq for e in _drain(sub, 5)] == [1, 2, 3, 4, 5]
        # The daemon comes back without 4 and 5; its new incarnation reuses the numbers.
        b = fake_events.restart(start=4)
        for s in (4, 5, 6):
            fake_events.make(s)
        _publish(fake_events, 5, 5, 6)  # 4 missed (replayed), 5 twice (a duplicate)
        with pytest.raises(EventsRewound) as ei:
            sub.recv(timeout=5)
        e = ei.value
        assert isinstance(e, EventsLost)
        assert (e.from_seq, e.to_seq, e.old_incarnation, e.new_incarnation) == (4, 5, a, b)
        got = _drain(sub, 3)
        assert [(ev.seq, ev.case_id) for ev in got] == \
            [(s, fake_events.events[s].case_id) for s in (4, 5, 6)]
        assert sub.recv(timeout=0.2) is None
        assert sub.last_seq == 6 and sub.incarnation == b


def test_subscriber_finds_rewind_in_replayed_announcements(fake_events):
    a = fake_events.incarnation
    for s in range(1, 6):
        fake_events.make(s)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=0) as sub:
        time.sleep(0.3)
        _publish(fake_events, 1, 2, 3, 4, 5)
        assert len(_drain(sub, 5)) == 5
        b = fake_events.restart(start=4)  # loses 4 and 5, makes 4..6: all missed
        for s in (4, 5, 6):
            fake_events.make(s)
        c2 = fake_events.restart(start=7)  # then an ordinary restart
        _publish(fake_events, fake_events.make(7).seq)  # 7 > 5: no rewind on its own
        with pytest.raises(EventsRewound) as ei:
            sub.recv(timeout=5)
        assert (ei.value.from_seq, ei.value.to_seq) == (4, 5)
        assert (ei.value.old_incarnation, ei.value.new_incarnation) == (a, b)
        got = _drain(sub, 4)
        assert [(ev.seq, ev.incarnation) for ev in got] == [(4, b), (5, b), (6, b), (7, c2)]
        assert sub.incarnation == c2


def test_subscriber_rewind_against_the_incarnation_it_was_given(fake_events):
    a = fake_events.incarnation
    for s in range(1, 6):
        fake_events.make(s)
    b = fake_events.restart(start=3)
    for s in (3, 4):
        fake_events.make(s)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=5, incarnation=a) as sub:
        time.sleep(0.3)
        _publish(fake_events, 4)
        with pytest.raises(EventsRewound) as ei:
            sub.recv(timeout=5)
        assert (ei.value.from_seq, ei.value.to_seq) == (3, 5)
        assert [(ev.seq, ev.incarnation) for ev in _drain(sub, 2)] == [(3, b), (4, b)]


def test_subscriber_ordinary_restart_reports_nothing(fake_events):
    a = fake_events.incarnation
    for s in range(1, 6):
        fake_events.make(s)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=3, incarnation=a) as sub:
        time.sleep(0.3)
        b = fake_events.restart(start=6)  # nothing lost
        for s in (6, 7):
            fake_events.make(s)
        _publish(fake_events, 7)  # 4, 5 (made before the restart) and 6 are replayed
        got = _drain(sub, 4)
        assert [(ev.seq, ev.incarnation) for ev in got] == [(4, a), (5, a), (6, b), (7, b)]
        assert sub.recv(timeout=0.2) is None
        assert sub.last_seq == 7 and sub.incarnation == b


def test_subscriber_drops_duplicates(fake_events):
    for s in range(1, 5):
        fake_events.make(s)
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=0) as sub:
        time.sleep(0.3)
        _publish(fake_events, 1, 2, 2, 1, 4, 3, 4)  # 3 arrives after the replay gave it
        assert [ev.seq for ev in _drain(sub, 4)] == [1, 2, 3, 4]
        assert sub.recv(timeout=0.2) is None and sub.last_seq == 4


def test_subscriber_retries_replay_while_the_daemon_is_down(fake_events):
    for s in range(1, 5):
        fake_events.make(s)
    fake_events.drop_replays = 3
    with Client(fake_events.router.endpoint, timeout=0.2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=0) as sub:
        time.sleep(0.3)
        _publish(fake_events, 1, 4)
        assert sub.recv(timeout=1).seq == 1
        # 2..3 cannot be fetched yet: recv's time runs out, without an error.
        assert sub.recv(timeout=0.3) is None
        assert [ev.seq for ev in _drain(sub, 3)] == [2, 3, 4]
        assert fake_events.drop_replays == 0 and sub.replay_retries >= 2


def test_subscriber_drops_a_held_announcement_the_daemon_lost(fake_events):
    for s in range(1, 6):
        fake_events.make(s)
    a5 = fake_events.events[5]
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=0) as sub:
        time.sleep(0.3)
        _publish(fake_events, 1, 2, 3)
        assert len(_drain(sub, 3)) == 3
        b = fake_events.restart(start=4)  # 4 and 5 lost before the subscriber asks for 4
        fake_events.publish(a5)
        assert sub.recv(timeout=0.5) is None  # 5 was never delivered: nothing to report
        _publish(fake_events, fake_events.make(4).seq)
        assert [(ev.seq, ev.incarnation) for ev in _drain(sub, 1)] == [(4, b)]


def test_subscriber_reports_unreplayable_gap_across_a_restart(fake_events):
    a = fake_events.incarnation
    for s in range(1, 7):
        fake_events.make(s)
    b = fake_events.restart(start=7)
    for s in (7, 8):
        fake_events.make(s)
    fake_events.oldest = 8
    with Client(fake_events.router.endpoint, timeout=2, retries=0) as c, \
            Subscriber(fake_events.pub_endpoint, client=c, last_seq=1, incarnation=a) as sub:
        time.sleep(0.3)
        _publish(fake_events, 8)
        with pytest.raises(EventsLost) as ei:
            sub.recv(timeout=5)
        assert type(ei.value) is EventsLost and (ei.value.from_seq, ei.value.to_seq) == (2, 7)
        ev = sub.recv(timeout=1)
        assert ev is not None and (ev.seq, ev.incarnation) == (8, b) and sub.incarnation == b
