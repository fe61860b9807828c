"""One contender, one profile: fresh vhost, start processes, publish, collect, measure, stop.

The same collector measures everyone: a queue bound to `flowgate.events` for the terminal
kinds; a command's time is from its publish to its terminal event's arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx

from bench.celery_app import task_message
from bench.otlp import OtlpSink
from bench.procs import Proc, broker_pid, cpu_seconds, redis_pid
from bench.redis_keys import delete_keys_under
from bench.sims import Sims
from bench.workload import MIX, Profile, commands, ideal
from contracts import COMMAND_TYPES, encode_command
from workers.broker import AmqpBroker
from workers.topology import build_topology

__all__ = ["BASELINES", "BASELINE_PREFIX", "OBSERVED", "Run", "layout", "run_contender"]

PY = sys.executable
VHOST = "flowgate-bench"
REDIS_URL = "redis://127.0.0.1:6379/0"  # flowgate's default idempotency store
_LOCAL = ("127.0.0.1", "localhost", "::1")
CELERY = [PY, "-m", "celery", "-A", "bench.celery_app", "worker", "-Q", "celery", "-l", "WARNING"]
CELERY += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
# flowgate as an operator runs it in production: JSON log lines at INFO, /metrics scraped every
# SCRAPE_EVERY seconds, every trace exported (to `bench.otlp`). `flowgate` itself logs at
# WARNING (no line per command), serves no port and traces nothing.
OBSERVED = "flowgate-observed"
# `--baseline REV`: the contender `flowgate@REV` is flowgate as committed at REV, run from a
# worktree of it (`python -m workers.cli` imports from its working directory first), on the
# same interpreter and packages: the interleaved A/B of a change.
BASELINE_PREFIX = "flowgate@"
BASELINES: dict[str, Path] = {}
SCRAPE_EVERY = 1.0  # Prometheus' usual interval is 15-60 s: once a second is the worst case


def rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, timeout=120)


def fresh_vhost() -> None:
    rabbitmqctl("delete_vhost", VHOST, check=False)
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")


@dataclass
class Run:
    """What one contender did on one profile."""

    name: str
    profile: str
    n: int
    layout: str
    done: int = 0
    window: float = 0.0
    capped: bool = False
    e2e: list[float] = field(default_factory=list)  # completed commands only
    overhead: list[float] = field(default_factory=list)
    calls: int = 0
    cpu: float = 0.0
    cpu_roles: dict[str, float] = field(default_factory=dict)
    broker_cpu: float = 0.0
    redis_cpu: float = 0.0  # the shared redis-server, like broker_cpu
    rss: list[tuple[str, float]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    rate: float | None = None  # publish rate when paced
    round: int = 0  # with --repeat, which round of the interleaved contenders
    note: str = ""  # why this rate, for the targets table
    scrapes: int = 0  # flowgate-observed: GET /metrics answered 200 in the window
    scrape_failures: int = 0
    trace_exports: int = 0  # flowgate-observed: OTLP POSTs, the final flush at stop included
    trace_bytes: int = 0
    trace_spans: int = 0

    @property
    def throughput(self) -> float:
        return self.done / self.window if self.window else 0.0


def _many(count: int, role: str) -> str:
    return f"{count} {role}" + ("s" if count > 1 else "")


def layout(
    name: str, processes: int, threads: int, flowgate: tuple[int, int] | None = None
) -> tuple[list[tuple[str, list[str]]], str]:
    """(role, argv) per process and a one-line description of the process layout.

    flowgate's is `flowgate` = (workers, pollers) when given, else `processes` - 1 workers
    and 1 poller."""
    if name == "limit":
        argv = [PY, "-m", "bench.limit", "--amqp-url", "{url}"]
        return [("limit", argv)] * processes, f"{processes} x bench.limit"
    if name.startswith("flowgate"):
        workers, pollers = flowgate or (max(1, processes - 1), 1)
        if workers < 1 or pollers < 1:
            raise ValueError(f"flowgate layout {flowgate}: needs at least 1 worker and 1 poller")
        procs = [("worker", [PY, "-m", "workers.cli", "worker"])] * workers
        procs += [("poller", [PY, "-m", "workers.cli", "poller"])] * pollers
        return procs, f"{_many(workers, 'worker')} + {_many(pollers, 'poller')}"
    if name == "celery-prefork":
        argv = [*CELERY, "-P", "prefork", "-c", str(processes), "-n", "prefork@%h"]
        return [("celery", argv)], f"1 celery main + {processes} prefork children"
    argvs = [
        ("celery", [*CELERY, "-P", "threads", "-c", str(threads), "-n", f"t{i}@%h"])
        for i in range(processes)
    ]
    return argvs, f"{processes} celery x {threads} threads"


async def _wait_consumers(channel: Any, wanted: dict[str, int], within: float = 60) -> None:
    deadline = time.monotonic() + within
    for queue, count in wanted.items():
        while True:
            declared = await channel.declare_queue(queue, passive=True)
            if declared.declaration_result.consumer_count >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue}: fewer than {count} consumers after {within:.0f} s")
            await asyncio.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _observed_env(endpoint: str) -> dict[str, str]:
    return {
        "FLOWGATE_LOG_LEVEL": "INFO",
        "FLOWGATE_LOG_FORMAT": "json",
        "FLOWGATE_TRACING__ENABLED": "true",
        "FLOWGATE_TRACING__SAMPLE_RATIO": "1",
        "FLOWGATE_TRACING__ENDPOINT": endpoint,
    }


async def run_contender(
    name: str, profile: Profile, sims: Sims, *, n: int, processes: int, threads: int,
    cap: float, logs: Path, rate: float | None = None, flowgate: tuple[int, int] | None = None,
) -> Run:  # fmt: skip
    fresh_vhost()
    url = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
    topology = AmqpBroker(url)
    await topology.connect()
    await topology.declare(build_topology(COMMAND_TYPES))
    await topology.close()
    await sims.reset()
    env = dict(__import__("os").environ, FLOWGATE_AMQP_URL=url, BENCH_AMQP_URL=url)
    env |= {"PYTHONUNBUFFERED": "1", "FLOWGATE_LOG_LEVEL": "WARNING"}
    # flowgate's idempotency records under a prefix of this run's own, deleted after it: the
    # default prefix left every run's records in the user's Redis for the retention (7 days;
    # 380,000 keys, 400 MB, after a day of benchmarking here).
    store_prefix = f"flowgate-bench:{uuid.uuid4().hex[:8]}:"
    env["FLOWGATE_IDEMPOTENCY__KEY_PREFIX"] = store_prefix
    env |= sims.env()
    sink = OtlpSink(_free_port()) if name == OBSERVED else None
    if sink is not None:
        env |= _observed_env(sink.endpoint)
    specs, description = layout(name, processes, threads, flowgate)
    # flowgate-observed: a health port per process, as each pod has its own
    ports = [_free_port() if sink else None for _ in specs]
    cwd = BASELINES.get(name)  # None: this repository, as for every other contender
    procs = [
        Proc(role, [a.replace("{url}", url) for a in argv],
             env | ({"FLOWGATE_HEALTH_PORT": str(port)} if port else {}), logs / f"{name}.log",
             cwd=cwd)
        for (role, argv), port in zip(specs, ports, strict=True)
    ]  # fmt: skip
    scrape = [f"http://127.0.0.1:{port}/metrics" for port in ports if port]
    run = Run(name, profile.name, n, description, rate=rate)
    connection = await aio_pika.connect(url)
    lost = asyncio.Event()  # e.g. someone ran `rabbitmqctl stop_app` mid-run
    connection.close_callbacks.add(lambda *_: lost.set())
    try:
        channel = await connection.channel(publisher_confirms=True)
        celery = name.startswith("celery")
        if celery:
            await channel.declare_queue("celery", durable=True)
        results = await channel.declare_queue(exclusive=True)
        for kind in ("succeeded", "failed", "cancelled"):
            await results.bind("flowgate.events", routing_key=f"*.{kind}")
        if sink is not None:
            await sink.start()
        for proc in procs:
            await proc.start()
        if celery:
            consumers = 1 if name == "celery-prefork" else len(procs)
            await _wait_consumers(channel, {"celery": consumers})
        else:
            workers = sum(1 for p in procs if p.role in ("worker", "limit"))
            await _wait_consumers(channel, {f"flowgate.cmd.{t}": workers for t in MIX})
            if name.startswith("flowgate"):
                pollers = sum(1 for p in procs if p.role == "poller")
                await _wait_consumers(channel, {"flowgate.poll": pollers})
        await _measure(run, channel, results, procs, sims, profile, celery, cap, logs, lost, scrape)
        if lost.is_set():
            raise ConnectionError("lost the broker connection during the run")
    finally:
        await connection.close()
        for proc in procs:
            await proc.stop()
        if sink is not None:
            # after the processes: their last spans are flushed at stop
            await sink.stop()
            run.trace_exports, run.trace_bytes = sink.requests, sink.bytes
            run.trace_spans = sink.spans()
        await delete_keys_under(env.get("FLOWGATE_IDEMPOTENCY__REDIS_URL", REDIS_URL), store_prefix)
    return run


@contextlib.asynccontextmanager
async def _scraping(urls: list[str], run: Run) -> AsyncIterator[None]:
    """Scrape `urls` (none: nothing) while the block runs."""
    task = asyncio.create_task(_scrape(urls, run)) if urls else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _scrape(urls: list[str], run: Run) -> None:
    """GET every process's /metrics each SCRAPE_EVERY seconds, as Prometheus would."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        while True:
            due = time.monotonic() + SCRAPE_EVERY
            answers = await asyncio.gather(*(http.get(url) for url in urls), return_exceptions=True)
            for answer in answers:
                if isinstance(answer, httpx.Response) and answer.status_code == 200:
                    run.scrapes += 1
                else:
                    run.scrape_failures += 1
            await asyncio.sleep(max(0.0, due - time.monotonic()))


def _store_pid() -> int | None:
    """The local redis-server flowgate's store uses; None for one on another machine (its
    CPU is not this machine's to read)."""
    url = urlsplit(os.environ.get("FLOWGATE_IDEMPOTENCY__REDIS_URL", REDIS_URL))
    if url.scheme not in ("redis", "rediss") or url.hostname not in _LOCAL:
        return None
    return redis_pid(url.port or 6379)


async def _measure(
    run: Run, channel: Any, results: Any, procs: list[Proc], sims: Sims, profile: Profile,
    celery: bool, cap: float, logs: Path, lost: asyncio.Event, scrape: list[str],
) -> None:  # fmt: skip
    ids = [str(uuid.uuid4()) for _ in range(run.n)]
    work = commands(run.n)
    messages = []
    for cid, (command_type, data) in zip(ids, work, strict=True):
        if celery:
            body, headers = task_message(command_type, data, cid)
            message = aio_pika.Message(body, headers=headers, content_type="application/json",
                                       content_encoding="utf-8", correlation_id=cid,
                                       delivery_mode=aio_pika.DeliveryMode.PERSISTENT)  # fmt: skip
            messages.append(("", "celery", message))
        else:
            body, content_type = encode_command(command_type, data, command_id=cid)
            message = aio_pika.Message(body, content_type=content_type, message_id=cid,
                                       delivery_mode=aio_pika.DeliveryMode.PERSISTENT)  # fmt: skip
            messages.append(("flowgate.commands", command_type, message))
    published: dict[str, float] = {}
    arrived: dict[str, float] = {}
    all_done = asyncio.Event()

    async def on_result(message: Any) -> None:
        now = time.time()
        event = json.loads(message.body)
        cid = event["data"]["command_id"]
        if cid not in arrived:
            arrived[cid] = now
            kind = event["type"].rsplit(".", 1)[1]
            run.kinds[kind] = run.kinds.get(kind, 0) + 1
            if len(arrived) == run.n:
                all_done.set()

    await results.consume(on_result, no_ack=True)
    exchanges = {"": channel.default_exchange}
    exchanges["flowgate.commands"] = await channel.get_exchange("flowgate.commands", ensure=False)

    async def publish(cid: str, exchange: str, key: str, message: Any) -> None:
        published[cid] = time.time()
        await exchanges[exchange].publish(message, routing_key=key)

    broker, store = broker_pid(), _store_pid()
    broker_start = cpu_seconds(broker) if broker else 0.0
    store_start = cpu_seconds(store) if store else 0.0
    for proc in procs:
        proc.mark()
    start = time.time()
    async with _scraping(scrape, run):
        if run.rate:
            pending = []
            for i, (cid, (exchange, key, message)) in enumerate(zip(ids, messages, strict=True)):
                await asyncio.sleep(max(0.0, start + i / run.rate - time.time()))
                pending.append(asyncio.create_task(publish(cid, exchange, key, message)))
            await asyncio.gather(*pending)
        else:
            for i in range(0, run.n, 500):
                chunk = zip(ids[i : i + 500], messages[i : i + 500], strict=True)
                await asyncio.gather(*(publish(cid, *m) for cid, m in chunk))
        waits = [asyncio.create_task(all_done.wait()), asyncio.create_task(lost.wait())]
        await asyncio.wait(
            waits, timeout=max(1.0, start + cap - time.time()), return_when="FIRST_COMPLETED"
        )
        for task in waits:
            task.cancel()
    if lost.is_set():
        return
    run.capped = not all_done.is_set()
    end = time.time() if run.capped else max(arrived.values())
    run.window = end - start
    for proc in procs:
        run.cpu_roles[proc.role] = run.cpu_roles.get(proc.role, 0.0) + proc.cpu_used()
    run.cpu = sum(run.cpu_roles.values())
    run.broker_cpu = cpu_seconds(broker) - broker_start if broker else 0.0
    run.redis_cpu = cpu_seconds(store) - store_start if store else 0.0
    run.rss = [peak for proc in procs for peak in proc.peaks()]
    run.done = len(arrived)
    run.calls = await sims.calls()
    ideals = {t: ideal(t, profile)[0] for t in MIX}
    rows = []
    for cid, (command_type, _) in zip(ids, work, strict=True):
        if cid in arrived:
            run.e2e.append(arrived[cid] - published[cid])
            run.overhead.append(run.e2e[-1] - ideals[command_type])
            rows.append([command_type, published[cid] - start, run.e2e[-1], run.overhead[-1]])
    paced = f"-at-{run.rate:.0f}" if run.rate else ""
    with (logs / f"{profile.name}-{run.name}{paced}.json").open("w") as out:
        json.dump(rows, out)  # per command: type, publish offset, time, overhead
