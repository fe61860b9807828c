"""The benchmark's own logic: process layouts, the scaling and observability tables, the OTLP
sink, finding a server's process by its port, and the command mix: the limit's hand-written
calls against flowgate's own, on the simulators (no benchmark is run)."""

from __future__ import annotations

import gzip
import math
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from bench import report, scaling
from bench.harness import OBSERVED, Run, layout
from bench.limit import Limit
from bench.otlp import OtlpSink
from bench.procs import listener_pid
from bench.sims import SIM_PORT, Sims, build
from bench.vendors import PLANS
from bench.workload import (
    MIX,
    PRODUCTLIVE_RATE_LIMIT,
    PROFILES,
    VENDOR,
    VENDORS,
    Profile,
    commands,
    ideal,
    poll_delay,
)
from contracts import COMMAND_TYPES
from workers.app import make_resources
from workers.commands import COMMANDS
from workers.demo import SAMPLE_COMMANDS
from workers.registry import Registry
from workers.settings import Settings
from workers.simulators import LedgerEntry, SimulatorConfig, Simulators, serve
from workers.vendors.productlive import ProductLiveConnection


def _run(
    name: str = "flowgate",
    *,
    round_: int = 0,
    done: int = 1000,
    window: float = 10.0,
    worker: float = 2.0,
    poller: float = 1.0,
    broker: float = 0.5,
    store: float = 0.25,
    description: str = "1 worker + 1 poller",
) -> Run:
    run = Run(name, "fast", done, description, done=done, window=window, round=round_)
    run.cpu_roles = {"worker": worker, "poller": poller}
    run.cpu = worker + poller
    run.broker_cpu, run.redis_cpu = broker, store
    return run


def test_flowgate_layout_defaults_to_processes_minus_one_workers_and_one_poller() -> None:
    specs, description = layout("flowgate", 3, 64)
    assert [role for role, _ in specs] == ["worker", "worker", "poller"]
    assert description == "2 workers + 1 poller"
    assert layout(OBSERVED, 2, 64)[1] == "1 worker + 1 poller"


def test_flowgate_layout_given_explicitly() -> None:
    specs, description = layout("flowgate", 2, 64, (4, 2))
    assert [role for role, _ in specs] == ["worker"] * 4 + ["poller"] * 2
    assert description == "4 workers + 2 pollers"
    assert specs[0][1][-1] == "worker" and specs[-1][1][-1] == "poller"


def test_flowgate_layout_without_a_poller_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 worker and 1 poller"):
        layout("flowgate", 2, 64, (2, 0))


def test_scaling_total_counts_every_process_rabbitmq_and_redis_per_1000() -> None:
    # (2 + 1 + 0.5 + 0.25) CPU s over 500 commands
    assert scaling.total(_run(done=500)) == pytest.approx(7.5)


def test_scaling_ratio_is_the_median_of_per_round_ratios_to_the_base_layout() -> None:
    runs = [
        ((1, 1), _run(round_=0, worker=2.0)),  # total 3.75
        ((1, 1), _run(round_=1, worker=4.0)),  # total 5.75
        ((1, 1), _run(round_=2, worker=2.0)),
        # Same round as its base, so a slow round moves both: ratios 2.0, 1.0, 1.2
        ((2, 1), _run(round_=0, worker=5.75, description="2 workers + 1 poller")),
        ((2, 1), _run(round_=1, worker=4.0, description="2 workers + 1 poller")),
        ((2, 1), _run(round_=2, worker=2.75, description="2 workers + 1 poller")),
    ]
    base, two = scaling.rows(runs)
    assert base.layout == (1, 1) and base.ratios == [1.0, 1.0, 1.0]
    assert two.ratios == pytest.approx([2.0, 1.0, 1.2])
    assert two.ratio == pytest.approx(1.2)
    assert two.workers == pytest.approx(4.0)  # median over rounds, per 1,000 commands
    assert two.total == pytest.approx(5.75)
    assert (two.done, two.n, two.description) == (3000, 3000, "2 workers + 1 poller")


def test_scaling_rows_follow_the_layout_order_and_skip_empty_rounds() -> None:
    runs = [
        ((2, 2), _run(round_=0)),
        ((1, 1), _run(round_=0, done=0)),  # nothing done: no ratio for round 0
        ((1, 1), _run(round_=1)),
        ((2, 2), _run(round_=1, worker=5.75)),
    ]
    rows = scaling.rows(runs)
    assert [row.layout for row in rows] == [(1, 1), (2, 2)]
    assert rows[1].ratios == pytest.approx([2.0])


def test_scaling_table_without_the_base_layout_says_so() -> None:
    (row,) = scaling.rows([((2, 1), _run())])
    assert math.isnan(row.ratio)
    assert "| nan |" in scaling.table([((2, 1), _run())])


def test_scaling_table_shows_every_round_ratio_when_repeated() -> None:
    runs = [((1, 1), _run(round_=k)) for k in (0, 1)]
    runs += [((4, 1), _run(round_=0, worker=5.75)), ((4, 1), _run(round_=1, worker=2.0))]
    for _, run in runs:
        run.calls = 2500
    text = scaling.table(runs)
    assert "median of 2 rounds" in text
    assert "| 1.50 (2.00, 1.00) |" in text
    assert (
        "| 1 worker + 1 poller | 2000/2000 | 100.0 | 2.50 | 2.00 | 1.00 | 0.50 | 0.25 | 3.75 |"
        in text
    )


def test_results_table_has_a_redis_column() -> None:
    head, rule, row = report.results_table([_run()]).splitlines()
    assert "| RabbitMQ CPU s/1k | Redis CPU s/1k |" in head
    assert rule.count("---") == head.count("|") - 1
    assert "| 0.5 | 0.2 |" in row  # 0.5 and 0.25 s per 1,000 commands


def test_observed_table_puts_flowgate_observed_beside_flowgate() -> None:
    on = _run(OBSERVED, window=20.0, worker=3.0, poller=1.5)
    on.scrapes, on.trace_exports, on.trace_bytes, on.trace_spans = 40, 12, 2048, 9000
    text = report.observed_table([_run(), on, _run("limit")])
    assert f"| profile | measure | flowgate | {OBSERVED} | observed ÷ flowgate |" in text
    assert "| fast | cmd/s | 100.0 | 50.0 | 0.50 |" in text
    assert "| fast | CPU s/1k cmd, every process | 3.00 | 4.50 | 1.50 |" in text
    assert "| fast | ... worker(s) | 2.00 | 3.00 | 1.50 |" in text
    assert "40 (0) in 20 s; 12 exports, 2 KiB, 9000 spans (9.0 a command)" in text


def test_observed_table_is_empty_without_both() -> None:
    assert report.observed_table([_run(), _run("limit")]) == ""


def test_observed_table_ratios_are_per_round_medians() -> None:
    runs = [_run(round_=k) for k in (0, 1, 2)]
    runs += [_run(OBSERVED, round_=k, window=w) for k, w in ((0, 10.0), (1, 20.0), (2, 12.5))]
    assert "| fast | cmd/s | 100.0 | 80.0 | 0.80 (1.00, 0.50, 0.80) |" in report.observed_table(
        runs
    )


def test_baseline_table_is_this_checkout_over_the_baseline() -> None:
    before = "flowgate@0123456789ab"
    runs = [_run(before, worker=3.0), _run(window=8.0), _run("limit")]
    text = report.baseline_table(runs, before)
    assert f"| profile | measure | {before} | flowgate | flowgate ÷ {before} |" in text
    assert "| fast | cmd/s | 100.0 | 125.0 | 1.25 |" in text
    assert "| fast | ... worker(s) | 3.00 | 2.00 | 0.67 |" in text
    assert report.baseline_table([_run()], before) == ""


def test_a_baseline_runs_flowgate_from_its_worktree() -> None:
    from bench import harness

    name = "flowgate@0123456789ab"
    specs, description = layout(name, 2, 64)
    assert [argv[-1] for _, argv in specs] == ["worker", "poller"]
    assert description == "1 worker + 1 poller"
    assert name.startswith(harness.BASELINE_PREFIX)


def _export(spans: int) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(name="s")] * spans)])]
    )
    body: bytes = request.SerializeToString()
    return body


async def test_otlp_sink_answers_and_counts_trace_exports() -> None:
    sink = OtlpSink()
    await sink.start()
    bodies = [_export(3), gzip.compress(_export(4))]
    try:
        async with httpx.AsyncClient() as http:
            # one kept-alive connection
            plain = await http.post(sink.endpoint, content=bodies[0])
            zipped = await http.post(
                sink.endpoint, content=bodies[1], headers={"Content-Encoding": "gzip"}
            )
            assert plain.status_code == zipped.status_code == 200
            wrong = await http.get(sink.endpoint)
            assert wrong.status_code == 400
    finally:
        await sink.stop()
    assert (sink.requests, sink.rejected) == (2, 1)
    assert sink.bytes == sum(map(len, bodies))
    assert sink.spans() == 7


def test_listener_pid_finds_the_process_listening_on_a_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert listener_pid(server.getsockname()[1]) == os.getpid()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening
        assert listener_pid(unused.getsockname()[1]) is None


# --- the command mix ------------------------------------------------------------------------


def test_every_command_of_the_mix_has_a_plan_on_its_vendor_a_sample_and_run_lengths() -> None:
    assert "cancel-run" not in MIX  # it names a run in flight: BENCHMARKS.md says why not
    assert [t for t, _ in commands(len(MIX))] == list(MIX)
    for command_type in MIX:
        registered = COMMANDS[command_type].vendor
        assert registered is not None
        assert PLANS[command_type].vendor == VENDOR[command_type] == registered.name
        assert command_type in SAMPLE_COMMANDS
        for profile in PROFILES.values():
            seconds, calls, polls = ideal(command_type, profile)
            followed = COMMAND_TYPES[command_type].followed
            assert (polls > 0) == followed and calls > polls
            assert seconds >= profile.latency * calls
            if followed:  # seen ended by a status call after the run's length
                assert seconds > profile.run_seconds[VENDOR[command_type]]


def test_the_new_types_ideal_follows_the_poll_schedule() -> None:
    # fast: runs of 1.5 s seen by the 2nd poll (t = 0.05 + 1 + 0.05 + 1.2 + 0.05 = 2.35 s)
    for command_type in ("run-job", "generate-report", "rerun-batch"):
        assert ideal(command_type, PROFILES["fast"]) == pytest.approx((2.35, 3, 2))
    # slow: a 4 s Product-Live job is seen by the 3rd poll (3 x 0.5 s + 1 + 1.2 + 1.44 + 0.5)
    assert ideal("run-job", PROFILES["slow"]) == pytest.approx((5.64, 4, 3))
    assert ideal("generate-report", PROFILES["slow"]) == ideal("trigger-batch", PROFILES["slow"])


def test_one_simulator_per_vendor_and_flowgate_told_the_same_account_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sims = Sims(PROFILES["fast"], Path("/nonexistent"))
    assert list(sims.urls) == list(VENDORS) and set(VENDORS) == set(VENDOR.values())
    ports = [int(url.rsplit(":", 1)[1]) for url in sims.urls.values()]
    assert ports == list(range(SIM_PORT, SIM_PORT + len(VENDORS)))
    assert [p.argv[p.argv.index("--run-seconds") + 1] for p in sims.procs] == [
        str(PROFILES["fast"].run_seconds.get(v, 0.0)) for v in VENDORS
    ]
    simulated = build("productlive", 0.05, 1.5).config.productlive
    assert (simulated.rate_limit, simulated.latency, simulated.run_seconds) == (
        PRODUCTLIVE_RATE_LIMIT,
        0.05,
        1.5,
    )
    for name, value in sims.env().items():
        monkeypatch.setenv(name, value)
    connection = Settings().connections("productlive")["default"]
    assert isinstance(connection, ProductLiveConnection)
    assert connection.base_url == sims.urls["productlive"]
    limit = connection.rate_limit
    assert (limit.requests, limit.window) == (PRODUCTLIVE_RATE_LIMIT, simulated.rate_window)


class _Clock:
    """The simulators' clock; the poll schedule's waits move it on at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _simulators(clock: _Clock) -> Simulators:
    config = SimulatorConfig()
    for vendor, seconds in PROFILES["fast"].run_seconds.items():
        getattr(config, vendor).run_seconds = seconds
    return Simulators(config, clock=clock)


async def _flowgate(command_type: str, command_id: str, base_url: str, clock: _Clock) -> Any:
    """flowgate's handler for the sample command, polled on the same schedule: (state, polls)."""
    settings = Settings(idempotency={"store": "memory"})
    for vendor in COMMANDS.vendors:
        for connection in settings.connections(vendor.name).values():
            connection.base_url = base_url
    resources = make_resources(settings)
    registry = Registry(settings, resources=resources)
    try:
        bound = registry.handler(command_type, "default")
        command = COMMAND_TYPES[command_type].model_validate(SAMPLE_COMMANDS[command_type])
        triggered = await bound.trigger(command, command_id=command_id)
        report, polls = triggered.report, 0
        cursor: dict[str, Any] = {}
        while report is None or report.state == "running":
            await clock.sleep(poll_delay(polls))
            polls += 1
            report = await bound.status(triggered.vendor_ref, cursor=cursor)
            cursor = dict(report.cursor)
        return report.state, polls
    finally:
        await registry.aclose()
        await resources.aclose()


async def _limit(
    command_type: str, command_id: str, base_url: str, clock: _Clock, monkeypatch: Any
) -> Any:
    for vendor in VENDORS:
        monkeypatch.setenv(f"FLOWGATE_{vendor.upper()}__DEFAULT__BASE_URL", base_url)
    limit = Limit("aiohttp")
    limit.sleep = clock.sleep
    try:
        return await limit.follow(command_type, SAMPLE_COMMANDS[command_type], command_id)
    finally:
        for client in limit.http.values():
            await client.aclose()


def _wire(entries: list[LedgerEntry]) -> list[tuple[Any, ...]]:
    """The requests as sent. Values that differ from run to run by design are masked:
    Robusta's spid (a uuid), PBSM's batchRunId of a new run (the wall clock's milliseconds)
    and its bearer token; a wrong one would not have reached the run's end."""
    wire = []
    for entry in entries:
        path, body = entry.path, entry.json
        if entry.route == "robusta.status":
            path = path.rsplit("/", 1)[0] + "/<spid>"
        if entry.route == "pbsm.status" and isinstance(body, dict):
            body = {**body, "batchRunId": "<run>"}
        headers = dict(entry.headers, host="<simulator>")  # each side has its own
        if headers.get("authorization", "").startswith("Bearer "):
            headers["authorization"] = "Bearer <token>"  # a token of each side's own
        wire.append((entry.route, entry.method, path, entry.query, body, headers, entry.status))
    return wire


@pytest.mark.parametrize("command_type", MIX)
async def test_the_limit_sends_exactly_the_requests_flowgate_sends(
    command_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    command_id = "5f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10"  # TMF622 sends it as X-Correlation-ID
    sent, ended = [], []
    for side in ("flowgate", "limit"):
        clock = _Clock()
        sims = _simulators(clock)
        async with serve(sims) as running:
            if side == "flowgate":
                ended.append(await _flowgate(command_type, command_id, running.base_url, clock))
            else:
                ended.append(
                    await _limit(command_type, command_id, running.base_url, clock, monkeypatch)
                )
            sent.append(_wire(sims.ledger.entries()))
    assert ended[0] == ended[1]
    assert sent[0] == sent[1]
    # and `ideal` counts those calls and polls: the simulators' rules at zero latency
    fast = PROFILES["fast"]
    _, calls, polls = ideal(command_type, Profile("zero", 0.0, fast.run_seconds))
    vendor_calls = [call for call in sent[1] if call[0] != "pbsm.token"]  # as the bench counts
    assert (len(vendor_calls), ended[1]) == (calls, ("succeeded", polls))


def test_targets_hold_cpu_per_command_rabbitmq_and_redis_included_to_the_limit() -> None:
    flowgate = _run(worker=2.0, poller=1.0, broker=0.5, store=0.5)  # 4.0 s per 1,000
    limit = _run("limit", worker=2.5, poller=0.0, broker=0.5, store=0.0)  # 3.0 s per 1,000
    [row] = [t for t in report.targets([flowgate, limit]) if "CPU per command" in t[0]]
    assert row == (
        "fast: CPU per command, RabbitMQ and Redis included, ≤ 1.3 x limit",
        "4.0 vs 3.0 s/1k: median 1.33 x",
        False,
    )
    cheaper = _run(worker=1.5, poller=1.0, broker=0.5, store=0.5)
    assert [t[2] for t in report.targets([cheaper, limit]) if "CPU per command" in t[0]] == [True]
