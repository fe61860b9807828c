"""`python -m bench.limiter`: Product-Live's account limit, shared by every process, measured.

Three `flowgate worker` processes and one `flowgate poller` (real processes, RabbitMQ, the
limiter in Redis) against the simulator, which enforces the same limit (429 + Retry-After).
`--commands` `invite-partners` commands are published at once; other command types
(`add-paylink`, `trigger-batch`) are published every few seconds meanwhile. The simulator's
ledger is the judge: every request it received, with its arrival time.

Printed (Markdown, for BENCHMARKS.md): requests per sliding window (the maximum over every
window that starts at a request), the count per minute, 429s, the total time against the
theoretical minimum for the requests made, every command's terminal event, dead letters, and
how long the other command types took.

    python -m bench.limiter                       # 200 commands, 50 per 60 s (about 9 min)
    python -m bench.limiter --limit 10 --window 6 # the same proportions, scaled down 10x
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.redis_keys import delete_keys_under
from contracts import encode_command
from workers.broker import AmqpBroker, Binding, Delivery, OutgoingMessage, Queue, Topology
from workers.commands import COMMANDS
from workers.topology import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    build_topology,
)

__all__ = ["main"]

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"succeeded", "failed", "cancelled"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def serve_simulator(port: int, limit: int, window: float) -> None:
    """The simulators, Product-Live enforcing `limit` requests per `window` seconds."""
    from workers.simulators import SimulatorConfig, Simulators, run_forever

    config = SimulatorConfig()
    config.productlive.rate_limit = limit
    config.productlive.rate_window = window
    run_forever(Simulators(config), port=port)


def _env(args: argparse.Namespace, amqp_url: str, prefix: str, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        FLOWGATE_AMQP_URL=amqp_url,
        FLOWGATE_IDEMPOTENCY__KEY_PREFIX=prefix,
        FLOWGATE_SHUTDOWN_GRACE="5",
    )
    for vendor in COMMANDS.vendors:
        env[f"FLOWGATE_{vendor.name.upper()}__DEFAULT__BASE_URL"] = base_url
    env["FLOWGATE_PRODUCTLIVE__DEFAULT__RATE_LIMIT__REQUESTS"] = str(args.limit)
    env["FLOWGATE_PRODUCTLIVE__DEFAULT__RATE_LIMIT__WINDOW"] = str(args.window)
    return env


def max_in_window(times: list[float], window: float) -> int:
    """The most requests in any window of `window` seconds (each window starting at one)."""
    best, j = 0, 0
    for i in range(len(times)):
        while j < len(times) and times[j] - times[i] < window:
            j += 1
        best = max(best, j - i)
    return best


def per_window(times: list[float], window: float, start: float) -> list[int]:
    counts: list[int] = []
    t = start
    end = times[-1] if times else start
    while t <= end:
        counts.append(sum(1 for x in times if t <= x < t + window))
        t += window
    return counts


class Collector:
    def __init__(self) -> None:
        self.terminal: dict[str, tuple[str, float]] = {}
        self.events = 0
        self.changed = asyncio.Event()

    async def on_delivery(self, delivery: Delivery) -> None:
        event = json.loads(delivery.body)
        self.events += 1
        kind = event["type"].rsplit(".", 1)[-1]
        command_id = event["data"]["command_id"]
        if kind in TERMINAL and command_id not in self.terminal:
            error = (event["data"].get("error") or {}).get("kind")
            self.terminal[command_id] = (f"{kind}:{error}" if error else kind, time.time())
            self.changed.set()
        await delivery.ack()


async def run(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    vhost, prefix = f"flowgate-limiter-{run_id}", f"flowgate-limiter:{run_id}:"
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    logs = Path(tempfile.mkdtemp(prefix="flowgate-limiter-"))
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        with open(logs / f"{name}.log", "ab") as log:
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=ROOT))

    broker = AmqpBroker(amqp_url)
    try:
        sim_argv = [PY, "-m", "bench.limiter", "--serve-sim", str(port)]
        start([*sim_argv, "--limit", str(args.limit), "--window", str(args.window)], "sim")
        env = _env(args, amqp_url, prefix, base_url)
        for i in range(args.workers):
            start([PY, "-m", "workers.cli", "worker"], f"worker-{i}", env)
        for i in range(args.pollers):
            start([PY, "-m", "workers.cli", "poller"], f"poller-{i}", env)
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/_sim/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            await broker.connect()
            await broker.declare(build_topology(COMMANDS))
            watch = f"bench.limiter.{run_id}"
            await broker.declare(
                Topology(
                    queues=(Queue(watch, durable=False),),
                    bindings=(Binding(EVENTS_EXCHANGE, watch, "#"),),
                )
            )
            collector = Collector()
            await broker.consume(watch, collector.on_delivery, prefetch=1000)
            await asyncio.sleep(3)  # every process consuming
            invites: list[str] = []
            others: dict[str, float] = {}

            async def publish(command_type: str, data: dict[str, Any]) -> str:
                command_id = str(uuid.uuid4())
                body, content_type = encode_command(command_type, data, command_id=command_id)
                message = OutgoingMessage(body=body, content_type=content_type)
                await broker.publish(COMMANDS_EXCHANGE, command_type, message)
                return command_id

            started = time.time()
            for i in range(args.commands):
                operations = [
                    {
                        "key": f"{i}-{k}",
                        "to_account_name": f"Supplier {i}-{k}",
                        "to_user_email": f"contact-{i}-{k}@supplier.example",
                    }
                    for k in range(2)
                ]
                invites.append(await publish("invite-partners", {"operations": operations}))
            print(f"published {args.commands} invite-partners in {time.time() - started:.1f} s")

            async def other_types() -> None:
                n = 0
                while len([c for c in invites if c in collector.terminal]) < len(invites):
                    n += 1
                    if n % 2:
                        data = {"business_id": "PR", "order_id": f"O{n}", "payment_link": "l"}
                        command_id = await publish("add-paylink", data)
                    else:
                        command_id = await publish("trigger-batch", {"batch": f"B{n}"})
                    others[command_id] = time.time()
                    await asyncio.sleep(args.other_every)

            feeder = asyncio.create_task(other_types())
            last = 0.0
            deadline = started + args.timeout
            while time.time() < deadline:
                done = sum(1 for c in invites if c in collector.terminal)
                if done == len(invites):
                    break
                if time.time() - last > 30:
                    last = time.time()
                    print(f"t={last - started:.0f}s terminal={done}/{len(invites)}", flush=True)
                await asyncio.sleep(0.5)
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            await asyncio.sleep(2)
            finished = max((collector.terminal[c][1] for c in invites if c in collector.terminal),
                           default=time.time())  # fmt: skip
            ledger = (await http.get("/_sim/ledger")).json()
        dead = await broker.queue_length(DEAD_LETTER_QUEUE)
        report(args, started, finished, invites, others, collector, ledger, dead)
        ok = (
            all(c in collector.terminal for c in invites)
            and dead == 0
            and max_in_window(_times(ledger), args.window) <= args.limit
        )
        return 0 if ok else 1
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(Exception):
            await broker.close()
        with contextlib.suppress(Exception):
            _rabbitmqctl("delete_vhost", vhost)
        with contextlib.suppress(Exception):
            await delete_keys_under("redis://127.0.0.1:6379/0", prefix)
        print(f"logs: {logs}")


def _times(ledger: list[dict[str, Any]]) -> list[float]:
    return sorted(float(e["at"]) for e in ledger if str(e["route"]).startswith("productlive."))


def report(
    args: argparse.Namespace,
    started: float,
    finished: float,
    invites: list[str],
    others: dict[str, float],
    collector: Collector,
    ledger: list[dict[str, Any]],
    dead: int,
) -> None:
    times = _times(ledger)
    routes: dict[str, int] = {}
    for entry in ledger:
        if str(entry["route"]).startswith("productlive."):
            routes[entry["route"]] = routes.get(entry["route"], 0) + 1
    statuses = [int(e["status"]) for e in ledger if str(e["route"]).startswith("productlive.")]
    total = len(times)
    # Request k (0-based) cannot go before floor(k / limit) windows have passed.
    minimum = ((total - 1) // args.limit) * args.window if total else 0.0
    elapsed = finished - started
    kinds: dict[str, int] = {}
    for command_id in invites:
        kind = collector.terminal.get(command_id, ("missing", 0.0))[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    waits = [
        collector.terminal[c][1] - sent for c, sent in others.items() if c in collector.terminal
    ]
    print()
    print("| setting | value |\n|---|---|")
    print(f"| commands | {len(invites)} `invite-partners` (2 operations each) |")
    print(f"| processes | {args.workers} workers, {args.pollers} poller |")
    print(f"| limit | {args.limit} requests per {args.window:g} s (flowgate and simulator) |")
    print()
    print("| figure | value |\n|---|---|")
    print(f"| Product-Live requests (ledger) | {total}: {routes} |")
    print(f"| most in any {args.window:g}-s window | {max_in_window(times, args.window)} |")
    print(
        f"| per {args.window:g}-s window from the first publish | "
        f"{', '.join(str(c) for c in per_window(times, args.window, started))} |"
    )
    print(f"| 429 answers | {statuses.count(429)} |")
    print(f"| terminal events | {kinds} |")
    print(f"| dead letters | {dead} |")
    print(
        f"| time to the last terminal event | {elapsed:.1f} s; theoretical minimum for "
        f"{total} requests {minimum:.0f} s (+{elapsed - minimum:.1f} s) |"
    )
    if waits:
        print(
            f"| other command types meanwhile | {len(waits)} answered, median "
            f"{statistics.median(waits):.2f} s, max {max(waits):.2f} s |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limiter", description=__doc__)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--pollers", type=int, default=1)
    parser.add_argument("--limit", type=int, default=50, help="requests per window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds")
    parser.add_argument("--other-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds")
    parser.add_argument("--serve-sim", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sim is not None:
        serve_simulator(args.serve_sim, args.limit, args.window)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
