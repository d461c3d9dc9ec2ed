"""Stand-ins for the daemon's sockets, to test framing and retry logic without it."""
from __future__ import annotations

import threading
from typing import Callable, List, Optional

import zmq

from aftersales_client import envelope_pb2

Handler = Callable[[envelope_pb2.RequestEnvelope, int], Optional[envelope_pb2.ResponseEnvelope]]


class FakeRouter:
    """A ROUTER on a free loopback port, served by a thread. ``handler(env, n)`` gets the
    decoded RequestEnvelope and its 1-based arrival number and returns the answer, or
    None to drop the request (no answer at all). Every request is recorded in
    ``received`` as (frames after the identity, decoded envelope or None).
    ``curve_secret_key``: be a CURVE server (with no ZAP handler libzmq admits any key)."""

    def __init__(self, handler: Handler, context: Optional[zmq.Context] = None,
                 curve_secret_key: Optional[bytes] = None):
        self.handler = handler
        self.curve_secret_key = curve_secret_key
        self.received: List[tuple] = []
        self._ctx = context or zmq.Context.instance()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.endpoint = ""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake router did not start")

    def _run(self) -> None:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve_secret_key is not None:
            sock.curve_secretkey = self.curve_secret_key
            sock.curve_server = True
        sock.bind("tcp://127.0.0.1:*")
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(50, zmq.POLLIN):
                    continue
                frames = sock.recv_multipart()
                identity, rest = frames[0], frames[1:]
                env = envelope_pb2.RequestEnvelope()
                try:
                    env.ParseFromString(rest[-1])
                except Exception:
                    env = None
                self.received.append((rest, env))
                if env is None:
                    reply = envelope_pb2.ResponseEnvelope(
                        code=envelope_pb2.INVALID_ARGUMENT, message="undecodable envelope")
                else:
                    reply = self.handler(env, len(self.received))
                if reply is not None:
                    sock.send_multipart([identity, b"", reply.SerializeToString()])
        finally:
            sock.close(linger=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
