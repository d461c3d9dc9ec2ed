"""Announcements from the daemon's PUB socket, in sequence order, with gaps filled.

Every announcement carries EventEnvelope.seq, which grows by exactly one per
announcement across all topics. To see every gap the SUB socket subscribes to all
topics and the topic filter is applied here; when an announcement arrives with a seq
past the next expected one, the missed range is fetched with AdminService/ReplayEvents
(the ZeroMQ guide's "Clone" pattern) and delivered first, in order.

Conditions that are not announcements are raised by ``recv()`` at their place in the
order, after the announcements before them; delivery goes on with the next ``recv()``:

- ``EventsLost(from_seq, to_seq)``: a gap that ReplayEvents can no longer fill
  (OUT_OF_RANGE). Those announcements were never delivered.
- ``EventsRewound(from_seq, to_seq, old_incarnation, new_incarnation)``, a subclass of
  EventsLost: the daemon lost announcements it had already published (a restored
  backup, a disk that lied about a sync). Each start of the daemon begins a new
  incarnation (EventEnvelope.incarnation) at incarnation_start_seq; one that begins at
  or below the last seq seen means the announcements ``from_seq..to_seq`` delivered
  before are gone, and the next announcements reuse those numbers for other changes.
  Re-read the cases they named. An incarnation that begins after the last seq seen is
  an ordinary restart and raises nothing.

Daemon restarts are survived: the SUB socket reconnects on its own, and a ReplayEvents
call that gets no answer (or UNAVAILABLE) is retried with backoff; only OUT_OF_RANGE
counts as lost. ``recv(timeout)`` returns None if its time runs out meanwhile, and the
next ``recv()`` takes the retries up again.
"""
from __future__ import annotations

import collections
import time
from typing import Deque, Iterable, Optional, Union

import zmq

from ._proto import envelope_pb2
from .client import Client, CurveKeys, RpcError, RpcTimeout, StatusCode

DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:7701"
_REPLAY_METHOD = "aftersales.v1.AdminService/ReplayEvents"


class EventsLost(Exception):
    """Announcements from ``from_seq`` on can no longer be replayed (OUT_OF_RANGE): the
    caller should re-read the cases it cares about. Delivery resumes after this."""

    def __init__(self, from_seq: int, to_seq: int, message: str):
        self.from_seq = from_seq
        self.to_seq = to_seq
        super().__init__(f"announcements {from_seq}..{to_seq} lost: {message}")


class EventsRewound(EventsLost):
    """The announcements ``from_seq..to_seq`` already delivered are gone: incarnation
    ``new_incarnation`` began at ``from_seq`` after ``old_incarnation`` had reached
    ``to_seq``. The caller should re-read the cases they named. Delivery resumes after
    this with the new announcements, which reuse those numbers."""

    def __init__(self, from_seq: int, to_seq: int, old_incarnation: int, new_incarnation: int):
        self.old_incarnation = old_incarnation
        self.new_incarnation = new_incarnation
        super().__init__(from_seq, to_seq,
                         f"rewound: incarnation {new_incarnation:#x} began at {from_seq} after "
                         f"{old_incarnation:#x} had reached {to_seq}; the numbers are reused")


class Subscriber:
    """A SUB socket on the daemon's PUB endpoint.

    topics: topic prefixes to deliver ("" = all); filtered locally (see module doc).
    client: a Client used for ReplayEvents; without one, gaps raise EventsLost at once.
    last_seq, incarnation: the seq of the last announcement already seen and the
    incarnation it was seen in (e.g. GetStats.last_event_seq and GetStats.incarnation
    read before subscribing); None = start from whatever arrives first. Anything after
    last_seq that the SUB socket missed while connecting is replayed. Without
    incarnation, a rewind before the first announcement arrives goes unnoticed.
    curve: CurveKeys for the SUB socket (the PUB socket of a CURVE daemon admits only
    listed keys too); None = those of ``client``, if any. Pass the same keys as to the
    client, or another listed key; without them a CURVE daemon sends nothing.
    """

    # Pauses between ReplayEvents attempts while the daemon does not answer: doubling
    # from RETRY_MIN_S up to RETRY_MAX_S, back to RETRY_MIN_S after an answer.
    RETRY_MIN_S = 0.1
    RETRY_MAX_S = 2.0

    def __init__(self, endpoint: str = DEFAULT_PUB_ENDPOINT, topics: Iterable[str] = ("",), *,
                 client: Optional[Client] = None, last_seq: Optional[int] = None,
                 incarnation: Optional[int] = None,
                 context: Optional[zmq.Context] = None, replay_batch: int = 1000,
                 curve: Optional[CurveKeys] = None):
        self.endpoint = endpoint
        self.topics = tuple(topics) or ("",)
        self.client = client
        self.last_seq = last_seq
        self.incarnation = incarnation  # that of the last announcement processed
        self.replay_batch = replay_batch
        self.replayed = 0  # announcements delivered from ReplayEvents rather than PUB
        self.replay_retries = 0  # ReplayEvents calls retried because the daemon did not answer
        self._pending: Deque[Union[envelope_pb2.EventEnvelope, EventsLost]] = collections.deque()
        self._held: Optional[envelope_pb2.EventEnvelope] = None  # live, waiting for its gap
        self._retry_s = self.RETRY_MIN_S
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        if curve is None and client is not None:
            curve = client.curve
        if curve is not None:
            curve.apply(self._sock)
        self._sock.connect(endpoint)

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wanted(self, topic: str) -> bool:
        return any(topic.startswith(t) for t in self.topics)

    def _rewinds(self, ev: envelope_pb2.EventEnvelope) -> bool:
        """ev is of another incarnation than the last one processed, and that incarnation
        begins at or below the last seq processed. (0 = unknown: a daemon without
        incarnations, or none seen yet.)"""
        start = ev.incarnation_start_seq
        return (self.last_seq is not None and bool(self.incarnation) and bool(ev.incarnation)
                and ev.incarnation != self.incarnation and 0 < start <= self.last_seq)

    def _rewind(self, ev: envelope_pb2.EventEnvelope) -> None:
        start = ev.incarnation_start_seq
        self._pending.append(EventsRewound(start, self.last_seq, self.incarnation, ev.incarnation))
        self.last_seq = start - 1  # the numbers from start on are to be heard again
        self.incarnation = ev.incarnation

    def _accept(self, ev: envelope_pb2.EventEnvelope) -> None:
        self.last_seq = ev.seq
        self.incarnation = ev.incarnation
        if self._wanted(ev.topic):
            self._pending.append(ev)

    def _arrived(self, ev: envelope_pb2.EventEnvelope) -> None:
        """A live announcement."""
        if self._rewinds(ev):
            self._rewind(ev)
        if self.last_seq is None or ev.seq == self.last_seq + 1:
            self._accept(ev)
        elif ev.seq > self.last_seq + 1:
            self._held = ev  # delivered by _fill once the gap before it is replayed
        # else: already processed (e.g. through a replay): a duplicate

    def _pause(self, deadline: Optional[float]) -> bool:
        """Sleep before the next ReplayEvents attempt; False if recv's time is up."""
        pause = self._retry_s
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pause = min(pause, left)
        time.sleep(pause)
        self._retry_s = min(2 * self._retry_s, self.RETRY_MAX_S)
        self.replay_retries += 1
        return True

    def _skip_to_held(self, message: str) -> bool:
        """The gap before the held announcement cannot be replayed: report it, go on."""
        self._pending.append(EventsLost(self.last_seq + 1, self._held.seq - 1, message))
        self._accept(self._held)
        self._held = None
        return True

    def _fill(self, deadline: Optional[float]) -> bool:
        """Replay the gap before the held live announcement, then process it. False if
        recv's time ran out while the daemon did not answer (the next recv goes on)."""
        held = self._held
        while self.last_seq < held.seq - 1:
            first = self.last_seq + 1
            if self.client is None:
                return self._skip_to_held("no client to replay with")
            try:
                resp = self.client.replay_events(
                    from_seq=first, max_events=min(self.replay_batch, held.seq - first))
            except RpcError as e:
                if e.code == StatusCode.OUT_OF_RANGE:
                    return self._skip_to_held(e.message)
                # No answer: the daemon may be restarting. Anything else is a real error.
                if not (isinstance(e, RpcTimeout) or e.code == StatusCode.UNAVAILABLE):
                    raise
                if not self._pause(deadline):
                    return False
                continue
            self._retry_s = self.RETRY_MIN_S
            got = [ev for ev in resp.events if first <= ev.seq < held.seq]
            if not got:
                if resp.last_seq < first:
                    # The stream no longer reaches the held announcement: it was lost in a
                    # rewind before it was delivered. Later announcements show the rewind.
                    self._held = None
                    return True
                raise RpcError(StatusCode.INTERNAL,
                               f"ReplayEvents(from_seq={first}) returned nothing up to "
                               f"{held.seq - 1} (last_seq={resp.last_seq})", _REPLAY_METHOD,
                               local=True)
            for ev in got:
                if self._rewinds(ev):
                    self._rewind(ev)
                    break  # replay again from the rewind's start
                if ev.seq != self.last_seq + 1:
                    raise RpcError(StatusCode.INTERNAL, f"ReplayEvents returned seq {ev.seq}, "
                                   f"expected {self.last_seq + 1}", _REPLAY_METHOD, local=True)
                self._accept(ev)
                self.replayed += 1
        self._held = None
        # A held announcement that would now rewind what was replayed before it predates a
        # rewind met during the replay: its number names another announcement now.
        if not self._rewinds(held):
            self._accept(held)
        return True

    def recv(self, timeout: Optional[float] = None) -> Optional[envelope_pb2.EventEnvelope]:
        """The next wanted announcement in seq order, or None after ``timeout`` seconds
        (None = wait forever). Raises EventsLost when a gap cannot be filled and
        EventsRewound when announcements already delivered are gone (see module doc)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._pending:
                item = self._pending.popleft()
                if isinstance(item, EventsLost):
                    raise item
                return item
            if self._held is not None:
                if not self._fill(deadline):
                    return None
                continue
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
            self._arrived(ev)

    def __iter__(self):
        while True:
            ev = self.recv()
            if ev is not None:
                yield ev
