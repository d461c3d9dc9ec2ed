"""A throwaway cluster for the tests: a PostgreSQL from scripts/pg-throwaway, a cluster
created in it with `aftersalesd cluster init`, and members started as real aftersalesd
processes on loopback (the Python side of the Swift tests' ClusterFixture).

Every wait is bounded; ``Cluster.close()`` kills every member it started (by pid) and
stops PostgreSQL with the script, whatever state the cluster is in. PostgreSQL is also
started with --owner-pid (this process), so a test run that dies leaves no server behind.
"""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from aftersales_client import Client, StatusCode, case_service_pb2

from conftest import READY_RE, START_TIMEOUT_S

REPO_ROOT = Path(__file__).resolve().parents[3]
PG_THROWAWAY = REPO_ROOT / "scripts" / "pg-throwaway"
PG_START_TIMEOUT_S = 60.0  # initdb + start; the script bounds its own wait at 30 s
PG_STOP_TIMEOUT_S = 30.0
LEASE_TTL = "2s"
PROBE_CASE_NUMBER = 99_999  # probe ids: AS + (this * shard_count + shard); no case has one


class ClusterStartError(RuntimeError):
    """A part of the cluster did not start; the message carries what it printed."""


@dataclass
class Member:
    """One aftersalesd of the cluster."""

    name: str
    rpc: str
    pub: str
    proc: subprocess.Popen
    log_path: str

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed, the lease just runs out); waits for it."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the member freezes with its sockets open (a long GC pause, say)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def log(self, chars: int = 1500) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()[-chars:]
        except OSError:
            return ""


def _read_ready_line(proc: subprocess.Popen, timeout: float) -> re.Match:
    """The daemon's "aftersalesd ready rpc=… pub=…" line, read within ``timeout``; then
    keeps draining stdout so the daemon never blocks on a full pipe."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterStartError(f"no ready line within {timeout:.0f}s; stdout: {buf!r}")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise ClusterStartError(f"exited with code {proc.wait(5)} before the ready "
                                        f"line; stdout: {buf!r}")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                match = READY_RE.match(line.decode(errors="replace"))
                if match:
                    threading.Thread(target=lambda: [None for _ in iter(
                        lambda: proc.stdout.read(4096), b"")], daemon=True).start()
                    return match
    finally:
        sel.close()


class Cluster:
    """PostgreSQL, ``cluster init --shards N``, and members (``start``/``add_member``)."""

    def __init__(self, daemon_path: str, work_dir: Path, shard_count: int = 8,
                 member_args: Sequence[str] = ()):
        self.daemon_path = daemon_path
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.shard_count = shard_count
        self.member_args = list(member_args)
        self.members: List[Member] = []  # ready ones; killed ones stay in the list
        self._processes: List[subprocess.Popen] = []  # every member started: close() kills them
        self.pg_dir: Optional[str] = None
        self.url: Optional[str] = None

    # -- start ---------------------------------------------------------------------------
    def start(self, members: int) -> "Cluster":
        self._start_postgres()
        init = subprocess.run([self.daemon_path, "cluster", "init", "--shards",
                               str(self.shard_count), self.url], capture_output=True, text=True,
                              timeout=START_TIMEOUT_S)
        if init.returncode != 0:
            raise ClusterStartError(f"aftersalesd cluster init failed ({init.returncode}): "
                                    f"{init.stderr or init.stdout}")
        self.add_members(members)
        return self

    def _start_postgres(self) -> None:
        # The script wants a directory under /tmp that does not exist yet.
        self.pg_dir = tempfile.mktemp(prefix="/tmp/aftersales-pypg-")
        try:
            out = subprocess.run([str(PG_THROWAWAY), "start", "--owner-pid", str(os.getpid()),
                                  self.pg_dir], capture_output=True, text=True,
                                 timeout=PG_START_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise ClusterStartError(f"pg-throwaway start took over {PG_START_TIMEOUT_S:.0f}s") from e
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if out.returncode != 0 or not line.startswith("postgres://"):
            raise ClusterStartError(f"pg-throwaway start {self.pg_dir} failed ({out.returncode}): "
                                    f"{out.stderr.strip() or out.stdout.strip()}")
        self.url = line.split()[0]

    def add_members(self, count: int, extra_args: Sequence[str] = ()) -> List[Member]:
        """Start ``count`` more members at once; return them when each is ready."""
        started = [self._spawn(extra_args) for _ in range(count)]
        ready = []
        for name, proc, log_path in started:
            try:
                match = _read_ready_line(proc, START_TIMEOUT_S)
            except ClusterStartError as e:
                proc.kill()
                proc.wait(5)
                with open(log_path, errors="replace") as fh:
                    raise ClusterStartError(f"member {name} did not start: {e}\n"
                                            f"stderr:\n{fh.read()[-3000:]}") from None
            member = Member(name, match.group(1), match.group(2), proc, log_path)
            self.members.append(member)
            ready.append(member)
        return ready

    def _spawn(self, extra_args: Sequence[str]):
        name = f"m{len(self._processes)}"
        data_dir = self.work_dir / f"{name}-data"
        data_dir.mkdir()
        log_path = str(self.work_dir / f"{name}.stderr.log")
        cmd = [self.daemon_path, "--cluster", self.url, "--rpc", "tcp://127.0.0.1:*",
               "--pub", "tcp://127.0.0.1:*", "--lease-ttl", LEASE_TTL, "--member-name", name,
               "--data-dir", str(data_dir), *self.member_args, *extra_args]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL)
        self._processes.append(proc)
        return name, proc, log_path

    # -- state -----------------------------------------------------------------------------
    @property
    def running(self) -> List[Member]:
        return [m for m in self.members if m.running]

    def probe_case_id(self, shard: int) -> str:
        """An id no case has, in ``shard``: GetCase of it is NOT_FOUND exactly when the
        member asked serves the shard."""
        return "AS%010d" % (PROBE_CASE_NUMBER * self.shard_count + shard)

    def serves(self, member: Member, shard: int) -> bool:
        with Client(member.rpc, timeout=1.0, retries=0) as c:
            request = case_service_pb2.GetCaseRequest(case_id=self.probe_case_id(shard))
            try:
                answer = c.call_raw(Client.methods()["get_case"][0], request.SerializeToString())
            except Exception:  # RpcTimeout: not answering (yet)
                return False
        return answer.code == StatusCode.NOT_FOUND

    def wait_until_served(self, timeout: float = 30.0) -> Dict[int, Member]:
        """Wait (bounded) until every shard is served by a running member and each running
        member serves at least its even share; returns shard -> member."""
        deadline = time.monotonic() + timeout
        while True:
            members = self.running
            served_by = {}
            for shard in range(self.shard_count):
                for m in members:
                    if self.serves(m, shard):
                        served_by[shard] = m
                        break
            share = self.shard_count // max(1, len(members))
            balanced = all(sum(1 for s in served_by.values() if s is m) >= share for m in members)
            if len(served_by) == self.shard_count and balanced:
                return served_by
            if time.monotonic() > deadline:
                logs = "\n---\n".join(f"{m.name}:\n{m.log()}" for m in members)
                raise TimeoutError(f"after {timeout:.0f}s only {len(served_by)} of "
                                   f"{self.shard_count} shards are served "
                                   f"({ {s: m.name for s, m in served_by.items()} }); "
                                   f"logs:\n{logs}")
            time.sleep(0.05)

    # -- stop ------------------------------------------------------------------------------
    def close(self) -> None:
        """Kill every member started (by pid) and stop PostgreSQL; never raises for a
        part that is already gone."""
        for proc in self._processes:
            if proc.poll() is None:
                proc.kill()  # SIGKILL ends a SIGSTOPped process too
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.pg_dir is not None:
            subprocess.run([str(PG_THROWAWAY), "stop", self.pg_dir], capture_output=True,
                           timeout=PG_STOP_TIMEOUT_S)
