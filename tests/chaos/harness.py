"""The chaos run: N commands of every type through real worker and poller processes on RabbitMQ,
while processes are SIGKILLed and restarted, RabbitMQ is restarted once, and the simulators
answer 503, 429 + Retry-After, too late for the client's timeout, and expire PBSM tokens early.

Everything is private to one run: a RabbitMQ vhost, a Redis key prefix, a simulator process on
its own port. With `--redis-failover` the store is a Redis of the run's own too (a primary,
a replica, three sentinels), whose primary is SIGKILLed now and then. At the end it drains,
reads the simulators' ledger and prints one line of counts; `ChaosResult.ok` is the verdict
(lost = 0, duplicate triggers on `fail` connections = 0, conflicting terminal events = 0, work
queues empty).

How a command is traced to its vendor trigger: TMF622 carries the command id as
`X-Correlation-ID`; the other vendors get a business name derived from the command id
(`batch`, `partner_name`, `process_name` = `CHAOS-<command id>`), read back from the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from contracts import COMMAND_TYPES, encode_command
from tests import cluster
from tests.chaos.evidence import (
    Collector,
    count_triggers,
    dump_ledger,
    rate_peak,
    read_dead_letters,
    read_trails,
    tally,
    tally_unknowns,
)
from tests.chaos.model import (
    EVENTS_QUEUE,
    FAILED_STATUS,
    FAULT_ROUTES,
    HISTORY_CODE,
    MOVED,
    MOVING,
    VENDOR_OF,
    ChaosConfig,
    ChaosResult,
    Planned,
    history_run,
    plan,
)
from tests.chaos.procs import (
    NODE,
    Procs,
    count_in_logs,
    forget_redis,
    free_port,
    is_work_queue,
    process_env,
    queue_depths,
    rabbitmqctl,
    start_simulators,
    wait_healthy,
)
from tests.rabbit_node import kill_node, node_pid
from tests.sentinel import Replicated
from workers.broker import AmqpBroker, Binding, OutgoingMessage, Queue, Topology
from workers.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, build_topology

__all__ = ["ChaosConfig", "ChaosResult", "run_chaos"]


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
            body, content_type = encode_command(
                command.type, command.data, command_id=command.id, connection=command.connection
            )
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
    rename: tuple[float, dict[str, str]] | None,
    say: Callable[[str], None],
) -> None:
    """SIGKILL a random process at random intervals, start it again; restart RabbitMQ once;
    rename a connection once (every process restarted with the new settings, one by one)."""
    started = time.monotonic()

    def after() -> float:
        return rng.expovariate(1 / cfg.kill_every) if cfg.kill_every > 0 else math.inf

    next_kill = started + after()
    while not stop.is_set():
        await asyncio.sleep(0.1)
        now = time.monotonic()
        for index in procs.died():
            say(f"process {procs.slots[index][0]}-{index} died on its own: restarting")
            procs.start(index)
        if restart_at is not None and now - started >= restart_at:
            restart_at = None
            say("rabbitmq: stop_app")
            await asyncio.to_thread(rabbitmqctl, "stop_app")
            try:
                await asyncio.sleep(2)
            finally:
                await asyncio.to_thread(rabbitmqctl, "start_app")
                await asyncio.to_thread(rabbitmqctl, "await_startup")
            result.broker_restarts += 1
            say("rabbitmq: started again")
            continue
        if rename is not None and now - started >= rename[0]:
            procs.env = rename[1]
            rename = None
            say(f"connections: {MOVING!r} renamed {MOVED!r}; restarting every process")
            for index in range(len(procs.slots)):
                procs.kill(index)
                procs.start(index)
                await asyncio.sleep(rng.uniform(0.2, 1.0))
            result.renames += 1
            continue
        if now >= next_kill:
            index = rng.randrange(len(procs.slots))
            procs.kill(index)
            result.kills += 1
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            procs.start(index)
            next_kill = time.monotonic() + after()


NODE_TARGETS = ("connected", "command-leader", "poll-leader")


def _live_node() -> str:
    """A running node of the cluster, for rabbitmqctl."""
    for n in range(1, cluster.NODES + 1):
        if node_pid(cluster.node(n)) is not None:
            return cluster.node(n).name
    raise RuntimeError("no node of the cluster is running")


def _node_to_kill(rule: str, vhost: str, rng: random.Random) -> int:
    """The cluster node (1..3) `rule` names now: the node a flowgate process is connected to,
    the leader of a random command queue, or the leader of the poll queue."""
    ctl = ["rabbitmqctl", "-q", "-n", _live_node()]
    if rule == "connected":
        out = subprocess.run(
            [*ctl, "list_connections", "--no-table-headers", "pid", "vhost"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        # A connection's pid names its node: <flowgate-rabbit-2@localhost.123.456.0>.
        nodes = [line.split(".")[0].lstrip("<") for line in out.splitlines() if vhost in line]
    else:
        out = subprocess.run(
            [*ctl, "list_queues", "-p", vhost, "--no-table-headers", "name", "leader"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        rows = [line.split() for line in out.splitlines() if len(line.split()) == 2]
        wanted = "flowgate.poll" if rule == "poll-leader" else "flowgate.cmd."
        nodes = [leader for name, leader in rows if name.startswith(wanted)]
    for n in range(1, cluster.NODES + 1):
        if nodes and rng.choice(nodes) == cluster.node(n).name:
            return n
    return rng.randrange(1, cluster.NODES + 1)


async def _kill_nodes(
    cfg: ChaosConfig,
    rng: random.Random,
    vhost: str,
    result: ChaosResult,
    stop: asyncio.Event,
    say: Callable[[str], None],
) -> None:
    """kill -9 a node of the cluster now and then, by turns the one a process is on, the
    leader of a command queue and the leader of the poll queue; start it again a few seconds
    later. One node at a time: two of three keep every quorum queue available."""
    turn = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            # Uniform, not exponential: a short run still sees every kind of node killed.
            await asyncio.wait_for(stop.wait(), rng.uniform(0.5, 1.5) * cfg.node_kill_every)
        if stop.is_set():
            return
        rule = NODE_TARGETS[turn % len(NODE_TARGETS)]
        turn += 1
        n = await asyncio.to_thread(_node_to_kill, rule, vhost, rng)
        say(f"cluster: kill -9 rabbit-{n} ({rule})")
        await asyncio.to_thread(kill_node, cluster.node(n))
        result.node_kills[rule] = result.node_kills.get(rule, 0) + 1
        await asyncio.sleep(rng.uniform(2, 6))
        await asyncio.to_thread(cluster.start, n)
        say(f"cluster: rabbit-{n} started again")


async def _fail_over_redis(
    cfg: ChaosConfig,
    rng: random.Random,
    redis: Replicated,
    result: ChaosResult,
    stop: asyncio.Event,
    say: Callable[[str], None],
) -> None:
    """SIGKILL the Redis primary every `redis_failover_every` s or so (uniform, 0.5 to 1.5
    times it, counted from the end of the previous failover); a sentinel promotes the replica
    and the killed server comes back as its replica. A failover under way when the run stops
    is finished first: the drain needs a primary."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(0.5, 1.5) * cfg.redis_failover_every)
        if stop.is_set():
            return
        say("redis: SIGKILL the primary")
        failover = await asyncio.to_thread(redis.fail_over)
        result.redis_failovers.append((failover.to_promote, failover.to_replicate))
        say(
            f"redis: {failover.promoted} promoted {failover.to_promote:.1f} s after the kill, "
            f"{failover.killed} its synced replica after {failover.to_replicate:.1f} s"
        )


def _proc_figures(pid: int) -> tuple[float, int] | None:
    """A process's resident memory (MB) and open file descriptors; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return None
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kb / 1024, fds


async def _sample(
    cfg: ChaosConfig, procs: Procs, vhost: str, result: ChaosResult, stop: asyncio.Event
) -> None:
    """Every `cfg.sample_every` s: each process's RSS and descriptors, Redis's used memory and
    every queue's depth, as one row of `result.samples`."""
    import redis.asyncio as redis

    assert cfg.sample_every is not None
    began = time.monotonic()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        while not stop.is_set():
            row: dict[str, float] = {"t": time.monotonic() - began}
            for index, (role, proc) in enumerate(procs.slots):
                figures = None if proc is None else _proc_figures(proc.pid)
                if figures is not None:
                    row[f"rss_mb.{role}-{index}"], row[f"fds.{role}-{index}"] = figures
            memory = await client.info("memory")
            row["redis_used_mb"] = int(memory["used_memory"]) / 2**20
            with contextlib.suppress(subprocess.SubprocessError):
                depths = await asyncio.to_thread(queue_depths, vhost)
                row["queued"] = sum(n for q, n in depths.items() if is_work_queue(q))
            result.samples.append(row)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), cfg.sample_every)
    finally:
        await client.aclose()


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
    if cfg.cluster:
        await asyncio.to_thread(cluster.up)
        NODE[:] = [cluster.node(1).name]
        amqp_url = cluster.cluster_url(vhost=vhost)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    commands = plan(cfg, rng)
    published: set[str] = set()
    redis = Replicated() if cfg.redis_failover else None
    redis_url = redis.url if redis is not None else None

    await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost)
    await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    history = {history_run(c.id): HISTORY_CODE[c.type] for c in commands if c.type in HISTORY_CODE}
    sim = start_simulators(cfg, port, log_dir, history)
    procs = Procs(
        cfg, process_env(cfg, amqp_url, prefix, base_url, ("default", MOVING), redis_url), log_dir
    )
    renamed = process_env(cfg, amqp_url, prefix, base_url, ("default", MOVED), redis_url)
    broker = AmqpBroker(amqp_url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        if redis is not None:
            await asyncio.to_thread(redis.start)
            result.redis_replicas = cfg.redis_replicas
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            await wait_healthy(http, sim)
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
            restart_at = (
                rng.uniform(0.3, 0.7) * publish_span
                if cfg.broker_restart and not cfg.cluster
                else None
            )
            rename = (rng.uniform(0.2, 0.8) * publish_span, renamed) if cfg.rename else None
            tasks = [
                asyncio.create_task(_chaos(cfg, rng, procs, result, stop, restart_at, rename, say)),
                asyncio.create_task(_expire_tokens(cfg, rng, http, result, stop)),
            ]
            if cfg.cluster and cfg.node_kill_every > 0:
                tasks.append(asyncio.create_task(_kill_nodes(cfg, rng, vhost, result, stop, say)))
            if redis is not None:
                failovers = _fail_over_redis(cfg, rng, redis, result, stop, say)
                tasks.append(asyncio.create_task(failovers))
            if cfg.sample_every is not None:
                tasks.append(asyncio.create_task(_sample(cfg, procs, vhost, result, stop)))
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
                        f"restarts={result.broker_restarts} "
                        f"redis_failovers={len(result.redis_failovers)} "
                        f"events={len(collector.seen_ids)}"
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
                left = {q: n for q, n in depths.items() if is_work_queue(q) and n}
                if not left or time.monotonic() >= drained:
                    break
                await asyncio.sleep(1)
            # Late terminal events of commands still finishing count too.
            await asyncio.sleep(2)
            result.queues_left = left
            result.dead_letters = depths.get("flowgate.dead-letters", 0)
            await read_dead_letters(broker, result)
            triggers = await count_triggers(http, commands)
            await dump_ledger(http, log_dir / "ledger.jsonl")
            result.rate_limit = cfg.productlive_limit
            result.rate_peak = await rate_peak(http, cfg.productlive_window)
        tally(cfg, result, commands, collector, triggers)
        if redis is not None:
            tally_unknowns(result, read_trails(log_dir), collector, triggers)
        result.handler_errors = count_in_logs(log_dir, "handler failed")
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
            await asyncio.to_thread(rabbitmqctl, "delete_vhost", vhost)
        NODE.clear()
        if redis is not None:
            redis.stop()  # the run's keys go with it
        else:
            with contextlib.suppress(Exception):
                await forget_redis(prefix)
        result.elapsed = time.monotonic() - began
    return result


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
            key = command.key if vendor == "tmf622" else command.name
            body = {"vendor": vendor, "key": key, "final_status": FAILED_STATUS[vendor]}
            (await http.post("/_sim/outcomes", json=body)).raise_for_status()
