"""`flowgate scheduler`'s health port (`workers.scheduler_health`) without a broker: the server
in its own thread over real sockets, /readyz from what beat's loop reported, and a Redis that
does not answer named as such. No sleeps: the clock of the beat check is the test's."""

from __future__ import annotations

import json
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from workers import scheduler
from workers.metrics import Metrics, installed
from workers.scheduler_health import STALLED, CannotListen, SchedulerHealth, serving
from workers.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "schedules.toml"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def refusing_redis() -> Iterator[str]:
    """A Redis URL on a port bound but not listening: every connection is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"redis://127.0.0.1:{bound.getsockname()[1]}/0"


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            status: int = answer.status
            return status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def health_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flowgate-scheduler-health"]


def test_readyz_is_503_naming_redis_when_redis_does_not_answer() -> None:
    with refusing_redis() as url:
        health = SchedulerHealth(url, 2)
        health.connected()
        health.ticked()
        with serving(health, "127.0.0.1", 0) as port:
            assert port is not None
            assert get(port, "/healthz") == (200, b"ok\n")
            status, body = get(port, "/readyz")
    assert status == 503
    assert json.loads(body) == {
        "ready": False,
        "checks": {
            "schedules": 2,
            "beat": "running",
            "rabbitmq": "ok",
            "redis": "unavailable (ConnectionError)",
        },
    }
    assert health_threads() == []


async def test_readiness_follows_what_the_loop_reported() -> None:
    clock = Clock()
    with refusing_redis() as url:
        health = SchedulerHealth(url, 1, now=clock)
        try:
            ready, checks = await health.ready()
            assert not ready
            assert (checks["beat"], checks["rabbitmq"]) == ("starting", "connecting")
            health.connected()
            health.ticked()
            clock.now += STALLED
            _, checks = await health.ready()
            assert (checks["beat"], checks["rabbitmq"]) == ("running", "ok")
            health.disconnected(ConnectionResetError("amqp://user:secret@host lost"))
            clock.now += 1
            _, checks = await health.ready()
            assert checks["beat"] == f"stalled ({STALLED + 1:.0f} s since its last tick)"
            # The error's type only: its message may hold a URL with a password.
            assert checks["rabbitmq"] == "unavailable (ConnectionResetError)"
        finally:
            await health.aclose()


async def test_ready_when_every_check_is(monkeypatch: pytest.MonkeyPatch) -> None:
    health = SchedulerHealth("redis://unused:6379/0", 1)

    async def answers() -> str:
        return "ok"

    monkeypatch.setattr(health, "_ping_redis", answers)
    health.connected()
    health.ticked()
    assert await health.ready() == (
        True,
        {"schedules": 1, "beat": "running", "rabbitmq": "ok", "redis": "ok"},
    )


def test_metrics_are_served_beside_the_checks() -> None:
    mine = Metrics()
    with installed(mine), refusing_redis() as url:
        mine.fired("NIGHTLY", "sent", 1_774_843_200.0)
        with serving(SchedulerHealth(url, 1), "127.0.0.1", 0) as port:
            assert port is not None
            status, body = get(port, "/metrics")
    assert status == 200
    text = body.decode()
    assert 'flowgate_scheduler_fires_total{outcome="sent",schedule="NIGHTLY"} 1.0' in text
    assert 'flowgate_scheduler_last_fire_timestamp_seconds{schedule="NIGHTLY"} 1.7748432e+09' in (
        text
    )


def test_no_port_serves_nothing() -> None:
    with serving(SchedulerHealth("redis://unused:6379/0", 1), "127.0.0.1", None) as port:
        assert port is None
        assert health_threads() == []


def test_a_port_in_use_is_said_as_such_and_leaves_no_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(CannotListen, match=r"cannot listen on 127\.0\.0\.1 for health_port: "),
            serving(SchedulerHealth("redis://unused:6379/0", 1), "127.0.0.1", port),
        ):
            pass
    assert health_threads() == []


@pytest.fixture
def signals() -> Iterator[None]:
    """`scheduler.main` installs its SIGINT and SIGTERM handlers: pytest's come back after."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_the_scheduler_exits_2_saying_the_port_is_taken(
    signals: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before it connects anywhere: the port is bound first."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(
            amqp_url="amqp://guest:guest@127.0.0.1:9/", health_port=taken.getsockname()[1]
        )
        assert scheduler.main(EXAMPLE, settings, check_only=False) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(
        "flowgate scheduler: cannot listen on 127.0.0.1 for health_port: "
    ), said
