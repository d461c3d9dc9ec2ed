"""A client of a cluster of daemons (or of a daemon on its own) that finds each case's
member by itself: the Python side of the Swift ``ClusterClient``.

It reads ``AdminService/GetClusterMap`` from a seed, keeps one ``Client`` per member and
sends each call to the owner of its shard (``routing.shard_of_call``: CreateCase by its
order line, a call naming a case by the case id, anything else to any member). When a
member answers UNAVAILABLE with a redirect (Redis Cluster's MOVED) the call goes to
``redirect.rpc_endpoint`` and the map learns the new owner; when it answers UNAVAILABLE
without one (the shard is between owners) or does not answer at all (it died), the call
backs off (25 ms doubling to 400 ms), reads the map again from another member and is
sent again -- with the same idempotency key, so a mutating call is applied once -- until
the call's deadline. A daemon on its own answers GetClusterMap with itself as the owner
of its one shard, so the same code serves both.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Type, Union

import zmq
from google.protobuf.message import Message

from ._proto import admin_service_pb2, case_service_pb2, envelope_pb2
from .client import Client, CurveKeys, RpcError, RpcTimeout, StatusCode
from .routing import MUTATING_METHODS, shard_of_call

# ListCasesRequest.page_size: "0 = 50".
DEFAULT_LIST_PAGE_SIZE = 50


@dataclass
class ClusterMap:
    """What a client knows of the cluster: the shard count, each served shard's owner,
    and the members' endpoints. shard_count 0 = not read yet."""

    shard_count: int = 0
    owners: Dict[int, str] = field(default_factory=dict)  # shard -> owner's RPC endpoint
    members: List[str] = field(default_factory=list)  # RPC endpoints, sorted
    pub_endpoints: Set[str] = field(default_factory=set)  # every member's PUB endpoint

    @classmethod
    def from_response(cls, resp: admin_service_pb2.GetClusterMapResponse) -> "ClusterMap":
        owners = {s.shard: s.rpc_endpoint for s in resp.shards if s.rpc_endpoint}
        members = {m.rpc_endpoint for m in resp.members if m.rpc_endpoint} | set(owners.values())
        pubs = ({m.pub_endpoint for m in resp.members} | {s.pub_endpoint for s in resp.shards}) - {""}
        return cls(shard_count=resp.shard_count, owners=owners, members=sorted(members),
                   pub_endpoints=pubs)

    def learn(self, redirect: envelope_pb2.Redirect) -> None:
        """Take in the owner a redirect names."""
        if redirect.shard_count:
            self.shard_count = redirect.shard_count
        self.owners[redirect.shard] = redirect.rpc_endpoint
        if redirect.rpc_endpoint not in self.members:
            self.members.append(redirect.rpc_endpoint)
        if redirect.pub_endpoint:
            self.pub_endpoints.add(redirect.pub_endpoint)

    @property
    def complete(self) -> bool:
        """Every shard has an owner."""
        return self.shard_count > 0 and all(s in self.owners for s in range(self.shard_count))


def request_from(request_class: Type[Message], request: Optional[Message],
                 fields: Dict[str, object]) -> Message:
    """A typed method's request: the message given, or one built from its fields."""
    if request is None:
        return request_class(**fields)
    if fields:
        raise TypeError("pass either a request message or its fields, not both")
    return request


def _is_failover(error: RpcError) -> bool:
    """An error another attempt may cure: no answer, or UNAVAILABLE (redirect or not)."""
    return isinstance(error, RpcTimeout) or error.code == StatusCode.UNAVAILABLE


class ClusterClient:
    """Calls a cluster of daemons without the caller knowing where a case lives.

    seeds: RPC endpoints of one or more members (or of a daemon on its own); the rest is
    learnt from GetClusterMap. Nothing is connected until the first call.
    timeout: seconds one attempt at one member waits for its answer (also the envelope's
    deadline_ms); retries: Lazy Pirate retries of that attempt at the same member (0: a
    member that does not answer is left for the map's next word at once).
    failover_deadline: seconds a call keeps trying through redirects and failovers when it
    is given no ``deadline`` of its own; then its last error is raised.
    curve: CurveKeys for every member (the members share the daemon's key pair).

    Every RPC of CaseService and AdminService is a snake_case method, as on ``Client``,
    taking a request message or its fields, plus ``timeout``, ``retries``,
    ``idempotency_key``, ``metadata`` and ``deadline``. ``list_cases`` lists the whole
    cluster. One call at a time, like ``Client``: not for sharing between threads.
    """

    BACKOFF_MIN_S = 0.025
    BACKOFF_MAX_S = 0.4
    # GetClusterMap and calls any member may answer: two attempts of 0.7 s per member.
    ANY_MEMBER_TIMEOUT_S = 0.7
    ANY_MEMBER_RETRIES = 1
    # Redirects followed in a row before the call backs off and re-reads the map (members
    # that disagree about an owner would otherwise send the call back and forth).
    MAX_REDIRECTS_IN_A_ROW = 8

    def __init__(self, seeds: Union[str, Iterable[str]], *, timeout: float = 2.5,
                 retries: int = 0, failover_deadline: float = 15.0,
                 curve: Optional[CurveKeys] = None, context: Optional[zmq.Context] = None,
                 metadata: Optional[Dict[str, str]] = None):
        self.seeds = [seeds] if isinstance(seeds, str) else list(seeds)
        if not self.seeds:
            raise ValueError("seeds: give at least one member's RPC endpoint, "
                             "e.g. ['tcp://10.0.0.5:7700']")
        self.timeout = timeout
        self.retries = retries
        self.failover_deadline = failover_deadline
        self.curve = curve
        self.metadata = dict(metadata or {})
        self._ctx = context
        self._map = ClusterMap()
        self._clients: Dict[str, Client] = {}
        self._unanswered: Set[str] = set()  # endpoints whose last call got no answer

    # -- members -----------------------------------------------------------------------
    @property
    def cluster_map(self) -> ClusterMap:
        """The map as last read or learnt from redirects (shard_count 0 before any)."""
        return self._map

    @property
    def shard_count(self) -> int:
        return self._map.shard_count

    def member_client(self, endpoint: str) -> Client:
        """The Client of one member, made on first use."""
        existing = self._clients.get(endpoint)
        if existing is None:
            existing = self._clients[endpoint] = Client(
                endpoint, timeout=self.timeout, retries=self.retries, context=self._ctx,
                metadata=self.metadata, curve=self.curve)
        return existing

    def close(self) -> None:
        """Close every member's connection."""
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()

    def __enter__(self) -> "ClusterClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _by_responsiveness(self, endpoints: Iterable[str]) -> List[str]:
        """Unique endpoints in order, those that last failed to answer at the end."""
        unique = list(dict.fromkeys(endpoints))
        return ([e for e in unique if e not in self._unanswered]
                + [e for e in unique if e in self._unanswered])

    def _noted(self, endpoint: str, error: Optional[RpcError]) -> None:
        """Remember whether ``endpoint`` answered its last call."""
        if isinstance(error, RpcTimeout):
            self._unanswered.add(endpoint)
        else:
            self._unanswered.discard(endpoint)

    def call_any_member(self, method: str, request: Message,
                        response_type: Optional[Type[Message]] = None, *,
                        timeout: Optional[float] = None, retries: Optional[int] = None,
                        avoiding: Optional[str] = None, metadata: Optional[Dict[str, str]] = None):
        """One call to the first member that answers it (known members, then the seeds;
        those that did not answer last time at the end, ``avoiding`` skipped when there is
        another), for calls any member serves (GetClusterMap, ReplayEvents of any shard).
        Each member is tried once: UNAVAILABLE or no answer moves on to the next; another
        error is raised; when none answers, RpcError UNAVAILABLE (local)."""
        timeout = self.ANY_MEMBER_TIMEOUT_S if timeout is None else timeout
        retries = self.ANY_MEMBER_RETRIES if retries is None else retries
        candidates = [e for e in self._by_responsiveness([*self._map.members, *self.seeds])
                      if e != avoiding] or list(self.seeds)
        errors = []
        for endpoint in candidates:
            try:
                answer = self.member_client(endpoint).call(
                    method, request, response_type, timeout=timeout, retries=retries,
                    idempotency_key="", metadata=metadata)
            except RpcError as e:
                self._noted(endpoint, e)
                if not _is_failover(e):
                    raise
                errors.append(f"{endpoint}: {e}")
                continue
            self._noted(endpoint, None)
            return answer
        raise RpcError(StatusCode.UNAVAILABLE,
                       f"no member answered ({'; '.join(errors)}); check that at least one of "
                       f"the seeds {self.seeds} is a running aftersalesd", method, local=True)

    def refresh_map(self, avoiding: Optional[str] = None) -> ClusterMap:
        """Read GetClusterMap again, from a member other than ``avoiding`` when there is
        one; returns the new map. RpcError when no member answers."""
        method, request_class, response_class = Client.methods()["get_cluster_map"]
        resp = self.call_any_member(method, request_class(), response_class, avoiding=avoiding)
        self._map = ClusterMap.from_response(resp)
        return self._map

    def _target(self, shard: Optional[int]) -> str:
        """The member a call for ``shard`` goes to: its owner when known, else any member
        (one that answered last time, if there is one)."""
        owner = self._map.owners.get(shard) if shard is not None else None
        if owner:
            return owner
        candidates = self._by_responsiveness(self._map.members)
        return candidates[0] if candidates else self.seeds[0]

    # -- calls -------------------------------------------------------------------------
    def call(self, method: str, request: Message, response_type: Optional[Type[Message]] = None,
             *, timeout: Optional[float] = None, retries: Optional[int] = None,
             idempotency_key: Optional[str] = None, metadata: Optional[Dict[str, str]] = None,
             deadline: Optional[float] = None):
        """Call ``method`` at the owner of its shard; return the decoded response (the
        payload bytes when response_type is None). Follows redirects and retries through
        failovers until ``deadline`` seconds have passed (default: failover_deadline);
        raises RpcError for any other error at once, and the last error after that.

        A mutating call gets one idempotency key for all its attempts at all members
        (a fresh one when none is given), so it is applied at most once. With
        ``idempotency_key=""`` it is sent again only after an UNAVAILABLE (not applied),
        never after no answer."""
        if idempotency_key is None:
            idempotency_key = uuid.uuid4().hex if method in MUTATING_METHODS else ""
        started = time.monotonic()
        give_up_at = started + (self.failover_deadline if deadline is None else deadline)
        attempt_timeout = self.timeout if timeout is None else timeout
        backoff = self.BACKOFF_MIN_S
        redirects_in_a_row = 0
        last_error: Optional[RpcError] = None
        while True:
            if self._map.shard_count == 0:
                try:
                    self.refresh_map()
                except RpcError as e:
                    last_error = e
            shard = shard_of_call(method, request, self._map.shard_count) \
                if self._map.shard_count else None
            endpoint = self._target(shard)
            left = give_up_at - time.monotonic()
            if left <= 0:
                raise self._gave_up(last_error, method, shard, time.monotonic() - started)
            try:
                answer = self.member_client(endpoint).call(
                    method, request, response_type, timeout=min(attempt_timeout, left),
                    retries=retries, idempotency_key=idempotency_key, metadata=metadata)
            except RpcError as e:
                self._noted(endpoint, e)
                if not _is_failover(e) or (isinstance(e, RpcTimeout) and not idempotency_key
                                           and method in MUTATING_METHODS):
                    raise  # (unanswered and unkeyed: it may have been applied; never resend)
                last_error = e
                redirect = e.redirect
                if (redirect is not None and redirect.rpc_endpoint
                        and redirect.rpc_endpoint != endpoint
                        and redirects_in_a_row < self.MAX_REDIRECTS_IN_A_ROW):
                    self._map.learn(redirect)
                    redirects_in_a_row += 1
                    continue
                # Between owners, or the member is gone: look again after a pause.
                redirects_in_a_row = 0
                if time.monotonic() + backoff >= give_up_at:
                    raise self._gave_up(last_error, method, shard, time.monotonic() - started)
                time.sleep(backoff)
                backoff = min(2 * backoff, self.BACKOFF_MAX_S)
                try:
                    self.refresh_map(avoiding=endpoint if redirect is None else None)
                except RpcError:
                    pass  # no member answered: the next round tries again
                continue
            self._noted(endpoint, None)
            return answer

    def _gave_up(self, last: Optional[RpcError], method: str, shard: Optional[int],
                 waited: float) -> RpcError:
        """The error a call ends with when its deadline passes: the last one, saying so."""
        where = f"shard {shard}" if shard is not None else "any member"
        advice = (f"gave up after {waited:.1f}s of retries through the cluster ({where}; "
                  f"members {self._map.members or self.seeds}): check that the members are "
                  f"running and reach PostgreSQL, or give the call a longer deadline")
        if last is None:
            return RpcError(StatusCode.UNAVAILABLE, advice, method, local=True)
        if isinstance(last, RpcTimeout):
            return RpcTimeout(f"{last.message}; {advice}", method)
        return RpcError(last.code, f"{last.message}; {advice}", method, local=last.local,
                        redirect=last.redirect)

    def list_cases(self, request: Optional[case_service_pb2.ListCasesRequest] = None, *,
                   timeout: Optional[float] = None, retries: Optional[int] = None,
                   metadata: Optional[Dict[str, str]] = None, deadline: Optional[float] = None,
                   **fields) -> case_service_pb2.ListCasesResponse:
        """ListCases over the whole cluster: every shard owner lists its own shards after
        the page token, and the pages are merged in case id order. Case ids of all shards
        are numbers of one sequence, so the last id returned is the next page token.

        While a shard has no owner, or an owner does not answer, the listing is retried
        (as calls are) until ``deadline`` (default failover_deadline): a page is never
        missing a shard's cases because of a failover that the map shows."""
        method, request_class, _ = Client.methods()["list_cases"]
        request = request_from(request_class, request, fields)
        page_size = request.page_size or DEFAULT_LIST_PAGE_SIZE
        started = time.monotonic()
        give_up_at = started + (self.failover_deadline if deadline is None else deadline)
        backoff = self.BACKOFF_MIN_S
        last_error: Optional[RpcError] = None
        while True:
            unreachable = None
            try:
                if not self._map.complete:
                    self.refresh_map()
                if self._map.complete:
                    return self._list_owners(request, page_size, timeout, retries, metadata)
                last_error = RpcError(StatusCode.UNAVAILABLE, "some shards have no owner at "
                                      "the moment", method, local=True)
            except _MemberFailed as failed:
                unreachable, last_error = failed.endpoint, failed.error
            except RpcError as e:
                if not _is_failover(e):
                    raise
                last_error = e
            if time.monotonic() + backoff >= give_up_at:
                raise self._gave_up(last_error, method, None, time.monotonic() - started)
            time.sleep(backoff)
            backoff = min(2 * backoff, self.BACKOFF_MAX_S)
            try:
                self.refresh_map(avoiding=unreachable)
            except RpcError:
                pass

    def _list_owners(self, request, page_size, timeout, retries, metadata):
        """One merged ListCases page from every shard owner in the map."""
        method, _, response_class = Client.methods()["list_cases"]
        by_id: Dict[str, object] = {}
        more = False
        for owner in sorted(set(self._map.owners.values())):
            try:
                page = self.member_client(owner).call(
                    method, request, response_class, timeout=timeout, retries=retries,
                    idempotency_key="", metadata=metadata)
            except RpcError as e:
                self._noted(owner, e)
                if _is_failover(e):
                    raise _MemberFailed(owner, e) from None
                raise
            self._noted(owner, None)
            for case in page.cases:
                by_id.setdefault(case.case_id, case)  # a shard moving mid-listing: once
            more = more or bool(page.next_page_token)
        ordered = [by_id[k] for k in sorted(by_id)]
        more = more or len(ordered) > page_size
        page = ordered[:page_size]
        response = response_class(cases=page)
        if more and page:
            response.next_page_token = page[-1].case_id
        return response

    # -- typed methods, one per RPC (from Client's method table) -------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        entry = Client.methods().get(name)
        if entry is None:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")
        full, request_class, response_class = entry

        def rpc(request: Optional[Message] = None, *, timeout=None, retries=None,
                idempotency_key=None, metadata=None, deadline=None, **fields):
            return self.call(full, request_from(request_class, request, fields), response_class,
                             timeout=timeout, retries=retries, idempotency_key=idempotency_key,
                             metadata=metadata, deadline=deadline)

        rpc.__name__ = name
        rpc.__doc__ = (f"{full}({request_class.DESCRIPTOR.name}) -> "
                       f"{response_class.DESCRIPTOR.name}, at the owner of its shard")
        return rpc

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(Client.methods()))


class _MemberFailed(Exception):
    """A shard owner did not answer a call of a listing (internal to list_cases)."""

    def __init__(self, endpoint: str, error: RpcError):
        self.endpoint = endpoint
        self.error = error
        super().__init__(f"{endpoint}: {error}")
