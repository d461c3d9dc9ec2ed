"""The announcements of a whole cluster (or of a daemon on its own: a cluster of one
shard), each exactly once, while members die and shards move: the Python side of the
Swift ``ClusterSubscriber``.

Each shard numbers its announcements on its own (EventEnvelope.shard, .seq), so the
subscriber keeps one position per shard: the seq of the last announcement of that shard
it processed. One SUB socket is connected to every member's PUB endpoint, and to new
members as the map shows them (checked every 2 s). It subscribes to every topic and
filters locally, so a jump in a shard's numbers is a real gap; a gap is filled through
``AdminService/ReplayEvents(shard=...)``, which any member serves from PostgreSQL, before
the live announcement after it. What was seen already (same shard, seq at or below the
position) is dropped. Once a second every shard is also asked for what came after its
position, so an announcement published by a member that died before it reached the
socket is still delivered. Announcements too old to replay are reported as
``ShardEventsLost`` in their place, and delivery goes on.

The work is done on a background thread that owns the sockets; ``recv()`` takes from
what it has delivered.
"""
from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Optional, Set, Union

import zmq

from ._proto import admin_service_pb2, envelope_pb2
from .client import Client, CurveKeys, RpcError, StatusCode
from .cluster import ClusterClient

# ReplayEvents with this from_seq returns no events but the shard's last_seq.
LATEST_SEQ_PROBE = (1 << 63) - 1
_OLDEST_IN_MESSAGE_RE = re.compile(r"the oldest available is (\d+)")


@dataclass(frozen=True)
class ShardEventsLost:
    """Announcements ``from_seq..through_seq`` of ``shard`` are gone for good (older than
    the cluster's --event-retention): re-read the cases you follow. Delivery goes on from
    ``oldest``, the oldest announcement still kept."""

    shard: int
    from_seq: int
    through_seq: int
    oldest: int

    def __str__(self) -> str:
        return (f"announcements {self.from_seq}..{self.through_seq} of shard {self.shard} "
                f"are lost (the oldest kept is {self.oldest}): re-read the cases you follow")


class SubscriberFailed(RuntimeError):
    """The subscriber's thread stopped on an unexpected error (the cause is chained)."""


_CLOSED = object()  # put in the queue by close(), so a blocked recv() wakes up


class ClusterSubscriber:
    """Announcements of every shard of a cluster, for topic prefixes, each exactly once.

    seeds: RPC endpoints of one or more members (or of a daemon on its own).
    topics: topic prefixes to deliver ("" = all).
    from_positions: {shard: position} to resume from, positions as ``positions`` reports
    them (the last seq already processed; delivery starts after it). Shards not named,
    and all without it, start at their latest announcement: only what comes after the
    subscriber learnt it is delivered.
    curve: CurveKeys for the SUB socket and the calls (the members share the daemon key).
    Calls (GetClusterMap, ReplayEvents) go to the first member that answers, two attempts
    of ClusterClient.ANY_MEMBER_TIMEOUT_S each; one that did not answer is asked last.

    ``recv(timeout)`` returns the next EventEnvelope or ShardEventsLost, or None when its
    time runs out; iterating yields them until ``close()``. ``wait_ready()`` waits until
    every shard's starting position is known (announcements after that are delivered).
    """

    MAP_CHECK_INTERVAL_S = 2.0
    TAIL_CHECK_INTERVAL_S = 1.0
    POLL_INTERVAL_S = 0.1
    RETRY_PAUSE_S = 0.2  # while no member answers at start-up
    REPLAY_BATCH = 1000  # ReplayEvents.max_events per call (the daemon allows 10000)
    STOP_JOIN_S = 5.0

    def __init__(self, seeds: Union[str, Iterable[str]], topics: Iterable[str] = ("",),
                 from_positions: Optional[Dict[int, int]] = None, *,
                 curve: Optional[CurveKeys] = None, context: Optional[zmq.Context] = None):
        self.seeds = [seeds] if isinstance(seeds, str) else list(seeds)
        if not self.seeds:
            raise ValueError("seeds: give at least one member's RPC endpoint, "
                             "e.g. ['tcp://10.0.0.5:7700']")
        self.topics = tuple(topics) or ("",)
        self.curve = curve
        self.replayed = 0  # announcements delivered from ReplayEvents rather than PUB
        self.duplicates = 0  # live announcements dropped as already processed
        self._start_positions = dict(from_positions or {})
        self._ctx = context or zmq.Context.instance()
        self._delivered: "queue.SimpleQueue" = queue.SimpleQueue()
        self._positions_lock = threading.Lock()
        self._positions_snapshot: Dict[int, int] = {}
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._closed = False
        # Touched by the thread only:
        self._last: Dict[int, int] = {}  # shard -> position
        self._connected: Set[str] = set()
        self._thread = threading.Thread(target=self._run, name="ClusterSubscriber", daemon=True)
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------
    @property
    def positions(self) -> Dict[int, int]:
        """Each shard's position: every announcement up to it was delivered or did not
        match the topics. Pass it as ``from_positions`` to resume."""
        with self._positions_lock:
            return dict(self._positions_snapshot)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Wait until every shard's starting position is known; False if ``timeout``
        seconds pass first (no member answered ReplayEvents/GetClusterMap meanwhile)."""
        return self._ready.wait(timeout)

    def recv(self, timeout: Optional[float] = None
             ) -> Union[envelope_pb2.EventEnvelope, ShardEventsLost, None]:
        """The next announcement (in seq order within its shard) or ShardEventsLost; None
        after ``timeout`` seconds (None = wait until one comes or the subscriber closes).
        Raises SubscriberFailed if the subscriber's thread stopped on an error."""
        if self._closed:
            return None
        try:
            item = self._delivered.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            return None
        if isinstance(item, BaseException):
            self._closed = True
            raise SubscriberFailed(f"the cluster subscriber stopped: {item!r}") from item
        return item

    def __iter__(self) -> Iterator[Union[envelope_pb2.EventEnvelope, ShardEventsLost]]:
        while not self._closed:
            item = self.recv()
            if item is not None:
                yield item

    def close(self) -> None:
        """Stop the thread and close its sockets; recv() returns None from now on and
        iteration ends. Idempotent."""
        self._closed = True
        self._stopping.set()
        self._delivered.put(_CLOSED)
        if self._thread is not threading.current_thread():
            self._thread.join(self.STOP_JOIN_S)

    def __enter__(self) -> "ClusterSubscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        cluster: Optional[ClusterClient] = None
        sock: Optional[zmq.Socket] = None
        try:
            cluster = ClusterClient(self.seeds, curve=self.curve, context=self._ctx)
            sock = self._ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, b"")  # all topics: every jump is a real gap
            if self.curve is not None:
                self.curve.apply(sock)
            self._serve(cluster, sock)
        except BaseException as e:  # noqa: BLE001 - handed to the caller by recv()
            if not self._stopping.is_set():
                self._delivered.put(e)
        finally:
            if sock is not None:
                sock.close(linger=0)
            if cluster is not None:
                cluster.close()

    def _serve(self, cluster: ClusterClient, sock: zmq.Socket) -> None:
        # The Clone pattern: subscribed first, then each shard's position, then the gaps.
        while not self._stopping.is_set() and not self._refresh_map(cluster, sock):
            self._stopping.wait(self.RETRY_PAUSE_S)
        for shard in range(cluster.shard_count):
            if shard in self._start_positions:
                self._last[shard] = max(0, self._start_positions[shard])
                continue
            while not self._stopping.is_set() and shard not in self._last:
                latest = self._latest_seq(cluster, shard)
                if latest is None:
                    self._stopping.wait(self.RETRY_PAUSE_S)
                else:
                    self._last[shard] = latest
        if self._stopping.is_set():
            return
        self._publish_positions()
        self._ready.set()

        now = time.monotonic()
        next_tail_check = now
        next_map_check = now + self.MAP_CHECK_INTERVAL_S
        while not self._stopping.is_set():
            if sock.poll(int(self.POLL_INTERVAL_S * 1000), zmq.POLLIN):
                self._drain(cluster, sock)
            now = time.monotonic()
            if now >= next_tail_check:
                next_tail_check = now + self.TAIL_CHECK_INTERVAL_S
                for shard in list(self._last):
                    if self._stopping.is_set():
                        return
                    self._fill(cluster, shard, through=None)
            if now >= next_map_check:
                next_map_check = now + self.MAP_CHECK_INTERVAL_S
                self._refresh_map(cluster, sock)

    def _drain(self, cluster: ClusterClient, sock: zmq.Socket) -> None:
        """Take every announcement waiting on the SUB socket."""
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue  # not an announcement
            event = envelope_pb2.EventEnvelope()
            try:
                event.ParseFromString(frames[1])
            except Exception:  # DecodeError: not ours
                continue
            self._take(cluster, event)

    def _wanted(self, topic: str) -> bool:
        return any(topic.startswith(t) for t in self.topics)

    def _deliver(self, event: envelope_pb2.EventEnvelope) -> None:
        """Advance the shard's position over ``event``; hand it over if its topic matches."""
        self._last[event.shard] = event.seq
        if self._wanted(event.topic):
            self._delivered.put(event)

    def _take(self, cluster: ClusterClient, event: envelope_pb2.EventEnvelope) -> None:
        """A live announcement: delivered when it is the next of its shard, after the gap
        before it is filled; dropped when already processed."""
        shard = event.shard
        position = self._last.get(shard)
        if position is None:
            return  # a shard not in the map (yet)
        if event.seq <= position:
            self.duplicates += 1
            return
        if event.seq > position + 1:
            self._fill(cluster, shard, through=event.seq - 1)
        if event.seq == self._last[shard] + 1:
            self._deliver(event)
            self._publish_positions()
        # else the gap could not be filled now (no member answered): the tail check will
        # replay it, this announcement included.

    def _fill(self, cluster: ClusterClient, shard: int, through: Optional[int]) -> None:
        """Replay ``shard``'s announcements after its position, up to ``through`` (None =
        all there are), through ReplayEvents on any member; deliver the matching ones.
        Returns early, leaving the rest to the next tail check, when no member answers."""
        method, request_class, response_class = Client.methods()["replay_events"]
        while not self._stopping.is_set():
            position = self._last[shard]
            if through is not None and position >= through:
                return
            wanted = self.REPLAY_BATCH if through is None else min(self.REPLAY_BATCH,
                                                                   through - position)
            request = request_class(shard=shard, from_seq=position + 1, max_events=wanted)
            try:
                page = cluster.call_any_member(method, request, response_class)
            except RpcError as e:
                if (e.code == StatusCode.OUT_OF_RANGE and not e.local
                        and self._skip_lost(cluster, shard, position, e.message)):
                    continue
                return  # no member answered, or another error: try at the next tail check
            if not page.events or page.events[-1].seq <= position:
                return  # nothing after the position (yet)
            if page.events[0].seq > position + 1:
                first = page.events[0].seq
                self._delivered.put(ShardEventsLost(shard, position + 1, first - 1, first))
            for event in page.events:
                if event.seq > self._last[shard]:
                    self._deliver(event)
                    self.replayed += 1
            self._publish_positions()
            if self._last[shard] >= page.last_seq:
                return

    def _skip_lost(self, cluster: ClusterClient, shard: int, position: int, message: str) -> bool:
        """ReplayEvents said OUT_OF_RANGE: report the lost range and move past it. False
        when the oldest kept seq cannot be told now (the next tail check asks again)."""
        match = _OLDEST_IN_MESSAGE_RE.search(message)
        oldest = int(match.group(1)) if match else self._oldest_seq(cluster, shard)
        if oldest is None or oldest <= position + 1:
            return False
        self._delivered.put(ShardEventsLost(shard, position + 1, oldest - 1, oldest))
        self._last[shard] = oldest - 1
        self._publish_positions()
        return True

    def _probe(self, cluster: ClusterClient, shard: int
               ) -> Optional[admin_service_pb2.ReplayEventsResponse]:
        """ReplayEvents past the end of ``shard``: its last_seq and oldest_available_seq."""
        method, request_class, response_class = Client.methods()["replay_events"]
        try:
            return cluster.call_any_member(
                method, request_class(shard=shard, from_seq=LATEST_SEQ_PROBE, max_events=1),
                response_class)
        except RpcError:
            return None

    def _latest_seq(self, cluster: ClusterClient, shard: int) -> Optional[int]:
        """The shard's latest seq (0 when it has announced nothing); None if no answer."""
        answer = self._probe(cluster, shard)
        return None if answer is None else answer.last_seq

    def _oldest_seq(self, cluster: ClusterClient, shard: int) -> Optional[int]:
        answer = self._probe(cluster, shard)
        return None if answer is None else answer.oldest_available_seq

    def _refresh_map(self, cluster: ClusterClient, sock: zmq.Socket) -> bool:
        """Read the map; connect the SUB socket to PUB endpoints not connected yet."""
        try:
            cluster_map = cluster.refresh_map()
        except RpcError:
            return False
        for pub in sorted(cluster_map.pub_endpoints - self._connected):
            try:
                sock.connect(pub)
            except zmq.ZMQError:
                continue  # an endpoint this host cannot use; the next map check tries again
            self._connected.add(pub)
        return True

    def _publish_positions(self) -> None:
        snapshot = dict(self._last)
        with self._positions_lock:
            self._positions_snapshot = snapshot
