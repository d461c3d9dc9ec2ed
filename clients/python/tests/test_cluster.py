"""Cluster-aware clients: routing as the Swift ShardKey routes; the retry and loss paths
against fake members (fakes.FakeRouter); and against real clusters (PostgreSQL from
scripts/pg-throwaway and aftersalesd members, see cluster_support.py) calls through a
kill -9, ListCases across members, and a subscriber that hears every expiry once through
a kill and a pause. Every wait is bounded."""
from __future__ import annotations

import collections
import time
import uuid

import pytest

from aftersales_client import (Client, ClusterClient, ClusterSubscriber, RpcError,
                               ShardEventsLost, StatusCode, admin_service_pb2, case_pb2, case_service_pb2,
                               envelope_pb2, shard_of_call, shard_of_case_id,
                               shard_of_order_line)
from aftersales_client import routing

from fakes import FakeRouter

GET_CASE = "aftersales.v1.CaseService/GetCase"
GET_CLUSTER_MAP, _, _ = Client.methods()["get_cluster_map"]
REPLAY_EVENTS, _, _ = Client.methods()["replay_events"]


def intervention_case(order: str, merchant: str = "M1") -> case_service_pb2.CreateCaseRequest:
    """A signed, full, refund-only case with a defect photo: the platform proposes at once
    (and the proposal expires after the members' --proposal-ttl)."""
    return case_service_pb2.CreateCaseRequest(
        order_id=order, order_line_id="1", consumer_id="C1", merchant_id=merchant,
        category="apparel", type=case_pb2.CASE_TYPE_REFUND_ONLY,
        delivery=case_pb2.DELIVERY_STATE_SIGNED, paid_amount=12900, refund_amount=12900,
        reason="the zip broke on first use",
        signals=case_pb2.Signals(evidence=[case_pb2.Evidence(
            kind=case_pb2.EVIDENCE_KIND_PHOTO, tags=[case_pb2.ISSUE_TAG_DEFECT],
            description="broken zip")]),
    )


def test_shard_key_matches_the_swift_vectors():
    assert shard_of_order_line("O1", "", 64) == 7
    assert shard_of_order_line("order-42", "line-7", 64) == 26
    assert shard_of_order_line("订单", "", 16) == 0
    assert shard_of_case_id("AS0000000069", 64) == 5
    assert shard_of_case_id("AS69", 64) is None and shard_of_case_id("XS0000000069", 64) is None
    # Calls are routed by the contract: CreateCase by its order line, any request with a
    # case_id by the case, the rest (ListCases, admin calls) to any member.
    create = case_service_pb2.CreateCaseRequest(order_id="order-42", order_line_id="line-7")
    assert shard_of_call(routing.CREATE_CASE_METHOD, create, 64) == 26
    assert shard_of_call(GET_CASE, case_service_pb2.GetCaseRequest(case_id="AS0000000069"), 64) == 5
    assert "aftersales.v1.CaseService/CancelCase" in routing.CASE_ROUTED_METHODS
    assert "aftersales.v1.CaseService/ListCases" not in routing.CASE_ROUTED_METHODS
    assert routing.CREATE_CASE_METHOD in routing.MUTATING_METHODS
    assert GET_CASE not in routing.MUTATING_METHODS


def answer(env: envelope_pb2.RequestEnvelope, message=None, *, code=StatusCode.OK, text="",
           redirect=None) -> envelope_pb2.ResponseEnvelope:
    """A fake member's answer to ``env``."""
    resp = envelope_pb2.ResponseEnvelope(request_id=env.request_id, code=code, message=text,
                                         redirect=redirect)
    if message is not None:
        resp.payload = message.SerializeToString()
    return resp


def cluster_map(owner: str, *members: str, shard_count: int = 1):
    return admin_service_pb2.GetClusterMapResponse(
        shard_count=shard_count,
        shards=[admin_service_pb2.ShardOwner(shard=s, rpc_endpoint=owner)
                for s in range(shard_count)],
        members=[admin_service_pb2.ClusterMember(rpc_endpoint=m) for m in members])


def test_a_mutating_call_keeps_its_idempotency_key_through_redirects_and_failovers():
    """A redirects to B; B is between owners, then does not answer, then answers: four
    attempts at two members, one idempotency key."""
    keys = []  # (member, key) of every CreateCase attempt
    owner = {"now": "A"}
    endpoints = {}

    def member(name):
        def handle(env, n):
            if env.method == GET_CLUSTER_MAP:
                assert env.idempotency_key == ""
                return answer(env, cluster_map(endpoints[owner["now"]], *endpoints.values()))
            keys.append((name, env.idempotency_key))
            if name == "A":
                owner["now"] = "B"
                return answer(env, code=StatusCode.UNAVAILABLE, text="moved",
                              redirect=envelope_pb2.Redirect(shard=0, rpc_endpoint=endpoints["B"],
                                                             shard_count=1))
            tries = sum(1 for who, _ in keys if who == "B")
            if tries == 1:
                return answer(env, code=StatusCode.UNAVAILABLE, text="shard 0 has no owner",
                              redirect=envelope_pb2.Redirect(shard=0, shard_count=1))
            if tries == 2:
                return None  # a member that died: no answer at all
            return answer(env, case_service_pb2.CreateCaseResponse(
                case=case_pb2.Case(case_id="AS0000000001")))
        return handle

    with FakeRouter(member("A")) as a, FakeRouter(member("B")) as b:
        endpoints.update(A=a.endpoint, B=b.endpoint)
        with ClusterClient([a.endpoint], timeout=0.3, failover_deadline=5.0) as client:
            made = client.create_case(intervention_case("K1"))
    assert made.case.case_id == "AS0000000001"
    assert [who for who, _ in keys] == ["A", "B", "B", "B"]
    assert len({key for _, key in keys}) == 1 and keys[0][1], keys


def test_a_call_gives_up_at_its_deadline_with_advice():
    def between_owners(env, n):
        if env.method == GET_CLUSTER_MAP:
            return answer(env, cluster_map("", fake.endpoint))
        return answer(env, code=StatusCode.UNAVAILABLE, text="shard 0 has no owner",
                      redirect=envelope_pb2.Redirect(shard=0, shard_count=1))

    with FakeRouter(between_owners) as fake, ClusterClient([fake.endpoint], timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(RpcError) as failed:
            client.get_case(case_id="AS0000000001", deadline=0.5)
    # Backoff 25, 50, 100, 200 ms; the next pause (400 ms) would pass the deadline.
    assert 0.3 < time.monotonic() - started <= 0.5 + 0.3
    assert failed.value.code == StatusCode.UNAVAILABLE
    assert "gave up after" in str(failed.value) and "shard 0" in str(failed.value)


def test_subscriber_reports_announcements_too_old_to_replay():
    """Shard 1 resumes at 5 but keeps only 9 on: ShardEventsLost(1, 6, 8, 9), then 9.
    Shard 2, not named in from_positions, starts at its latest (4)."""
    def event(shard, seq, topic):
        return envelope_pb2.EventEnvelope(shard=shard, seq=seq, topic=topic,
                                          case_id=f"AS{seq:010d}")
    kept = {0: [event(0, 1, "proposal.expired")],
            1: [event(1, 9, "proposal.expired"), event(1, 10, "case.updated")],
            2: [event(2, 4, "proposal.expired")]}

    def member(env, n):
        if env.method == GET_CLUSTER_MAP:
            return answer(env, cluster_map(fake.endpoint, fake.endpoint, shard_count=3))
        assert env.method == REPLAY_EVENTS, env.method
        request = admin_service_pb2.ReplayEventsRequest.FromString(env.payload)
        events = kept[request.shard]
        if request.from_seq < events[0].seq - 1:
            return answer(env, code=StatusCode.OUT_OF_RANGE,
                          text=f"announcement {request.from_seq} of shard {request.shard} is no "
                               f"longer kept (--event-retention); the oldest available is "
                               f"{events[0].seq}. Re-read the cases you follow")
        return answer(env, admin_service_pb2.ReplayEventsResponse(
            events=[e for e in events if e.seq >= request.from_seq][:request.max_events],
            last_seq=events[-1].seq, oldest_available_seq=events[0].seq))

    with FakeRouter(member) as fake, \
            ClusterSubscriber([fake.endpoint], topics=["proposal."],
                              from_positions={0: 0, 1: 5}) as sub:
        assert sub.wait_ready(5)
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            item = sub.recv(timeout=0.2)
            if item is not None:
                got.append(item if isinstance(item, ShardEventsLost) else (item.shard, item.seq))
        time.sleep(1.2)  # one more tail check: nothing more, nothing twice
        assert sub.recv(timeout=0) is None
        assert sub.positions == {0: 1, 1: 10, 2: 4}
    assert sorted(got, key=str) == sorted([(0, 1), ShardEventsLost(1, 6, 8, 9), (1, 9)], key=str)
    assert got.index(ShardEventsLost(1, 6, 8, 9)) < got.index((1, 9))


def test_a_daemon_on_its_own_is_a_cluster_of_one_shard(daemon):
    with ClusterClient([daemon.rpc], timeout=2.0, failover_deadline=5.0) as client:
        made = client.create_case(intervention_case(f"solo-{uuid.uuid4().hex[:8]}"))
        assert client.shard_count == 1
        assert client.get_case(case_id=made.case.case_id).case.order_id == made.case.order_id
        listed = client.list_cases(merchant_id="M1", page_size=1000)
        assert made.case.case_id in [c.case_id for c in listed.cases]


def test_calls_succeed_across_a_kill_of_their_member(start_cluster):
    cluster = start_cluster(shards=8, members=2)
    served_by = cluster.wait_until_served()
    victim, survivor = cluster.members
    victim_shards = {s for s, m in served_by.items() if m is victim}
    assert victim_shards, "the member to kill serves no shard"
    with ClusterClient([victim.rpc, survivor.rpc], timeout=1.0, failover_deadline=20.0) as client:
        # A stale map is corrected by the redirect the member answers with.
        first = client.create_case(intervention_case("F-first"))
        stale = client.cluster_map
        for shard in victim_shards:
            stale.owners[shard] = survivor.rpc
        probe = cluster.probe_case_id(min(victim_shards))
        with pytest.raises(RpcError) as not_found:
            client.get_case(case_id=probe)
        assert not_found.value.code == StatusCode.NOT_FOUND, not_found.value
        assert client.cluster_map.owners[min(victim_shards)] == victim.rpc

        created = [first.case.case_id]
        after_kill_shards = set()
        for n in range(60):
            order = f"F{n}"
            if n == 20:
                victim.kill()
            if n >= 20:
                after_kill_shards.add(shard_of_order_line(order, "1", cluster.shard_count))
            made = client.create_case(intervention_case(order))
            created.append(made.case.case_id)
            assert client.get_case(case_id=made.case.case_id).case.order_id == order
        assert len(set(created)) == 61
        assert after_kill_shards & victim_shards, "no call after the kill went to its shards"
        assert client.shard_count == 8
        assert victim.rpc not in client.cluster_map.owners.values()


def test_list_cases_over_three_members_returns_each_case_once(start_cluster):
    cluster = start_cluster(shards=6, members=3)
    served_by = cluster.wait_until_served()
    assert len(set(map(id, served_by.values()))) == 3, "not every member serves shards"
    with ClusterClient([cluster.members[0].rpc], timeout=2.0) as client:
        mine = set()
        for n in range(25):
            made = client.create_case(intervention_case(
                f"L{n}", merchant="M-other" if n % 5 == 0 else "M-list"))
            if n % 5 != 0:
                mine.add(made.case.case_id)
        listed, token, pages = [], "", 0
        while True:
            page = client.list_cases(merchant_id="M-list", page_size=7, page_token=token)
            listed += [c.case_id for c in page.cases]
            token, pages = page.next_page_token, pages + 1
            if not token or pages >= 20:
                break
    assert len(listed) == len(mine) and set(listed) == mine, f"{len(listed)} listed, {len(mine)} made"
    assert listed == sorted(listed)
    assert pages == 3


def test_subscriber_hears_every_expiry_once_through_a_kill_and_a_pause(start_cluster):
    cluster = start_cluster(shards=8, members=3, member_args=["--proposal-ttl", "1500ms"])
    served_by = cluster.wait_until_served()
    killed, paused, _ = cluster.members
    seeds = [m.rpc for m in cluster.members]
    heard = collections.Counter()
    lost = []

    def listen(sub: ClusterSubscriber, seconds: float, until=lambda: False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            item = sub.recv(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            if isinstance(item, ShardEventsLost):
                lost.append(item)
            elif item is not None:
                heard[item.case_id] += 1

    with ClusterSubscriber(seeds, topics=["proposal.expired"]) as sub, \
            ClusterClient(seeds, timeout=1.0, failover_deadline=20.0) as client:
        assert sub.wait_ready(10), "the subscriber learnt no position within 10 s"
        assert set(sub.positions) == set(range(8))
        cases = {client.create_case(intervention_case(f"X{n}")).case.case_id for n in range(40)}
        shards_hit = {shard_of_case_id(c, 8) for c in cases}
        assert {s for s, m in served_by.items() if m in (killed, paused)} <= shards_hit
        killed.kill()
        paused.pause()
        try:
            listen(sub, 4.0)  # the expiries (1.5 s) fall due while two members are out
        finally:
            paused.resume()
        listen(sub, 25.0, until=lambda: cases <= set(heard))
        listen(sub, 2.0)  # anything heard twice would have arrived by now
    assert set(heard) == cases, f"missing: {sorted(cases - set(heard))}"
    assert all(n == 1 for n in heard.values()), f"heard twice: {[c for c, n in heard.items() if n > 1]}"
    assert not lost, lost
