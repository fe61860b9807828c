"""The metrics (`workers/metrics.py`): each test records into a registry of its own, and the
central places record what they should: the settler (how a command was settled, retries, dead
letters), the vendor HTTP layer (calls by vendor, operation and status, latency)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import ErrorInfo, ErrorKind
from tests.unit.test_mutants_settlement import answer, command, kit
from workers import metrics as metrics_module
from workers.errors import Throttled, VendorUnavailable
from workers.idempotency import StoreUnavailable
from workers.metrics import Metrics, installed
from workers.outcome import Done, Fail
from workers.settlement import Work
from workers.vendors._http import Calling, call

# Every metric flowgate exports: name, type, labels. README "Operating flowgate" lists these.
EXPORTED = {
    "flowgate_commands": ("counter", {"command_type", "outcome", "error_kind"}),
    "flowgate_events": ("counter", {"command_type", "kind", "error_kind"}),
    "flowgate_vendor_calls": ("counter", {"vendor", "operation", "status"}),
    "flowgate_vendor_call_duration_seconds": ("histogram", {"vendor", "operation"}),
    "flowgate_retries": ("counter", {"command_type", "reason"}),
    "flowgate_dead_letters": ("counter", {"kind", "source"}),
    "flowgate_runs_followed": ("gauge", {"command_type", "vendor"}),
    "flowgate_poll_lag_seconds": ("histogram", {"vendor"}),
    "flowgate_rate_limit_wait_seconds": ("histogram", {"vendor", "reason"}),
    "flowgate_token_refreshes": ("counter", {"vendor", "result"}),
    "flowgate_amqp_reconnects": ("counter", set()),
    "flowgate_store_errors": ("counter", set()),
    "flowgate_runs_stuck": ("counter", {"command_type", "vendor"}),
    "flowgate_scheduler_fires": ("counter", {"schedule", "outcome"}),
    "flowgate_scheduler_last_fire_timestamp_seconds": ("gauge", {"schedule"}),
}


@pytest.fixture
def fresh() -> Iterator[Metrics]:
    with installed(Metrics()) as metrics:
        yield metrics


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by name and labels."""
    text = metrics.render()[0].decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(metrics).items() if n == name and wanted <= ls)


def _touch_every_metric(metrics: Metrics) -> None:
    metrics.consumed("trigger-batch", "accepted")
    metrics.event("trigger-batch", "accepted")
    metrics.vendor_call("pbsm", "trigger", "200", 0.01)
    metrics.retry("trigger-batch", "http_503")
    metrics.dead_letter("rejected")
    metrics.following("trigger-batch").inc()
    metrics.polled("trigger-batch", 0.2)
    metrics.rate_limit_wait("productlive", "limit", 1.5)
    metrics.token_refresh("pbsm", "ok")
    metrics.amqp_reconnects.inc()
    metrics.store_errors.inc()
    metrics.stuck("trigger-batch")
    metrics.fired("NIGHTLY", "sent", 1_774_843_200.0)


def test_every_metric_is_exported_with_its_type_and_labels() -> None:
    metrics = Metrics()
    _touch_every_metric(metrics)
    text = metrics.render()[0].decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == set(EXPORTED)
    for name, (kind, labels) in EXPORTED.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


def test_each_registry_counts_alone() -> None:
    one, two = Metrics(), Metrics()
    one.consumed("trigger-batch", "accepted")
    assert value(one, "flowgate_commands_total") == 1
    assert value(two, "flowgate_commands_total") == 0


def test_the_exposition_is_prometheus_text() -> None:
    body, content_type = Metrics().render()
    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE flowgate_commands_total counter" in body


def test_labels_stay_bounded() -> None:
    metrics = Metrics()
    metrics.consumed("no-such-type-7f3a", "failed", "invalid")
    metrics.following("trigger-batch").inc()
    metrics.polled("cancel-run", 0.0)
    assert value(metrics, "flowgate_commands_total", command_type="unknown") == 1
    assert value(metrics, "flowgate_runs_followed", vendor="pbsm") == 1
    assert value(metrics, "flowgate_poll_lag_seconds_count", vendor="flowgate") == 1
    assert metrics_module.http_status_label(42) == "invalid"


def test_a_schedulers_fires_are_there_at_zero_before_the_first() -> None:
    """So the first fire is a change from 0 (a rate), not a series appearing."""
    metrics = Metrics()
    metrics.schedules(["NIGHTLY"])
    fires = {
        dict(labels)["outcome"]: v
        for (name, labels), v in samples(metrics).items()
        if name == "flowgate_scheduler_fires_total"
    }
    assert fires == dict.fromkeys(metrics_module.FIRE_OUTCOMES, 0.0)
    # No last fire time until one is sent: a 0 would read as a fire in 1970.
    assert "flowgate_scheduler_last_fire_timestamp_seconds" not in {n for n, _ in samples(metrics)}


def test_the_process_has_one_and_installed_replaces_it_for_a_block() -> None:
    mine = Metrics()
    process = metrics_module.current()
    assert metrics_module.current() is process
    with installed(mine):
        assert metrics_module.current() is mine
    assert metrics_module.current() is process


# --- the settler ------------------------------------------------------------------------------


async def test_the_settler_counts_how_each_command_was_settled(fresh: Metrics) -> None:
    k = kit()
    rejected = Fail(ErrorInfo(kind=ErrorKind.REJECTED, message="400 nope"), dead_letter=True)
    await k.run(rejected, answer=answer())
    await k.run(VendorUnavailable("503", http_status=503), answer=answer())
    await k.run(Throttled("full", wait=3.0), answer=answer())
    await k.run(StoreUnavailable("store down"), answer=answer())
    work = await k.run(Done(), answer=answer())
    assert work.outcome == "done"

    def consumed(outcome: str, **labels: str) -> float:
        return value(fresh, "flowgate_commands_total", outcome=outcome, **labels)

    assert consumed("failed", command_type="trigger-batch", error_kind="rejected") == 1
    assert consumed("retried") == 1
    assert consumed("deferred") == 1
    assert consumed("parked") == 1
    assert consumed("done") == 1
    retries = {
        reason: value(fresh, "flowgate_retries_total", reason=reason)
        for reason in ("http_503", "rate_limited", "store_unavailable")
    }
    assert retries == {"http_503": 1, "rate_limited": 1, "store_unavailable": 1}
    assert value(fresh, "flowgate_dead_letters_total", kind="rejected", source="flowgate") == 1
    assert value(fresh, "flowgate_events_total", kind="failed", error_kind="rejected") == 1


async def test_what_the_handler_answered_is_the_outcome(fresh: Metrics) -> None:
    k = kit()

    async def accepted(work: Work) -> Done:
        work.outcome = "accepted"
        return Done()

    work = Work(command(), "flowgate.cmd.trigger-batch")
    work.answer = answer()
    await k.settler.run(work, accepted)
    assert value(fresh, "flowgate_commands_total", outcome="accepted") == 1


async def test_poll_deliveries_are_not_counted_as_commands(fresh: Metrics) -> None:
    k = kit()
    work = Work(command(), "flowgate.poll")
    work.answer = answer()

    async def done(work: Work) -> Done:
        return Done()

    await k.settler.run(work, done)
    assert value(fresh, "flowgate_commands_total") == 0


# --- the vendor HTTP layer --------------------------------------------------------------------


async def test_every_vendor_call_is_counted_by_vendor_operation_and_status(
    fresh: Metrics,
) -> None:
    def answer_of(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503 if request.url.path == "/busy" else 200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer_of)) as http:
        with Calling("pbsm", "status"):
            await call(http, http.build_request("GET", "http://v/ok"), what="ok")
            await call(http, http.build_request("GET", "http://v/busy"), what="busy")
            with pytest.raises(VendorUnavailable) as refused:
                await call(http, http.build_request("GET", "http://v/down"), what="down")
        await call(http, http.build_request("GET", "http://v/ok"), what="outside a handler")
    assert refused.value.cause == "connect_error"

    def calls(status: str, vendor: str = "pbsm") -> float:
        return value(fresh, "flowgate_vendor_calls_total", vendor=vendor, status=status)

    assert (calls("200"), calls("503"), calls("connect_error")) == (1, 1, 1)
    assert calls("200", vendor="unknown") == 1
    seconds = "flowgate_vendor_call_duration_seconds_count"
    assert value(fresh, seconds, vendor="pbsm", operation="status") == 3


_FORKED = """
import os
from workers.metrics import Metrics

metrics = Metrics()
metrics.consumed("trigger-batch", "accepted")
metrics.following("trigger-batch").inc()
child = os.fork()
if child == 0:
    metrics.consumed("trigger-batch", "accepted")
    os._exit(0)
os.waitpid(child, 0)
print(metrics.render()[0].decode())
"""


def test_with_prometheus_multiproc_dir_a_forked_process_counts_too(tmp_path: Path) -> None:
    """flowgate never forks; should something fork it, PROMETHEUS_MULTIPROC_DIR keeps every
    process's counts in files and /metrics serves their sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _FORKED],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(done.stdout)
        for s in family.samples
    }
    accepted = frozenset(
        {("command_type", "trigger-batch"), ("outcome", "accepted"), ("error_kind", "")}
    )
    assert found[("flowgate_commands_total", accepted)] == 2
    followed = frozenset({("command_type", "trigger-batch"), ("vendor", "pbsm")})
    assert found[("flowgate_runs_followed", followed)] == 1
