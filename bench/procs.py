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

__all__ = ["Proc", "broker_pid", "cpu_seconds", "peak_rss_mb", "tree"]

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


def broker_pid() -> int | None:
    """RabbitMQ's beam.smp, to report the broker's CPU beside the contender's."""
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == "beam.smp":
                return int(entry)
    return None


@dataclass
class Proc:
    """One started process (with its own process group) and its role name."""

    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None
    cpu_start: dict[int, float] = field(default_factory=dict)

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=out, stderr=out, start_new_session=True
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
