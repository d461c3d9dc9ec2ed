"""A blocking client for the aftersales daemon: protobuf envelopes over a ZeroMQ REQ socket.

Each call is one RequestEnvelope; each answer one ResponseEnvelope. A call that gets no
answer within its attempt timeout is retried on a fresh socket ("Lazy Pirate", ZeroMQ
guide ch. 4) with the same request id and the same idempotency key, so a retry of a
mutating call is never applied twice by the daemon.

With CURVE credentials (``CurveKeys``) every socket is a CURVE client of the daemon: the
daemon admits only the public keys in its clients file and knows the caller by its key.
"""
from __future__ import annotations

import itertools
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional, Type, Union

import zmq
from google.protobuf.message import Message
from zmq.utils import z85

from ._proto import admin_service_pb2, case_service_pb2, envelope_pb2

StatusCode = envelope_pb2.StatusCode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"

def _is_mutating(method: str) -> bool:
    """Whether the contract marks ``method`` ``option (mutating) = true`` (read from the
    descriptors by ``routing``, which builds on this module, hence imported on first use)."""
    from .routing import MUTATING_METHODS
    return method in MUTATING_METHODS


class RpcError(Exception):
    """A call that did not succeed: the daemon's status code and message.

    ``code`` is the int value of aftersales.v1.StatusCode; ``code_name`` its name.
    ``local`` is True when the client itself gave up (no answer in time) rather than the
    daemon answering with an error. ``redirect`` is the envelope's Redirect when a cluster
    member answered UNAVAILABLE because another member serves the call's shard (send the
    call to ``redirect.rpc_endpoint``; ClusterClient does), else None.
    """

    def __init__(self, code: int, message: str, method: str = "", *, local: bool = False,
                 redirect: Optional[envelope_pb2.Redirect] = None):
        self.code = int(code)
        self.message = message
        self.method = method
        self.local = local
        self.redirect = redirect
        super().__init__(f"{self.code_name}: {message}" + (f" ({method})" if method else ""))

    @property
    def code_name(self) -> str:
        try:
            return StatusCode.Name(self.code)
        except ValueError:
            return f"CODE_{self.code}"


class RpcTimeout(RpcError):
    """No answer from the daemon after every attempt (code DEADLINE_EXCEEDED, local)."""

    def __init__(self, message: str, method: str = ""):
        super().__init__(StatusCode.DEADLINE_EXCEEDED, message, method, local=True)


def _z85_key(value: Union[str, bytes], what: str) -> bytes:
    """A CURVE key as the 40 Z85 characters pyzmq wants; ValueError otherwise, so a bad
    key fails here rather than as EINVAL on some later (re)connect."""
    key = (value.encode("ascii") if isinstance(value, str) else bytes(value)).strip()
    try:
        if len(key) == 40 and len(z85.decode(key)) == 32:
            return key
    except Exception:  # z85.decode raises KeyError/struct.error on characters outside Z85
        pass
    raise ValueError(f"{what} is not a CURVE key (40 Z85 characters, as aftersalesd keygen writes)")


@dataclass(frozen=True)
class CurveKeys:
    """CURVE credentials: the daemon's public key and this client's secret key (str or
    bytes, Z85); the public half, which the daemon's clients file lists, is derived."""

    server_key: bytes
    secret_key: bytes = field(repr=False)
    public_key: bytes = field(init=False)

    def __post_init__(self):
        # frozen: set the normalised fields through object.__setattr__
        object.__setattr__(self, "server_key", _z85_key(self.server_key, "server_key"))
        object.__setattr__(self, "secret_key", _z85_key(self.secret_key, "secret_key"))
        object.__setattr__(self, "public_key", zmq.curve_public(self.secret_key))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client; must come before connect()."""
        sock.curve_serverkey = self.server_key
        sock.curve_publickey = self.public_key
        sock.curve_secretkey = self.secret_key


def load_curve_keys(server_pub_path: str, client_key_path: str) -> CurveKeys:
    """CurveKeys from key files as ``aftersalesd keygen`` writes them: the daemon's
    NAME.pub and this client's NAME.key."""
    def read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()
    try:
        return CurveKeys(server_key=read(server_pub_path), secret_key=read(client_key_path))
    except ValueError as e:
        raise ValueError(f"{e} ({server_pub_path}, {client_key_path})") from None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _method_table() -> Dict[str, tuple]:
    """snake_case name -> (full method name, request class, response class), from the
    service descriptors of the generated code."""
    table = {}
    for module in (case_service_pb2, admin_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                req = _message_class(m.input_type)
                resp = _message_class(m.output_type)
                table[_snake(m.name)] = (f"{service.full_name}/{m.name}", req, resp)
    return table


def _message_class(descriptor) -> Type[Message]:
    for module in (case_service_pb2, admin_service_pb2):
        cls = getattr(module, descriptor.name, None)
        if cls is not None and cls.DESCRIPTOR.full_name == descriptor.full_name:
            return cls
    raise LookupError(descriptor.full_name)


class Client:
    """One REQ connection to the daemon's ROUTER socket; one call at a time.

    Every RPC of CaseService and AdminService is also a method named in snake_case taking
    either a request message or the request's fields as keywords, e.g.
    ``client.create_case(order_id="o1", ...)`` or ``client.ping()``; it returns the
    response message or raises RpcError.

    timeout: seconds to wait for one attempt's answer (also sent as the envelope's
    deadline_ms). retries: further attempts after a timeout. A call therefore gives up
    after about timeout * (retries + 1) seconds with RpcTimeout.

    curve: CurveKeys for a daemon started with --curve-secret-key (None = plaintext).
    A key the daemon does not list gets no answer at all (its handshake is refused), so
    such calls end in RpcTimeout too; a method outside the key's role is PERMISSION_DENIED.
    """

    _METHODS = None  # filled lazily from the descriptors

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = 2.5,
                 retries: int = 2, context: Optional[zmq.Context] = None,
                 metadata: Optional[Dict[str, str]] = None,
                 curve: Optional[CurveKeys] = None):
        self.endpoint = endpoint
        self.curve = curve
        self.timeout = timeout
        self.retries = retries
        self.metadata = dict(metadata or {})
        self._ctx = context or zmq.Context.instance()
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "big") << 20 | 1)
        self._sock: Optional[zmq.Socket] = None
        self._sock_rcvtimeo: Optional[int] = None  # the receive timeout set on _sock (ms)
        self.reconnects = 0  # how many times Lazy Pirate replaced the socket

    # -- socket management ---------------------------------------------------------------
    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                self.curve.apply(s)  # each Lazy Pirate socket is new: set them every time
            s.connect(self.endpoint)
            self._sock = s
            self._sock_rcvtimeo = None
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def close(self) -> None:
        self._drop_socket()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------------------
    def call_raw(self, method: str, payload: bytes = b"", *, timeout: Optional[float] = None,
                 retries: Optional[int] = None, idempotency_key: Optional[str] = None,
                 deadline_ms: Optional[int] = None,
                 metadata: Optional[Dict[str, str]] = None) -> envelope_pb2.ResponseEnvelope:
        """Send one envelope with ``payload`` as is; return the ResponseEnvelope whatever
        its code (raises only RpcTimeout). Retries reuse request id and idempotency key."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        env = envelope_pb2.RequestEnvelope(
            request_id=next(self._ids),
            method=method,
            payload=payload,
            deadline_ms=int(timeout * 1000) if deadline_ms is None else deadline_ms,
            idempotency_key=idempotency_key or "",
        )
        for k, v in {**self.metadata, **(metadata or {})}.items():
            env.metadata[k] = v
        return self.send_envelope(env.SerializeToString(), timeout=timeout, retries=retries,
                                  method=method, request_id=env.request_id)

    def send_envelope(self, frame: bytes, *, timeout: Optional[float] = None,
                      retries: Optional[int] = None, method: str = "",
                      request_id: Optional[int] = None) -> envelope_pb2.ResponseEnvelope:
        """Send one already-serialized frame (need not be a valid envelope) and return the
        decoded answer. Lazy Pirate: on timeout, close the socket, reconnect, resend."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        attempts = retries + 1
        wait_ms = int(timeout * 1000)
        for attempt in range(1, attempts + 1):
            sock = self._socket()
            # The attempt's wait is the socket's receive timeout: a blocking recv returns
            # as the answer lands, with no poller built and polled per call (issue 18:
            # socket.poll cost ~8 µs of a ~150 µs GetCase).
            if self._sock_rcvtimeo != wait_ms:
                sock.rcvtimeo = wait_ms
                self._sock_rcvtimeo = wait_ms
            sock.send(frame)
            try:
                reply = sock.recv_multipart()
            except zmq.Again:
                # No answer: the REQ socket is stuck waiting; throw it away (Lazy Pirate).
                self._drop_socket()
                self.reconnects += 1
                continue
            resp = envelope_pb2.ResponseEnvelope()
            try:
                resp.ParseFromString(reply[-1])
            except Exception as e:  # DecodeError
                raise RpcError(StatusCode.INTERNAL,
                               f"undecodable ResponseEnvelope ({len(reply[-1])} bytes): {e}",
                               method, local=True) from None
            if request_id is not None and resp.request_id not in (request_id, 0):
                raise RpcError(StatusCode.INTERNAL,
                               f"answer for request {resp.request_id}, expected {request_id}",
                               method, local=True)
            return resp
        raise RpcTimeout(f"no answer from {self.endpoint} after {attempts} attempt(s) "
                         f"of {timeout:.3g}s", method)

    def call(self, method: str, request: Message, response_type: Optional[Type[Message]] = None,
             *, timeout: Optional[float] = None, retries: Optional[int] = None,
             idempotency_key: Optional[str] = None,
             metadata: Optional[Dict[str, str]] = None):
        """Call ``method`` with ``request``; return the decoded response (or the payload
        bytes when response_type is None). Raises RpcError for any code but OK.

        Mutating methods get a fresh idempotency key when none is given, so that Lazy
        Pirate retries of this call cannot apply it twice."""
        if idempotency_key is None and _is_mutating(method):
            idempotency_key = uuid.uuid4().hex
        resp = self.call_raw(method, request.SerializeToString(), timeout=timeout,
                             retries=retries, idempotency_key=idempotency_key,
                             metadata=metadata)
        if resp.code != StatusCode.OK:
            raise RpcError(resp.code, resp.message, method,
                           redirect=resp.redirect if resp.HasField("redirect") else None)
        if response_type is None:
            return resp.payload
        out = response_type()
        try:
            out.ParseFromString(resp.payload)
        except Exception as e:
            raise RpcError(StatusCode.INTERNAL, f"undecodable {response_type.DESCRIPTOR.name}: {e}",
                           method, local=True) from None
        return out

    # -- typed methods, one per RPC --------------------------------------------------------
    @classmethod
    def methods(cls) -> Dict[str, tuple]:
        if cls._METHODS is None:
            cls._METHODS = _method_table()
        return cls._METHODS

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        entry = self.methods().get(name)
        if entry is None:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")
        full, req_cls, resp_cls = entry

        def rpc(request: Optional[Message] = None, *, timeout=None, retries=None,
                idempotency_key=None, metadata=None, **fields):
            if request is None:
                request = req_cls(**fields)
            elif fields:
                raise TypeError("pass either a request message or its fields, not both")
            return self.call(full, request, resp_cls, timeout=timeout, retries=retries,
                             idempotency_key=idempotency_key, metadata=metadata)

        rpc.__name__ = name
        rpc.__doc__ = f"{full}({req_cls.DESCRIPTOR.name}) -> {resp_cls.DESCRIPTOR.name}"
        return rpc

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.methods()))
