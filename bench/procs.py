"""The contenders' processes: start, stop, and what /proc says about their CPU and memory.

CPU is utime + stime of every process in each tree (Celery's prefork children included),
read at the start and at the end of the measured window. Peak RSS is each process's VmHWM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Proc",
    "broker_pid",
    "cpu_seconds",
    "listener_pid",
    "peak_rss_mb",
    "redis_pid",
    "server_pid",
    "tree",
]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from `state` on


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def peak_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _listening_sockets(port: int) -> set[str]:
    """The `socket:[inode]` links of the TCP sockets listening on `port` (any address)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # fields[3] is the state: 0A = LISTEN
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(f"socket:[{fields[9]}]")
    return found


def listener_pid(port: int) -> int | None:
    """The process listening on TCP `port`, or None when there is none or its file
    descriptors cannot be read (another user's process, without root)."""
    sockets = _listening_sockets(port)
    if not sockets:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in sockets:
                        return int(entry)
    return None


def _oldest_named(comm: str) -> int | None:
    found = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == comm:
                fields = _stat(int(entry))
                if fields is not None:
                    found.append((int(fields[19]), int(entry)))  # start time, pid
    return min(found)[1] if found else None


def server_pid(port: int, comm: str) -> int | None:
    """The server process on `port`; failing that, the oldest process named `comm`.

    By the port first: the tests start RabbitMQ nodes of their own (other ports, same
    `beam.smp`), and `rabbitmqctl` runs a `beam.smp` too, so the first by name can be
    any of them. The oldest by name is the usual system service when the port's owner
    cannot be read."""
    return listener_pid(port) or _oldest_named(comm)


def broker_pid(port: int = 5672) -> int | None:
    """RabbitMQ's beam.smp, to report the broker's CPU beside the contender's."""
    return server_pid(port, "beam.smp")


def redis_pid(port: int = 6379) -> int | None:
    """redis-server (flowgate's store), to report its CPU beside the contender's."""
    return server_pid(port, "redis-server")


@dataclass
class Proc:
    """One started process (with its own process group) and its role name."""

    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path | None = None  # a baseline's worktree (`--baseline`), else the repository
    process: asyncio.subprocess.Process | None = None
    cpu_start: dict[int, float] = field(default_factory=dict)

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=self.cwd,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def mark(self) -> None:
        """Start of the measured window."""
        self.cpu_start = {p: cpu_seconds(p) for p in tree(self.pid)}

    def cpu_used(self) -> float:
        return sum(cpu_seconds(p) - self.cpu_start.get(p, 0.0) for p in tree(self.pid))

    def peaks(self) -> list[tuple[str, float]]:
        """(role, MB) for this process and each child (`<role>-child`)."""
        child = f"{self.role}-child"
        return [(self.role if p == self.pid else child, peak_rss_mb(p)) for p in tree(self.pid)]

    async def stop(self, grace: float = 20.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
