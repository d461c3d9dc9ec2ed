"""A real aftersalesd for the tests, started once per session from $AFTERSALESD; a
second one with CURVE (curve_daemon) for the tests that ask for it."""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Optional

import pytest

from aftersales_client import Client, CurveKeys, load_curve_keys

READY_RE = re.compile(r"^aftersalesd ready rpc=(\S+) pub=(\S+)\s*$")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROPOSAL_TTL_MS = 300
# The clients file of curve_daemon: NAME -> ROLE.
CURVE_CLIENTS = {"gateway": "consumer-gateway", "watcher": "observer"}


@dataclass
class Daemon:
    rpc: str
    pub: str
    proc: subprocess.Popen
    data_dir: str
    log_path: str
    key_dir: Optional[str] = None  # CURVE daemons: where NAME.key / NAME.pub are

    def curve(self, name: str) -> CurveKeys:
        """The credentials of client NAME (see curve_daemon)."""
        return load_curve_keys(os.path.join(self.key_dir, "daemon.pub"),
                               os.path.join(self.key_dir, f"{name}.key"))

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""


def _daemon_path() -> str:
    path = os.environ.get("AFTERSALESD", "")
    if not path:
        pytest.fail("AFTERSALESD is not set: it must name the aftersalesd binary "
                    "(make python-client-test sets it)", pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"AFTERSALESD={path!r} is not an executable file: build the daemon "
                    "first (swift build), or point AFTERSALESD at it", pytrace=False)
    return path


def _start(tmp_path_factory, extra_args=()) -> Daemon:
    """An aftersalesd on free loopback ports with a fresh data dir, once it is ready."""
    binary = _daemon_path()
    data_dir = tmp_path_factory.mktemp("aftersalesd-data")
    log_path = str(tmp_path_factory.mktemp("aftersalesd-log") / "stderr.log")
    cmd = [binary, "--rpc", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*",
           "--data-dir", str(data_dir), "--fsync", "everysec",
           "--proposal-ttl", f"{PROPOSAL_TTL_MS}ms", *extra_args]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    log.close()

    # Read the ready line, bounded in time.
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    match = None
    try:
        while match is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no ready line within {START_TIMEOUT_S:.0f}s")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"exited with code {proc.wait(5)} before the ready line")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                match = READY_RE.match(line.decode(errors="replace"))
                if match:
                    break
    except Exception as e:
        proc.kill()
        proc.wait(5)
        with open(log_path, errors="replace") as fh:
            tail = fh.read()[-4000:]
        pytest.fail(f"aftersalesd did not start ({' '.join(cmd)}): {e}\n"
                    f"stdout so far: {buf!r}\nstderr:\n{tail}", pytrace=False)
    finally:
        sel.close()

    # Keep draining stdout so the daemon can never block on a full pipe.
    threading.Thread(target=lambda: [None for _ in iter(lambda: proc.stdout.read(4096), b"")],
                     daemon=True).start()

    return Daemon(rpc=match.group(1), pub=match.group(2), proc=proc, data_dir=str(data_dir),
                  log_path=log_path)


def _stop(d: Daemon) -> None:
    """SIGTERM; the daemon must exit 0 in time."""
    proc = d.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        pytest.fail(f"aftersalesd did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM\n"
                    f"stderr:\n{d.log()}", pytrace=False)
    if rc != 0:
        pytest.fail(f"aftersalesd exited with code {rc} after SIGTERM (expected 0)\n"
                    f"stderr:\n{d.log()}", pytrace=False)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory) -> Daemon:
    d = _start(tmp_path_factory)
    yield d
    _stop(d)


@pytest.fixture(scope="session")
def curve_daemon(tmp_path_factory) -> Daemon:
    """A CURVE daemon admitting CURVE_CLIENTS; keys made with `aftersalesd keygen` in
    d.key_dir, including one for "stranger", whom the clients file does not list."""
    key_dir = tmp_path_factory.mktemp("aftersalesd-keys")
    for name in ("daemon", *CURVE_CLIENTS, "stranger"):
        subprocess.run([_daemon_path(), "keygen", "--out", str(key_dir), name], check=True,
                       stdout=subprocess.DEVNULL, timeout=START_TIMEOUT_S)
    clients = key_dir / "clients"
    clients.write_text("# NAME ROLE PUBLIC_KEY\n" + "".join(
        f"{name} {role} {(key_dir / f'{name}.pub').read_text().strip()}\n"
        for name, role in CURVE_CLIENTS.items()))
    d = _start(tmp_path_factory, ["--curve-secret-key", str(key_dir / "daemon.key"),
                                  "--clients", str(clients)])
    d.key_dir = str(key_dir)
    yield d
    _stop(d)


@pytest.fixture
def client(daemon):
    with Client(daemon.rpc, timeout=2.0, retries=1) as c:
        yield c


@pytest.fixture
def start_cluster(tmp_path):
    """start_cluster(shards=8, members=3, member_args=()) -> cluster_support.Cluster: a
    throwaway PostgreSQL, `aftersalesd cluster init` and members; every cluster started
    is stopped at the end of the test (members killed by pid, PostgreSQL by its script),
    also when the test or the start fails."""
    from cluster_support import Cluster

    started = []

    def start(shards: int = 8, members: int = 3, member_args=()):
        cluster = Cluster(_daemon_path(), tmp_path / f"cluster{len(started)}", shards,
                          member_args)
        started.append(cluster)
        return cluster.start(members)

    yield start
    for cluster in started:
        cluster.close()
