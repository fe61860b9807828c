"""The processes of a chaos run and the tools around them: workers and pollers that get
SIGKILLed and restarted, the simulator process, rabbitmqctl, a private Redis key prefix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.chaos.model import PYTHON, ROOT, ChaosConfig
from workers.commands import COMMANDS

# --- the pieces --------------------------------------------------------------------------


# The node rabbitmqctl talks to: the shared one, or a node of scripts/cluster in cluster mode.
NODE: list[str] = []


def rabbitmqctl(*args: str, timeout: float = 120) -> str:
    node = ["-n", NODE[0]] if NODE else []
    return subprocess.run(
        ["rabbitmqctl", "-q", *node, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def queue_depths(vhost: str) -> dict[str, int]:
    out = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
    depths: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


def is_work_queue(name: str) -> bool:
    return name.startswith(("flowgate.cmd.", "flowgate.delay.")) or name in (
        "flowgate.poll",
        "flowgate.unrouted",
    )


class Procs:
    """The worker and poller processes; any of them may be SIGKILLed and started again."""

    def __init__(self, cfg: ChaosConfig, env: dict[str, str], log_dir: Path) -> None:
        self.cfg = cfg
        self.env = env
        self.log_dir = log_dir
        roles = ["worker"] * cfg.workers + ["poller"] * cfg.pollers
        self.slots: list[tuple[str, subprocess.Popen[bytes] | None]] = [(r, None) for r in roles]
        self.starts = Counter[int]()

    def start(self, index: int) -> None:
        role, _ = self.slots[index]
        self.starts[index] += 1
        log = open(self.log_dir / f"{role}-{index}.log", "ab")  # noqa: SIM115
        log.write(f"--- start #{self.starts[index]} at {time.time():.3f}\n".encode())
        log.flush()
        argv = [PYTHON, "-m", "workers.cli", role]
        if self.cfg.prefetch:
            argv += ["--prefetch", str(self.cfg.prefetch)]
        env = self.env
        nodes = env["FLOWGATE_AMQP_URL"].split(";")
        if len(nodes) > 1:
            # Each process starts on another node of the cluster, as on several hosts.
            turn = index % len(nodes)
            env = {**env, "FLOWGATE_AMQP_URL": ";".join(nodes[turn:] + nodes[:turn])}
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=ROOT)
        log.close()
        self.slots[index] = (role, proc)

    def start_all(self) -> None:
        for index in range(len(self.slots)):
            self.start(index)

    def kill(self, index: int) -> None:
        _, proc = self.slots[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            with open(self.log_dir / f"{self.slots[index][0]}-{index}.log", "ab") as log:
                log.write(f"--- SIGKILL at {time.time():.3f}\n".encode())

    def died(self) -> list[int]:
        """Slots whose process exited on its own (a crash: restarted, and counted)."""
        return [i for i, (_, p) in enumerate(self.slots) if p is not None and p.poll() is not None]

    def stop_all(self) -> None:
        for _, proc in self.slots:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.slots:
            if proc is not None:
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def process_env(
    cfg: ChaosConfig,
    amqp_url: str,
    prefix: str,
    base_url: str,
    connections: tuple[str, ...] = ("default",),
    redis_url: str | None = None,
) -> dict[str, str]:
    """Every process's settings; `redis_url` (the run's own replicated Redis) instead of the
    shared one, with claims that wait for `cfg.redis_replicas` replicas."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        FLOWGATE_AMQP_URL=amqp_url,
        FLOWGATE_IDEMPOTENCY__KEY_PREFIX=prefix,
        FLOWGATE_SHUTDOWN_GRACE="10",
    )
    if cfg.retention is not None:
        env["FLOWGATE_IDEMPOTENCY__RETENTION"] = str(cfg.retention)
    if redis_url is not None:
        env["FLOWGATE_IDEMPOTENCY__REDIS_URL"] = redis_url
        env["FLOWGATE_IDEMPOTENCY__REPLICAS"] = str(cfg.redis_replicas)
    for vendor in COMMANDS.vendors:
        for name in connections:
            base = f"FLOWGATE_{vendor.name.upper()}__{name.upper()}__"
            env[base + "BASE_URL"] = base_url
            env[base + "TIMEOUT"] = str(cfg.client_timeout)
            env[base + "POLL__FIRST_DELAY"] = "0.25"
            env[base + "POLL__MAX_DELAY"] = "1"
            env[base + "RETRY__FIRST_DELAY"] = "0.25"
            env[base + "RETRY__MAX_DELAY"] = "2"
            env[base + "RETRY__MAX_ATTEMPTS"] = "8"
            if vendor.name == "productlive":
                env[base + "RATE_LIMIT__REQUESTS"] = str(cfg.productlive_limit)
                env[base + "RATE_LIMIT__WINDOW"] = str(cfg.productlive_window)
    return env


def start_simulators(
    cfg: ChaosConfig, port: int, log_dir: Path, history: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The simulators as a process; `history`: ended PBSM runs the reruns and restarts use."""
    history_file = log_dir / "pbsm-history.json"
    history_file.write_text(json.dumps(history))
    argv = [PYTHON, "-m", "tests.chaos.sim", "--port", str(port), "--seed", str(cfg.seed)]
    argv += ["--run-seconds", str(cfg.run_seconds), "--history", str(history_file)]
    argv += ["--productlive-limit", str(cfg.productlive_limit)]
    argv += ["--productlive-window", str(cfg.productlive_window)]
    with open(log_dir / "simulators.log", "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT)


async def wait_healthy(http: httpx.AsyncClient, sim: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if sim.poll() is not None:
            raise RuntimeError("the simulator process exited at start")
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/_sim/health")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the simulators did not come up")


def count_in_logs(log_dir: Path, needle: str) -> int:
    total = 0
    for path in log_dir.glob("*.log"):
        with open(path, "rb") as fh:
            total += sum(1 for line in fh if needle.encode() in line)
    return total


async def forget_redis(prefix: str) -> None:
    from bench.redis_keys import delete_keys_under

    await delete_keys_under("redis://127.0.0.1:6379/0", prefix)
