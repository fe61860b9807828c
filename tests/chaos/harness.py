"""The chaos run: N commands of every type through real worker and poller processes on RabbitMQ,
while processes are SIGKILLed and restarted, RabbitMQ is restarted once, and the simulators
answer 503, 429 + Retry-After, too late for the client's timeout, and expire PBSM tokens early.

Everything is private to one run: a RabbitMQ vhost, a Redis key prefix, a simulator process on
its own port. At the end it drains, reads the simulators' ledger and prints one line of counts;
`ChaosResult.ok` is the verdict (lost = 0, duplicate triggers on `fail` connections = 0,
conflicting terminal events = 0, work queues empty).

How a command is traced to its vendor trigger: TMF622 carries the command id as
`X-Correlation-ID`; the other vendors get a business name derived from the command id
(`batch`, `partner_name`, `process_name` = `CHAOS-<command id>`), read back from the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contracts import COMMAND_TYPES, encode_command
from workers.broker import AmqpBroker, Binding, Delivery, OutgoingMessage, Queue, Topology
from workers.simulators import ROUTES
from workers.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, build_topology

__all__ = ["ChaosConfig", "ChaosResult", "run_chaos"]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
EVENTS_QUEUE = "chaos.events"
VENDOR_OF = {
    "trigger-batch": "pbsm",
    "run-partner": "informatica",
    "start-process": "robusta",
    "add-paylink": "tmf622",
}
# Connections whose policy is `unknown_outcome = fail`: a second trigger is a bug.
FAIL_POLICY = {"pbsm", "informatica", "robusta"}
TRIGGER_ROUTE = {
    "pbsm": "pbsm.trigger",
    "informatica": "informatica.run",
    "robusta": "robusta.start",
    "tmf622": "tmf622.patch",
}
# Every route the chaos commands use; PBSM's interrupt/rerun/restart are never called.
FAULT_ROUTES = tuple(r for r in ROUTES if r not in {"pbsm.interrupt", "pbsm.rerun", "pbsm.restart"})
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class ChaosConfig:
    n: int = 2000
    seed: int = 1
    workers: int = 2
    pollers: int = 1
    kill_every: float = 3.0  # mean seconds between SIGKILLs (exponential)
    broker_restart: bool = True
    timeout: float = 600.0  # seconds to wait for every terminal event once publishing ended
    rate: float = 100.0  # commands per second published (0: as fast as confirms allow)
    concurrency: int = 50  # publishes in flight
    run_seconds: float = 0.5  # how long a simulated vendor run takes
    client_timeout: float = 1.0  # FLOWGATE_<VENDOR>__DEFAULT__TIMEOUT
    slow_latency: float = 1.5  # latency of a "too slow" answer (past client_timeout)
    p503: float = 0.10
    p429: float = 0.05
    retry_after: float = 0.5
    pslow: float = 0.02
    expire_every: float = 5.0  # mean seconds between early PBSM token expiries
    p_vendor_fail: float = 0.03  # commands scripted to end as a failed run
    p_invalid: float = 0.01  # commands that break a rule (failed/invalid + dead letter)
    prefetch: int | None = None  # worker/poller prefetch; None = flowgate's default
    drain_timeout: float = 120.0
    log_dir: Path | None = None
    progress: Callable[[str], None] | None = None


@dataclass
class ChaosResult:
    published: int = 0
    publish_retries: int = 0
    terminal: int = 0
    lost: list[str] = field(default_factory=list)
    terminal_kinds: Counter[str] = field(default_factory=Counter)
    duplicate_triggers: dict[str, int] = field(default_factory=dict)  # fail-policy cmd -> n
    deduplicated_paylink_retries: int = 0
    conflicting: dict[str, list[str]] = field(default_factory=dict)
    wrong_outcome: dict[str, str] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_kinds: Counter[str] = field(default_factory=Counter)
    dead_lettered: set[str] = field(default_factory=set)  # command ids found in dead letters
    # Commands answered failed (rejected/exhausted/unknown_outcome) with no dead letter kept.
    missing_dead_letters: list[str] = field(default_factory=list)
    unexpected_events: int = 0
    duplicate_events: int = 0
    kills: int = 0
    broker_restarts: int = 0
    token_expiries: int = 0
    queues_left: dict[str, int] = field(default_factory=dict)
    handler_errors: int = 0
    elapsed: float = 0.0
    log_dir: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and not self.duplicate_triggers
            and not self.conflicting
            and not self.queues_left
        )

    def summary(self) -> str:
        kinds = ",".join(f"{k}:{v}" for k, v in sorted(self.terminal_kinds.items()))
        dead = ",".join(f"{k}:{v}" for k, v in sorted(self.dead_letter_kinds.items()))
        left = sum(self.queues_left.values())
        return (
            f"chaos: published={self.published} terminal={self.terminal} lost={len(self.lost)} "
            f"duplicate_triggers={len(self.duplicate_triggers)} "
            f"deduplicated_paylink_retries={self.deduplicated_paylink_retries} "
            f"conflicting_terminals={len(self.conflicting)} dead_letters={self.dead_letters} "
            f"unexpected_events={self.unexpected_events} "
            f"duplicate_events={self.duplicate_events} kills={self.kills} "
            f"broker_restarts={self.broker_restarts} token_expiries={self.token_expiries} "
            f"queues_left={left} elapsed={self.elapsed:.0f}s "
            f"terminal_kinds={kinds or '-'} dead_letter_kinds={dead or '-'} "
            f"publish_retries={self.publish_retries} handler_errors={self.handler_errors} "
            f"wrong_outcomes={len(self.wrong_outcome)} "
            f"missing_dead_letters={len(self.missing_dead_letters)} "
            f"verdict={'PASS' if self.ok else 'FAIL'}"
        )

    def details(self, limit: int = 10) -> str:
        lines = []
        if self.lost:
            lines.append(f"lost ({len(self.lost)}): {', '.join(self.lost[:limit])}")
        for cid, count in list(self.duplicate_triggers.items())[:limit]:
            lines.append(f"duplicate trigger: {cid} triggered {count} times")
        for cid, kinds in list(self.conflicting.items())[:limit]:
            lines.append(f"conflicting terminals: {cid}: {kinds}")
        for cid, what in list(self.wrong_outcome.items())[:limit]:
            lines.append(f"unexpected outcome: {cid}: {what}")
        if self.queues_left:
            lines.append(f"queues not empty: {self.queues_left}")
        if self.missing_dead_letters:
            missing = ", ".join(self.missing_dead_letters[:limit])
            lines.append(
                f"failed without a dead letter ({len(self.missing_dead_letters)}): {missing}"
            )
        lines.append(f"process logs: {self.log_dir}")
        return "\n".join(lines)


# --- the pieces --------------------------------------------------------------------------


def _rabbitmqctl(*args: str, timeout: float = 120) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def queue_depths(vhost: str) -> dict[str, int]:
    out = _rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
    depths: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


def _work_queue(name: str) -> bool:
    return name.startswith(("flowgate.cmd.", "flowgate.delay.")) or name in (
        "flowgate.poll",
        "flowgate.unrouted",
    )


@dataclass
class Planned:
    id: str
    type: str
    data: dict[str, Any]
    expect: str  # "any" | "vendor_failed" | "invalid"
    key: str  # the business key the simulators see


def plan(cfg: ChaosConfig, rng: random.Random) -> list[Planned]:
    """N commands, the four types in turn; a few scripted to fail at the vendor or invalid."""
    types = sorted(COMMAND_TYPES)
    out = []
    for i in range(cfg.n):
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        ctype = types[i % len(types)]
        name = f"CHAOS-{cid}"
        order = f"O{cid.replace('-', '')}"
        data: dict[str, Any]
        if ctype == "trigger-batch":
            data, key = {"batch": name, "params": {"$FICMISDATE$": "2026-11-21"}}, name
        elif ctype == "run-partner":
            data, key = {"partner_name": name, "direction": "outbound"}, name
        elif ctype == "start-process":
            data, key = {"process_name": name, "values": {"n": i}}, name
        else:
            data = {"business_id": "PR", "order_id": order, "payment_link": f"https://p/{i}"}
            key = order
        expect = "any"
        draw = rng.random()
        if draw < cfg.p_invalid:
            expect = "invalid"
            if ctype == "add-paylink":
                data["business_id"] = "P R"  # breaks the pattern
            elif ctype == "trigger-batch":
                data["group"] = True  # params without group_params
            elif ctype == "run-partner":
                data["partner_name"] = f"<{name}>"
            else:
                data["schedule"] = {"quartz_cron": ""}
        elif draw < cfg.p_invalid + cfg.p_vendor_fail:
            expect = "vendor_failed"
        out.append(Planned(cid, ctype, data, expect, key))
    return out


_FAILED_STATUS = {
    "pbsm": "FAILED",
    "informatica": "Error",
    "robusta": "FAILED",
    "tmf622": "400",  # a synchronous refusal: failed/rejected
}


class Collector:
    """Every event from the durable chaos queue, deduplicated by CloudEvents id."""

    def __init__(self, published: set[str]) -> None:
        self.published = published
        self.seen_ids: set[str] = set()
        self.duplicates = 0
        self.unexpected = 0
        self.terminals: dict[str, list[tuple[str, str | None]]] = defaultdict(list)

    async def on_delivery(self, delivery: Delivery) -> None:
        try:
            event = json.loads(delivery.body)
            event_id = event["id"]
            data = event["data"]
            command_id = data["command_id"]
            kind = event["type"].rsplit(".", 1)[-1]
        except (ValueError, KeyError, TypeError):
            self.unexpected += 1
            await delivery.ack()
            return
        if event_id in self.seen_ids:
            self.duplicates += 1
        else:
            self.seen_ids.add(event_id)
            if command_id not in self.published:
                self.unexpected += 1
            elif kind in TERMINAL:
                error = (data.get("error") or {}).get("kind")
                self.terminals[command_id].append((kind, error))
        await delivery.ack()


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
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, cwd=ROOT)
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


def _env(cfg: ChaosConfig, amqp_url: str, prefix: str, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        FLOWGATE_AMQP_URL=amqp_url,
        FLOWGATE_IDEMPOTENCY__KEY_PREFIX=prefix,
        FLOWGATE_SHUTDOWN_GRACE="10",
    )
    for vendor in ("INFORMATICA", "ROBUSTA", "TMF622", "PBSM"):
        base = f"FLOWGATE_{vendor}__DEFAULT__"
        env[base + "BASE_URL"] = base_url
        env[base + "TIMEOUT"] = str(cfg.client_timeout)
        env[base + "POLL__FIRST_DELAY"] = "0.25"
        env[base + "POLL__MAX_DELAY"] = "1"
        env[base + "RETRY__FIRST_DELAY"] = "0.25"
        env[base + "RETRY__MAX_DELAY"] = "2"
        env[base + "RETRY__MAX_ATTEMPTS"] = "8"
    return env


async def _publish_all(
    cfg: ChaosConfig,
    broker: AmqpBroker,
    commands: list[Planned],
    result: ChaosResult,
    published: set[str],
    stop: asyncio.Event,
) -> None:
    """Publish every command with confirms; a publish that fails (broker restart) is retried."""
    gate = asyncio.Semaphore(cfg.concurrency)
    start = time.monotonic()

    async def one(index: int, command: Planned) -> None:
        if cfg.rate > 0:
            await asyncio.sleep(max(0.0, start + index / cfg.rate - time.monotonic()))
        async with gate:
            body, content_type = encode_command(command.type, command.data, command_id=command.id)
            message = OutgoingMessage(body=body, content_type=content_type, message_id=command.id)
            published.add(command.id)  # before the publish: its events may arrive first
            delay = 0.2
            while True:
                try:
                    await broker.publish(COMMANDS_EXCHANGE, command.type, message)
                    break
                except Exception:  # PublishNotConfirmed, channel closed, reconnecting, ...
                    if stop.is_set():
                        raise
                    result.publish_retries += 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 3.0)
            result.published += 1

    await asyncio.gather(*(one(i, c) for i, c in enumerate(commands)))


async def _chaos(
    cfg: ChaosConfig,
    rng: random.Random,
    procs: Procs,
    result: ChaosResult,
    stop: asyncio.Event,
    restart_at: float | None,
    say: Callable[[str], None],
) -> None:
    """SIGKILL a random process at random intervals, start it again; restart RabbitMQ once."""
    started = time.monotonic()
    next_kill = started + rng.expovariate(1 / cfg.kill_every)
    while not stop.is_set():
        await asyncio.sleep(0.1)
        now = time.monotonic()
        for index in procs.died():
            say(f"process {procs.slots[index][0]}-{index} died on its own: restarting")
            procs.start(index)
        if restart_at is not None and now - started >= restart_at:
            restart_at = None
            say("rabbitmq: stop_app")
            await asyncio.to_thread(_rabbitmqctl, "stop_app")
            try:
                await asyncio.sleep(2)
            finally:
                await asyncio.to_thread(_rabbitmqctl, "start_app")
                await asyncio.to_thread(_rabbitmqctl, "await_startup")
            result.broker_restarts += 1
            say("rabbitmq: started again")
            continue
        if now >= next_kill:
            index = rng.randrange(len(procs.slots))
            procs.kill(index)
            result.kills += 1
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            procs.start(index)
            next_kill = time.monotonic() + rng.expovariate(1 / cfg.kill_every)


async def _expire_tokens(
    cfg: ChaosConfig,
    rng: random.Random,
    http: httpx.AsyncClient,
    result: ChaosResult,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.expovariate(1 / cfg.expire_every))
        if stop.is_set():
            return
        (await http.post("/_sim/expire-tokens")).raise_for_status()
        result.token_expiries += 1


async def _triggers(http: httpx.AsyncClient, commands: list[Planned]) -> dict[str, int]:
    """Per command id: vendor trigger requests the vendor acted on (status 200, or 0 = hang)."""
    by_key = {(VENDOR_OF[c.type], c.key): c.id for c in commands}
    counts: Counter[str] = Counter()
    for vendor, route in TRIGGER_ROUTE.items():
        response = await http.get("/_sim/ledger", params={"route": route}, timeout=120)
        response.raise_for_status()
        for entry in response.json():
            if entry["status"] not in (200, 0):
                continue
            if vendor == "tmf622":
                command_id = entry["headers"].get("x-correlation-id")
            else:
                body = entry.get("json") or {}
                name = {"pbsm": "batchName", "informatica": "partnerName", "robusta": "name"}
                command_id = by_key.get((vendor, body.get(name[vendor])))
            if command_id is not None:
                counts[command_id] += 1
    return counts


async def _read_dead_letters(broker: AmqpBroker, result: ChaosResult) -> None:
    """Classify the dead letters by flowgate's reason header (or the broker's x-death)."""
    while True:
        delivery = await broker.get("flowgate.dead-letters")
        if delivery is None:
            return
        headers = delivery.headers
        kind = headers.get("x-flowgate-error-kind")
        if kind is None:
            deaths = headers.get("x-death") or [{}]
            kind = f"broker-{deaths[0].get('reason', 'unknown')}"
        elif not headers.get("x-flowgate-reason"):
            kind = f"{kind}-no-reason"
        result.dead_letter_kinds[str(kind)] += 1
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            result.dead_lettered.add(str(json.loads(delivery.body)["id"]))
        await delivery.ack()


# --- the run -----------------------------------------------------------------------------


async def run_chaos(cfg: ChaosConfig) -> ChaosResult:
    say = cfg.progress or (lambda line: print(line, file=sys.stderr, flush=True))
    rng = random.Random(cfg.seed)
    result = ChaosResult()
    began = time.monotonic()
    run = uuid.uuid4().hex[:8]
    vhost = f"flowgate-chaos-{run}"
    prefix = f"flowgate-chaos:{run}:"
    log_dir = cfg.log_dir or Path(tempfile.mkdtemp(prefix=f"flowgate-chaos-{run}-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    result.log_dir = str(log_dir)
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    commands = plan(cfg, rng)
    published: set[str] = set()

    await asyncio.to_thread(_rabbitmqctl, "add_vhost", vhost)
    await asyncio.to_thread(_rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    sim = _start_simulators(cfg, port, log_dir)
    procs = Procs(cfg, _env(cfg, amqp_url, prefix, base_url), log_dir)
    broker = AmqpBroker(amqp_url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            await _wait_healthy(http, sim)
            await _configure_faults(cfg, http, commands)
            await broker.connect()
            await broker.declare(build_topology(COMMAND_TYPES))
            await broker.declare(
                Topology(
                    queues=(Queue(EVENTS_QUEUE, arguments={"x-queue-type": "quorum"}),),
                    bindings=(Binding(EVENTS_EXCHANGE, EVENTS_QUEUE, "#"),),
                )
            )
            collector = Collector(published)
            await broker.consume(EVENTS_QUEUE, collector.on_delivery, prefetch=1000)
            procs.start_all()
            publish_span = cfg.n / cfg.rate if cfg.rate > 0 else 10.0
            restart_at = rng.uniform(0.3, 0.7) * publish_span if cfg.broker_restart else None
            tasks = [
                asyncio.create_task(_chaos(cfg, rng, procs, result, stop, restart_at, say)),
                asyncio.create_task(_expire_tokens(cfg, rng, http, result, stop)),
            ]
            say(
                f"chaos: vhost={vhost} simulators={base_url} logs={log_dir} n={cfg.n} "
                f"seed={cfg.seed}"
            )
            publisher = asyncio.create_task(
                _publish_all(cfg, broker, commands, result, published, stop)
            )
            # Chaos goes on while publishing and until every command has its terminal event.
            deadline: float | None = None
            last_report = 0.0
            while True:
                await asyncio.sleep(0.5)
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                done = sum(1 for c in commands if collector.terminals.get(c.id))
                now = time.monotonic()
                if now - last_report >= 10:
                    last_report = now
                    say(
                        f"chaos: t={now - began:.0f}s published={result.published} "
                        f"terminal={done} kills={result.kills} "
                        f"restarts={result.broker_restarts} events={len(collector.seen_ids)}"
                    )
                if publisher.done():
                    publisher.result()
                    if deadline is None:
                        deadline = now + cfg.timeout
                    if done == len(commands) or now >= deadline:
                        break
            stop.set()
            await asyncio.gather(*tasks)
            # Every process alive for the drain (a kill may have just happened).
            for index in procs.died():
                procs.start(index)
            say("chaos: faults off, draining")
            await http.delete("/_sim/faults")
            drained = time.monotonic() + cfg.drain_timeout
            while True:
                depths = await asyncio.to_thread(queue_depths, vhost)
                left = {q: n for q, n in depths.items() if _work_queue(q) and n}
                if not left or time.monotonic() >= drained:
                    break
                await asyncio.sleep(1)
            # Late terminal events of commands still finishing count too.
            await asyncio.sleep(2)
            result.queues_left = left
            result.dead_letters = depths.get("flowgate.dead-letters", 0)
            await _read_dead_letters(broker, result)
            triggers = await _triggers(http, commands)
            await _dump_ledger(http, log_dir / "ledger.jsonl")
        _tally(cfg, result, commands, collector, triggers)
        result.handler_errors = _count_in_logs(log_dir, "handler failed")
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        procs.stop_all()
        with contextlib.suppress(Exception):
            await broker.close()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sim.kill()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_rabbitmqctl, "delete_vhost", vhost)
        with contextlib.suppress(Exception):
            await _forget_redis(prefix)
        result.elapsed = time.monotonic() - began
    return result


def _start_simulators(cfg: ChaosConfig, port: int, log_dir: Path) -> subprocess.Popen[bytes]:
    argv = [PYTHON, "-m", "tests.chaos.sim", "--port", str(port), "--seed", str(cfg.seed)]
    argv += ["--run-seconds", str(cfg.run_seconds)]
    with open(log_dir / "simulators.log", "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT)


async def _wait_healthy(http: httpx.AsyncClient, sim: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if sim.poll() is not None:
            raise RuntimeError("the simulator process exited at start")
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/_sim/health")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the simulators did not come up")


async def _configure_faults(
    cfg: ChaosConfig, http: httpx.AsyncClient, commands: list[Planned]
) -> None:
    for route in FAULT_ROUTES:
        faults: list[dict[str, Any]] = [
            {"route": route, "status": 503, "probability": cfg.p503},
            {
                "route": route,
                "status": 429,
                "probability": cfg.p429,
                "retry_after": cfg.retry_after,
            },
            {"route": route, "latency": cfg.slow_latency, "probability": cfg.pslow},
        ]
        for fault in faults:
            if fault["probability"] > 0:
                (await http.post("/_sim/faults", json=fault)).raise_for_status()
    for command in commands:
        if command.expect == "vendor_failed":
            vendor = VENDOR_OF[command.type]
            body = {"vendor": vendor, "key": command.key, "final_status": _FAILED_STATUS[vendor]}
            (await http.post("/_sim/outcomes", json=body)).raise_for_status()


def _tally(
    cfg: ChaosConfig,
    result: ChaosResult,
    commands: list[Planned],
    collector: Collector,
    triggers: dict[str, int],
) -> None:
    result.duplicate_events = collector.duplicates
    result.unexpected_events = collector.unexpected
    for command in commands:
        terminals = collector.terminals.get(command.id, [])
        vendor = VENDOR_OF[command.type]
        if not terminals:
            result.lost.append(command.id)
        else:
            result.terminal += 1
            distinct = sorted({f"{k}/{e}" if e else k for k, e in terminals})
            if len(distinct) > 1:
                result.conflicting[command.id] = distinct
            kind, error = terminals[0]
            label = f"{kind}:{error}" if error else kind
            result.terminal_kinds[label] += 1
            # A scripted outcome that did not come out (chaos may still turn it into
            # unknown_outcome/exhausted; but a success would be wrong).
            if command.expect == "invalid" and label != "failed:invalid":
                result.wrong_outcome[command.id] = f"expected failed:invalid, got {label}"
            if command.expect == "vendor_failed" and kind == "succeeded":
                result.wrong_outcome[command.id] = "scripted to fail, got succeeded"
            kept = command.id in result.dead_lettered
            if error in ("rejected", "exhausted", "unknown_outcome") and not kept:
                result.missing_dead_letters.append(command.id)
            if command.expect == "any" and label == "failed:invalid":
                result.wrong_outcome[command.id] = "a valid command was answered invalid"
        count = triggers.get(command.id, 0)
        if vendor in FAIL_POLICY:
            if count > 1:
                result.duplicate_triggers[command.id] = count
        elif count > 1:
            result.deduplicated_paylink_retries += count - 1
        if command.expect == "invalid" and count:
            result.wrong_outcome[command.id] = "an invalid command reached the vendor"


async def _dump_ledger(http: httpx.AsyncClient, path: Path) -> None:
    """Every vendor request, compact, for after-the-fact questions (one JSON line each)."""
    response = await http.get("/_sim/ledger", timeout=300)
    response.raise_for_status()
    await asyncio.to_thread(_write_ledger, response.json(), path)


def _write_ledger(entries: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w") as out:
        for e in entries:
            body = e.get("json") if isinstance(e.get("json"), dict) else {}
            row = {
                "route": e["route"],
                "path": e["path"],
                "status": e["status"],
                "at": round(e["at"], 3),
                "corr": e["headers"].get("x-correlation-id"),
                "key": body.get("batchName")
                or body.get("partnerName")
                or body.get("name")
                or body.get("batchRunId"),
            }
            out.write(json.dumps(row) + "\n")


def _count_in_logs(log_dir: Path, needle: str) -> int:
    total = 0
    for path in log_dir.glob("*.log"):
        with open(path, "rb") as fh:
            total += sum(1 for line in fh if needle.encode() in line)
    return total


async def _forget_redis(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()
