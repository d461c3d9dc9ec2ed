"""Announcements from the daemon's PUB socket, in sequence order, with gaps filled.

Every announcement carries EventEnvelope.seq, which grows by exactly one per
announcement across all topics. To see every gap the SUB socket subscribes to all
topics and the topic filter is applied here; when an announcement arrives with a seq
past the next expected one, the missed range is fetched with AdminService/ReplayEvents
(the ZeroMQ guide's "Clone" pattern) and delivered first, in order.
"""
from __future__ import annotations

import collections
import time
from typing import Deque, Iterable, Optional

import zmq

from ._proto import envelope_pb2
from .client import Client, RpcError, StatusCode

DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:7701"


class EventsLost(Exception):
    """Announcements from ``from_seq`` on can no longer be replayed (OUT_OF_RANGE): the
    caller should re-read the cases it cares about. Delivery resumes after this."""

    def __init__(self, from_seq: int, to_seq: int, message: str):
        self.from_seq = from_seq
        self.to_seq = to_seq
        super().__init__(f"announcements {from_seq}..{to_seq} lost: {message}")


class Subscriber:
    """A SUB socket on the daemon's PUB endpoint.

    topics: topic prefixes to deliver ("" = all); filtered locally (see module doc).
    client: a Client used for ReplayEvents; without one, gaps raise EventsLost at once.
    last_seq: the seq of the last announcement already seen (e.g. GetStats.last_event_seq
    read before subscribing); None = start from whatever arrives first. Anything after
    last_seq that the SUB socket missed while connecting is replayed.
    """

    def __init__(self, endpoint: str = DEFAULT_PUB_ENDPOINT, topics: Iterable[str] = ("",), *,
                 client: Optional[Client] = None, last_seq: Optional[int] = None,
                 context: Optional[zmq.Context] = None, replay_batch: int = 1000):
        self.endpoint = endpoint
        self.topics = tuple(topics) or ("",)
        self.client = client
        self.last_seq = last_seq
        self.replay_batch = replay_batch
        self.replayed = 0  # announcements delivered from ReplayEvents rather than PUB
        self._pending: Deque[envelope_pb2.EventEnvelope] = collections.deque()
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(endpoint)

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wanted(self, topic: str) -> bool:
        return any(topic.startswith(t) for t in self.topics)

    def _replay(self, first: int, last: int) -> None:
        """Fetch first..last (inclusive) and queue the wanted ones."""
        if self.client is None:
            raise EventsLost(first, last, "no client to replay with")
        seq = first
        while seq <= last:
            try:
                resp = self.client.replay_events(from_seq=seq,
                                                 max_events=min(self.replay_batch, last - seq + 1))
            except RpcError as e:
                if e.code == StatusCode.OUT_OF_RANGE:
                    raise EventsLost(seq, last, e.message) from None
                raise
            got = [ev for ev in resp.events if seq <= ev.seq <= last]
            if not got:
                raise RpcError(StatusCode.INTERNAL,
                               f"ReplayEvents(from_seq={seq}) returned nothing up to {last} "
                               f"(last_seq={resp.last_seq})", "aftersales.v1.AdminService/ReplayEvents",
                               local=True)
            for ev in got:
                if ev.seq != seq:
                    raise RpcError(StatusCode.INTERNAL,
                                   f"ReplayEvents returned seq {ev.seq}, expected {seq}",
                                   "aftersales.v1.AdminService/ReplayEvents", local=True)
                if self._wanted(ev.topic):
                    self._pending.append(ev)
                self.replayed += 1
                seq += 1

    def recv(self, timeout: Optional[float] = None) -> Optional[envelope_pb2.EventEnvelope]:
        """The next wanted announcement in seq order, or None after ``timeout`` seconds
        (None = wait forever). Raises EventsLost when a gap cannot be filled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._pending:
                return self._pending.popleft()
            wait_ms = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(wait_ms, zmq.POLLIN):
                return None
            frames = self._sock.recv_multipart()
            if len(frames) != 2:
                continue  # not an announcement; ignore
            ev = envelope_pb2.EventEnvelope()
            try:
                ev.ParseFromString(frames[1])
            except Exception:
                continue
            if self.last_seq is not None:
                if ev.seq <= self.last_seq:
                    continue  # already delivered (e.g. through a replay)
                if ev.seq > self.last_seq + 1:
                    try:
                        self._replay(self.last_seq + 1, ev.seq - 1)
                    except EventsLost:
                        # What was replayed before the loss stays queued; the live
                        # announcement follows it. Delivery resumes with the next recv().
                        self.last_seq = ev.seq
                        if self._wanted(ev.topic):
                            self._pending.append(ev)
                        raise
            self.last_seq = ev.seq
            if self._wanted(ev.topic):
                self._pending.append(ev)

    def __iter__(self):
        while True:
            ev = self.recv()
            if ev is not None:
                yield ev
