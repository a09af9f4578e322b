"""``scrawn serve --workers N`` (docs/configuration.md#workers): this process binds the port once and runs N
server processes (``server/worker.py``) that accept on that one socket. It is correct because no answer
depends on in-process state (DESIGN §1): each worker has its own group committer, key cache and background
sweeps, and every one of those is safe from several processes (docs/configuration.md#workers says why).

The supervisor says "serving on" once every worker is ready; a worker that dies after that is replaced
(its calls in flight failed, and were not acknowledged); a worker that dies before it is ready stops the
server (exit 1), so a broken start never loops. SIGTERM or SIGINT is passed to every worker: each drains as
a single server does, and the supervisor exits 0 once all have exited cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scrawn.server.checks import OperatorError
from scrawn.server.config import Settings
from scrawn.server.metrics import MULTIPROCESS_DIR

log = logging.getLogger("scrawn.serve")
BACKLOG = 100  # as hypercorn listens (each worker listens again with its own setting)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" in microseconds, or "max …"
DRAIN_LIMIT = 60.0  # seconds a worker may take to drain (hypercorn's 30 s grace, then the last commit)


class WorkerFailed(RuntimeError):
    """A worker exited before it was ready, or did not drain cleanly."""


def cpus(cgroup: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: those it may run on (its affinity: ``taskset``, a cpuset), capped by a
    cgroup v2 CPU quota (a container's ``--cpus``), rounded up; at least one."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = cgroup.read_text().split()[:2]  # "max 100000": no quota
        if quota != "max":
            n = min(n, -(-int(quota) // int(period)))
    return max(n, 1)


def count(settings: Settings) -> int:
    """How many server processes to run: ``--workers``/``SCRAWN_WORKERS``, else one per CPU (``cpus``); with
    pyvoy one, whose Envoy runs a worker thread per CPU itself."""
    if settings.workers is None:
        if settings.server == "pyvoy":
            log.info("1 server process with SCRAWN_SERVER=pyvoy: Envoy's own worker threads use the CPUs")
            return 1
        return cpus()
    if settings.workers < 1:
        raise OperatorError(
            f"--workers (SCRAWN_WORKERS) must be 1 or more, not {settings.workers}",
            "pass --workers 1 for a single process",
        )
    if settings.workers > 1 and settings.server == "pyvoy":
        raise OperatorError(
            "--workers (SCRAWN_WORKERS) above 1 is for hypercorn: pyvoy serves on Envoy's worker threads",
            "unset SCRAWN_WORKERS with SCRAWN_SERVER=pyvoy, or run several servers behind a load balancer",
        )
    return settings.workers


def listen(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on, bound as hypercorn binds its own."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


class Pool:
    """The worker processes, started on one listening socket."""

    def __init__(self, settings: Settings, sock: socket.socket, metrics_dir: str) -> None:
        self._env = {**os.environ, **settings.environment(), MULTIPROCESS_DIR: metrics_dir}
        self._fd = sock.fileno()
        self.running: set[asyncio.subprocess.Process] = set()
        self.closing = False

    async def spawn(self) -> asyncio.subprocess.Process:
        """Start a worker and wait until it is ready (its app started, about to accept)."""
        read_end, write_end = os.pipe()
        try:
            args = [str(self._fd), str(write_end), str(os.getpid())]
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "scrawn.server.worker", *args),
                env=self._env,
                pass_fds=(self._fd, write_end),
            )
        finally:
            os.close(write_end)
        self.running.add(process)
        if self.closing:  # started as the pool drains: it drains too
            process.send_signal(signal.SIGTERM)
        try:
            said = await asyncio.to_thread(os.read, read_end, 1)  # b"": it exited without saying ready
        finally:
            os.close(read_end)
        if not said:
            code = await process.wait()
            self.running.discard(process)
            raise WorkerFailed(f"a server worker exited with code {code} before it was ready (see the log)")
        return process

    async def watch(self, stop: asyncio.Event) -> None:
        """Until ``stop``: replace every worker that exits."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                exits = {asyncio.ensure_future(p.wait()): p for p in self.running}
                done, _ = await asyncio.wait({stopping, *exits}, return_when=asyncio.FIRST_COMPLETED)
                for waited in exits:
                    waited.cancel()
                for waited in done - {stopping}:
                    process = exits[waited]
                    self.running.discard(process)
                    code = process.returncode
                    log.warning("worker %d exited with code %s; starting another", process.pid, code)
                    if not stop.is_set():
                        await self.spawn()
        finally:
            stopping.cancel()

    def terminate(self) -> None:
        """SIGTERM every worker, and every one started from now on."""
        self.closing = True
        for process in self.running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    async def drained(self) -> list[int | None]:
        """Every worker's exit code, once all have exited (those past ``DRAIN_LIMIT`` are killed)."""
        waits = [asyncio.ensure_future(p.wait()) for p in self.running]
        if waits:
            _, late = await asyncio.wait(waits, timeout=DRAIN_LIMIT)
            for process in self.running:
                if process.returncode is None:
                    process.kill()
            if late:
                await asyncio.wait(late)
        return [p.returncode for p in self.running]


async def supervise(settings: Settings, workers: int, stop: asyncio.Event, ready: Callable[[], None]) -> None:
    """Run ``workers`` server processes on ``settings``' port until ``stop``, then drain them all."""
    counts = tempfile.TemporaryDirectory(prefix="scrawn-metrics-")
    with listen(settings.host, settings.port) as sock, counts as metrics_dir:
        pool = Pool(settings, sock, metrics_dir)  # /metrics sums every worker's counts, replaced ones' too
        starting = asyncio.gather(*(pool.spawn() for _ in range(workers)), return_exceptions=True)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            first: set[asyncio.Future[Any]] = {starting, stopping}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                if failed := [e for e in await starting if isinstance(e, BaseException)]:
                    raise failed[0]
                ready()
                await pool.watch(stop)
        finally:
            stopping.cancel()
            pool.terminate()
            await starting  # workers still starting were told to drain as they started
            sock.close()  # ours: once the workers close theirs, a new connection is refused, not left queued
            codes = await pool.drained()
    # A worker still starting when SIGTERM came may end by it before its handler is set: nothing was served.
    if unclean := [c for c in codes if c not in (0, -signal.SIGTERM)]:
        raise WorkerFailed(f"a server worker exited with code {unclean[0]} while draining (see the log)")
