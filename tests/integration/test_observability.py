"""Operating flowgate on real RabbitMQ, Redis and the simulators: `GET /metrics` on the health
port, scraped while four commands run (run-partner, start-process, add-paylink, trigger-batch),
shows every metric of README "Operating flowgate" move.

What moves each: a first Run Partner answered 503 (a retry), a Redis outage at the start (a
relay in front of the real Redis that refuses connections until the test lets them through:
store errors, parked commands), RabbitMQ closing the process's connection (a reconnect), PBSM's
token, the runs held in the poller (the gauge goes up, then back to 0), and beside the four a
`run-job` on a Product-Live connection allowed one request a second (a rate-limit wait) and an
invalid command (a dead letter)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.conftest import System, fast_settings, running_system
from tests.waiting import poll_until
from workers.demo import SAMPLE_COMMANDS
from workers.health import HealthServer
from workers.metrics import Metrics, installed
from workers.simulators import Fault, SimulatorConfig, Simulators, serve

REDIS = ("127.0.0.1", 6379)
FOUR = {
    "run-partner": {"partner_name": "P", "direction": "INBOUND"},
    "start-process": {"process_name": "P"},
    "add-paylink": {"business_id": "PR", "order_id": "O", "payment_link": "https://pay/1"},
    "trigger-batch": {"batch": "B"},
}


class RedisGate:
    """A TCP relay to the real Redis that refuses every connection while shut: the system's
    store goes down and comes back, and no other test's Redis is touched."""

    def __init__(self) -> None:
        self.open = False
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[RedisGate]:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._relays):
                task.cancel()
            await asyncio.gather(*self._relays, return_exceptions=True)
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        upstream_reader, upstream_writer = await asyncio.open_connection(*REDIS)
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._relays.discard(task)
            for w in (writer, upstream_writer):
                w.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()


def _close_connections(vhost: str) -> int:
    """Have RabbitMQ close every connection to `vhost`: the system's (one per process)."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "vhost"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    pids = [line.split("\t")[0] for line in out.splitlines() if line.endswith(f"\t{vhost}")]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: a dropped connection"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return len(pids)


class Scrape:
    """One `GET /metrics`, read with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels`."""
        wanted = labels.items()
        return sum(v for n, ls, v in self.samples if n == name and wanted <= ls.items())


async def test_metrics_of_a_run_of_four_commands_all_move(amqp_url: str) -> None:
    config = SimulatorConfig()
    for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
        vendor.run_seconds = 1.5
    sims = Simulators(config)
    vhost = urlsplit(amqp_url).path.lstrip("/")
    with installed(Metrics()) as metrics:
        async with serve(sims) as running, RedisGate().serving() as gate:
            settings = fast_settings(
                amqp_url,
                running.base_url,
                store="redis",
                connections={
                    "productlive": {"default": {"rate_limit": {"requests": 1, "window": 1.0}}}
                },
            )
            settings.idempotency.redis_url = SecretStr(gate.url)
            async with running_system(settings, sims) as system:
                health = HealthServer(
                    host="127.0.0.1", port=0, ready=system.app.ready, metrics=metrics.render
                )
                await health.start()
                try:
                    async with httpx.AsyncClient() as http:

                        async def scrape() -> Scrape:
                            url = f"http://127.0.0.1:{health.port}/metrics"
                            answer = await http.get(url)
                            assert answer.status_code == 200
                            return Scrape(answer.text)

                        seen = await _run(system, sims, gate, vhost, scrape)
                finally:
                    await health.stop()
    _check(seen)


async def _run(
    system: System,
    sims: Simulators,
    gate: RedisGate,
    vhost: str,
    probe: Callable[[], Awaitable[Scrape]],
) -> dict[str, float]:
    """Drive the run; what the scrapes saw, by what each check is about."""
    assert await asyncio.to_thread(_close_connections, vhost) >= 1
    await poll_until(probe, lambda s: s.value("flowgate_amqp_reconnects_total") >= 1, timeout=30)
    sims.inject(Fault(route="informatica.run", status=503, times=1))
    ids = {t: await system.publish(t, data) for t, data in FOUR.items()}
    ids["run-job"] = await system.publish("run-job", SAMPLE_COMMANDS["run-job"])
    invalid = await system.publish("trigger-batch", {"no_batch": True})
    # Redis is down for the system: every command parks until the gate opens.
    await poll_until(
        probe,
        lambda s: s.value("flowgate_retries_total", reason="store_unavailable") >= len(ids),
        timeout=20,
    )
    gate.open = True
    held = await poll_until(
        probe, lambda s: s.value("flowgate_runs_followed") > 0, timeout=20, interval=0.005
    )
    terminals = {t: await system.events.terminal(i, timeout=40) for t, i in ids.items()}
    await system.events.terminal(invalid, timeout=20)
    for command_type, terminal in terminals.items():
        assert terminal["type"] == f"flowgate.{command_type}.succeeded", terminal["data"]
    last = await poll_until(probe, lambda s: s.value("flowgate_runs_followed") == 0, timeout=20)
    seen = {
        "runs followed, while runs were held": held.value("flowgate_runs_followed"),
        "runs followed, at the end": 1 - last.value("flowgate_runs_followed"),
    }
    for command_type, outcome in (
        ("run-partner", "accepted"),
        ("start-process", "accepted"),
        ("trigger-batch", "accepted"),
        ("add-paylink", "succeeded"),
        ("run-partner", "retried"),
        ("add-paylink", "parked"),
    ):
        seen[f"commands {command_type} {outcome}"] = last.value(
            "flowgate_commands_total", command_type=command_type, outcome=outcome
        )
    seen["commands failed invalid"] = last.value(
        "flowgate_commands_total", outcome="failed", error_kind="invalid"
    )
    for kind in ("accepted", "progress", "succeeded"):
        seen[f"events {kind}"] = last.value("flowgate_events_total", kind=kind)
    for vendor in ("informatica", "robusta", "tmf622", "pbsm"):
        seen[f"vendor calls {vendor}"] = last.value("flowgate_vendor_calls_total", vendor=vendor)
        seen[f"vendor call seconds {vendor}"] = last.value(
            "flowgate_vendor_call_duration_seconds_count", vendor=vendor
        )
    seen["vendor calls answered 503"] = last.value(
        "flowgate_vendor_calls_total", vendor="informatica", operation="trigger", status="503"
    )
    seen["vendor status calls"] = last.value("flowgate_vendor_calls_total", operation="status")
    seen["retries http_503"] = last.value("flowgate_retries_total", reason="http_503")
    seen["retries store_unavailable"] = last.value(
        "flowgate_retries_total", reason="store_unavailable"
    )
    seen["dead letters invalid"] = last.value(
        "flowgate_dead_letters_total", kind="invalid", source="flowgate"
    )
    seen["poll lag"] = last.value("flowgate_poll_lag_seconds_count")
    seen["rate-limit waits"] = last.value(
        "flowgate_rate_limit_wait_seconds_count", vendor="productlive", reason="limit"
    )
    seen["rate-limit seconds"] = last.value("flowgate_rate_limit_wait_seconds_sum")
    seen["token refreshes"] = last.value(
        "flowgate_token_refreshes_total", vendor="pbsm", result="ok"
    )
    seen["amqp reconnects"] = last.value("flowgate_amqp_reconnects_total")
    seen["store errors"] = last.value("flowgate_store_errors_total")
    return seen


def _check(seen: dict[str, float]) -> None:
    still = sorted(what for what, value in seen.items() if not value > 0)
    assert not still, f"did not move: {still} (saw {seen})"
