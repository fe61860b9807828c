"""Every Prometheus metric flowgate exports, defined here and nowhere else.

A process has one `Metrics` (`current()`), served as `GET /metrics` on its health port
(`workers.health`). Tests build a fresh one on a registry of its own and `installed(...)`
it, so no test sees another's counts; nothing uses prometheus_client's global registry.

The few central places record into it: the settler (how each command was settled, retries,
dead letters), the publisher (events), the vendor HTTP layer (calls, latency), the poller
(poll lag, runs in hand), Product-Live's client (rate-limit waits), PBSM's token manager,
the AMQP broker (reconnects), the Redis store (errors) and the scheduler (fires). Labels are
bounded: command types and vendors come from the command table, schedule names from the
schedule file, anything else read off the wire is `unknown`; never a command id or a vendor
reference.

Each labelled child is looked up once and kept (`_Children`): prometheus_client's
`labels()` costs ~1.8 us a call (a lock and validation), a kept child's `inc()` ~0.4 us.

flowgate processes never fork. Should one ever run under something that forks, start it with
`PROMETHEUS_MULTIPROC_DIR` set to an empty directory: prometheus_client then keeps every value
in files there, and `render` serves the sum of every process's files (`MultiProcessCollector`;
the gauge of runs in hand is summed over live processes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import values as _values

from contracts import COMMAND_TYPES

__all__ = [
    "FIRE_OUTCOMES",
    "Metrics",
    "command_type_label",
    "current",
    "http_status_label",
    "installed",
    "vendor_of",
]

# Vendor calls: a cached token answers in milliseconds, a slow trigger in tens of seconds.
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# How late a status call ran: the delay ladder lands up to a tier late (250 ms and up).
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# A rate-limit wait: up to a window (Product-Live: 60 s) or a 429's Retry-After.
_WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# No `*_created` series: they double every counter's and histogram's series, and Prometheus
# itself reads counter resets from the values.
disable_created_metrics()  # type: ignore[no-untyped-call]

_COMMAND_TYPES = frozenset(COMMAND_TYPES)
# What the scheduler did with a fire, as its log line's `outcome` says it.
FIRE_OUTCOMES = ("sent", "claimed", "failed", "missed", "invalid")
_VENDORS: dict[str, str] = {}

M = TypeVar("M", Counter, Gauge, Histogram)


def _vendor_table() -> dict[str, str]:
    # Imported late: the command table imports every vendor, which import this module.
    if not _VENDORS:
        from workers.commands import COMMANDS

        for command_type, registration in COMMANDS.items():
            vendor = registration.vendor
            _VENDORS[command_type] = vendor.name if vendor is not None else "flowgate"
    return _VENDORS


def vendor_of(command_type: str | None) -> str:
    """The vendor label of a command type (`flowgate` for the ones flowgate answers)."""
    return _vendor_table().get(command_type or "", "unknown")


def command_type_label(command_type: str | None) -> str:
    """A command type as a label: a known one, else `unknown` (unrouted keys are anything)."""
    return command_type if command_type in _COMMAND_TYPES else "unknown"


def http_status_label(status: int) -> str:
    """An HTTP status as a label: the code (at most 500 values), or `invalid`."""
    return str(status) if 100 <= status <= 599 else "invalid"


class _Children(Generic[M]):
    """A metric's labelled children, each looked up once."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class Metrics:
    """flowgate's metrics on `registry` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.commands = Counter(
            "flowgate_commands_total",
            "Command deliveries a worker settled, by how: the event it answered with "
            "(accepted, succeeded, failed, cancelled), repeated (an outcome recorded before, "
            "published again), or retried, deferred, parked, dropped.",
            ("command_type", "outcome", "error_kind"),
            registry=r,
        )
        self.events = Counter(
            "flowgate_events_total",
            "Events published on flowgate.events, by kind (accepted, progress, succeeded, "
            "failed, cancelled) and error kind.",
            ("command_type", "kind", "error_kind"),
            registry=r,
        )
        self.vendor_calls = Counter(
            "flowgate_vendor_calls_total",
            "HTTP calls to vendors, by operation (trigger, status, cancel, token) and answer: "
            "the HTTP status, or connect_error, timeout, transport_error.",
            ("vendor", "operation", "status"),
            registry=r,
        )
        self.vendor_call_seconds = Histogram(
            "flowgate_vendor_call_duration_seconds",
            "Seconds from sending a vendor call to its answer (or its failure).",
            ("vendor", "operation"),
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "flowgate_retries_total",
            "Messages sent round the delay queues to be tried again, by reason (http_503, "
            "timeout, rate_limited, store_unavailable, publish_unconfirmed, claim_busy, ...).",
            ("command_type", "reason"),
            registry=r,
        )
        self.dead_letters = Counter(
            "flowgate_dead_letters_total",
            "Dead letters, by error kind and by who wrote them: flowgate, or rabbitmq (a "
            "quorum queue's delivery limit; a worker then answers the command).",
            ("kind", "source"),
            registry=r,
        )
        self.runs_followed = Gauge(
            "flowgate_runs_followed",
            "Runs this poller has in hand: being polled, or held until their next status call. "
            "Sum it over every poller; runs waiting longer than poller.hold are in the delay "
            "queues, not counted here.",
            ("command_type", "vendor"),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.poll_lag = Histogram(
            "flowgate_poll_lag_seconds",
            "Seconds a status call ran after its due time.",
            ("vendor",),
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.rate_limit_waits = Histogram(
            "flowgate_rate_limit_wait_seconds",
            "Calls that waited for a vendor account's shared rate limit (its _count) and the "
            "seconds each was told to wait, by reason: limit (the window is full), paused "
            "(after a 429), http_429, limiter_unavailable.",
            ("vendor", "reason"),
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.token_refreshes = Counter(
            "flowgate_token_refreshes_total",
            "OAuth token fetches, by result: ok, refused (the vendor said no), unavailable.",
            ("vendor", "result"),
            registry=r,
        )
        self.amqp_reconnects = Counter(
            "flowgate_amqp_reconnects_total",
            "Times the connection to RabbitMQ was re-established after it was lost.",
            registry=r,
        )
        self.store_errors = Counter(
            "flowgate_store_errors_total",
            "Idempotency store calls that failed (StoreUnavailable): the message is parked.",
            registry=r,
        )
        # A counter, not a gauge: a stuck run's next change may be seen by another poller,
        # so no process knows how many are stuck now (`flowgate runs list --stuck` does).
        self.runs_stuck = Counter(
            "flowgate_runs_stuck_total",
            "Runs announced stuck (their vendor status unchanged past the connection's "
            "poll.stuck_after): one per stuck period, with its progress event (stuck: true).",
            ("command_type", "vendor"),
            registry=r,
        )
        self.scheduler_fires = Counter(
            "flowgate_scheduler_fires_total",
            "Fires of `flowgate scheduler`'s schedules, by outcome: sent (published, confirmed "
            "by RabbitMQ), claimed (skipped: another scheduler, or an earlier run, has the "
            "slot), failed (not published), missed (later than scheduler.grace), invalid (the "
            "data is not a valid command).",
            ("schedule", "outcome"),
            registry=r,
        )
        self.scheduler_last_fire = Gauge(
            "flowgate_scheduler_last_fire_timestamp_seconds",
            "The fire time (the cron slot, unix seconds) of the last command this scheduler "
            "sent for a schedule; take the max over schedulers.",
            ("schedule",),
            multiprocess_mode="max",
            registry=r,
        )
        self._commands = _Children(self.commands)
        self._events = _Children(self.events)
        self._calls = _Children(self.vendor_calls)
        self._call_seconds = _Children(self.vendor_call_seconds)
        self._retries = _Children(self.retries)
        self._followed = _Children(self.runs_followed)
        self._lag = _Children(self.poll_lag)

    # The hot paths: one kept child each.

    def consumed(self, command_type: str | None, outcome: str, error_kind: str = "") -> None:
        self._commands(command_type_label(command_type), outcome, error_kind).inc()

    def event(self, command_type: str, kind: str, error_kind: str = "") -> None:
        self._events(command_type_label(command_type), kind, error_kind).inc()

    def vendor_call(self, vendor: str, operation: str, status: str, seconds: float) -> None:
        self._calls(vendor, operation, status).inc()
        self._call_seconds(vendor, operation).observe(seconds)

    def retry(self, command_type: str | None, reason: str) -> None:
        self._retries(command_type_label(command_type), reason).inc()

    def following(self, command_type: str) -> Gauge:
        """The gauge child of runs in hand of `command_type`: inc it, dec it when done."""
        return self._followed(command_type_label(command_type), vendor_of(command_type))

    def polled(self, command_type: str, lag: float) -> None:
        self._lag(vendor_of(command_type)).observe(max(0.0, lag))

    def dead_letter(self, kind: str, *, source: str = "flowgate") -> None:
        self.dead_letters.labels(kind, source).inc()

    def rate_limit_wait(self, vendor: str, reason: str, seconds: float) -> None:
        self.rate_limit_waits.labels(vendor, reason).observe(max(0.0, seconds))

    def token_refresh(self, vendor: str, result: str) -> None:
        self.token_refreshes.labels(vendor, result).inc()

    def stuck(self, command_type: str) -> None:
        self.runs_stuck.labels(command_type_label(command_type), vendor_of(command_type)).inc()

    def schedules(self, names: Iterable[str]) -> None:
        """Every fire outcome of every schedule at 0, so a first fire is seen as a change."""
        for name in names:
            for outcome in FIRE_OUTCOMES:
                self.scheduler_fires.labels(name, outcome)

    def fired(self, schedule: str, outcome: str, fire_time: float) -> None:
        """A fire of `schedule` for the slot `fire_time` (unix seconds) ended as `outcome`."""
        self.scheduler_fires.labels(schedule, outcome).inc()
        if outcome == "sent":
            self.scheduler_last_fire.labels(schedule).set(fire_time)

    def render(self) -> tuple[bytes, str]:
        """The exposition (body, content type) for `GET /metrics`."""
        if _values.ValueClass is _values.MutexValue:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        # Multiprocess mode (PROMETHEUS_MULTIPROC_DIR, read by prometheus_client at import):
        # the values live in files, one per process; serve their sum.
        from prometheus_client.multiprocess import MultiProcessCollector

        gathered = CollectorRegistry()
        MultiProcessCollector(gathered)  # type: ignore[no-untyped-call]
        return generate_latest(gathered), CONTENT_TYPE_LATEST


_current: list[Metrics] = []


def current() -> Metrics:
    """The process's metrics (made on first use)."""
    if not _current:
        _current.append(Metrics())
    return _current[0]


@contextlib.contextmanager
def installed(metrics: Metrics) -> Iterator[Metrics]:
    """Record into `metrics` inside the block (tests), the process's own again after it."""
    before = list(_current)
    _current[:] = [metrics]
    try:
        yield metrics
    finally:
        _current[:] = before
