"""`flowgate scheduler`'s /healthz, /readyz and /metrics, on `health_port`.

The scheduler is synchronous: Celery beat's loop in the main thread, blocking AMQP and Redis
clients. `workers.health.HealthServer` is asyncio, so `serving` runs it on an event loop of
its own, in a daemon thread, started before the scheduler connects (/healthz answers while it
does, /readyz says what it waits for) and stopped when the scheduler ends.

/readyz (`SchedulerHealth.ready`) is 200 when every check is:

- `schedules`: how many were loaded (a bad file stops the process before this serves);
- `beat`: `running` while beat's loop ticks (at least once a second between fires; a tick
  that publishes may retry for tens of seconds while RabbitMQ is away), `starting` before its
  first tick, `stalled` when its last one is older than `STALLED` seconds;
- `rabbitmq`: the publisher connection as the loop last found it: `connecting` until it is
  up, `ok` after each wait between fires read it, `unavailable (<error>)` after one failed.
  The loop reads it at least once a second, so this is fresh without a call of the probe's
  own: the blocking client is used under a lock the loop holds while it waits, and a probe
  would queue behind it (and a connection per probe would cost RabbitMQ more than it tells);
- `redis`: a PING to the claims' server (`idempotency.redis_url`), on a connection of the
  probe's own event loop, within `READY_CHECK` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from workers import metrics
from workers._redis import async_pool, close_sentinels
from workers.health import HealthServer

if TYPE_CHECKING:
    import redis.asyncio as redis_async

__all__ = ["READY_CHECK", "STALLED", "CannotListen", "SchedulerHealth", "serving"]

log = logging.getLogger("flowgate.scheduler")

# Each check's bound, as a worker's (workers/app.py): inside the health server's own limit, so
# the answer still says which check failed.
READY_CHECK = 2.0
# Beat's loop ticks at least every second; a tick that publishes while RabbitMQ is away retries
# (connect timeouts, the retry policy) for up to about 30 s. Silent longer than this: stalled.
STALLED = 60.0
_START = 10.0  # seconds to bind the port
_STOP = 5.0  # seconds to close it (a readiness check in flight ends within READY_CHECK)


class CannotListen(Exception):
    """`health_port` cannot be bound; the message says which and what to do."""


class SchedulerHealth:
    """What the scheduler's loop last saw (written from its thread), and /readyz from it (on
    the health server's loop)."""

    def __init__(
        self, redis_url: str, schedules: int, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis_url = redis_url
        self._schedules = schedules
        self._now = now
        # Plain attributes: each is replaced whole by one thread and read by the other.
        self._rabbitmq = "connecting"
        self._last_tick: float | None = None
        self._redis: redis_async.Redis | None = None

    # -- written by the scheduler's loop

    def connected(self) -> None:
        """The publisher connection answered (connected, or a wait read it)."""
        self._rabbitmq = "ok"

    def disconnected(self, exc: BaseException) -> None:
        # The type only: a message may carry a URL with credentials in it.
        self._rabbitmq = f"unavailable ({type(exc).__name__})"

    def ticked(self) -> None:
        self._last_tick = self._now()

    # -- read by the health server

    def _beat(self) -> str:
        if self._last_tick is None:
            return "starting"
        silent = self._now() - self._last_tick
        return "running" if silent <= STALLED else f"stalled ({silent:.0f} s since its last tick)"

    async def _ping_redis(self) -> str:
        if self._redis is None:
            import redis.asyncio as redis

            pool = async_pool(
                self._redis_url,
                max_connections=2,
                socket_timeout=READY_CHECK,
                socket_connect_timeout=READY_CHECK,
            )
            self._redis = redis.Redis(connection_pool=pool)
        try:
            await asyncio.wait_for(self._redis.ping(), READY_CHECK)
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"
        return "ok"

    async def ready(self) -> tuple[bool, dict[str, object]]:
        checks: dict[str, object] = {
            "schedules": self._schedules,
            "beat": self._beat(),
            "rabbitmq": self._rabbitmq,
            "redis": await self._ping_redis(),
        }
        ready = self._schedules > 0 and all(
            checks[k] in ("ok", "running") for k in ("beat", "rabbitmq", "redis")
        )
        return ready, checks

    async def aclose(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            # The pool was passed in, so redis-py would leave it open: close it explicitly.
            pool = client.connection_pool
            await client.aclose(close_connection_pool=True)
            await close_sentinels(pool)


@contextlib.contextmanager
def serving(health: SchedulerHealth, host: str, port: int | None) -> Iterator[int | None]:
    """/healthz, /readyz and /metrics on `host:port` for the block, from a thread of its own;
    yields the bound port (None, serving nothing, when `port` is None). CannotListen when the
    port cannot be bound."""
    if port is None:
        yield None
        return
    server = HealthServer(
        host=host, port=port, ready=health.ready, metrics=metrics.current().render
    )
    loop = asyncio.new_event_loop()
    # A daemon: a scheduler that dies without stopping it is not kept alive by it.
    thread = threading.Thread(
        target=_run_loop, args=(loop,), name="flowgate-scheduler-health", daemon=True
    )
    thread.start()
    try:
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(_START)
        except OSError as exc:
            # A bind error's own text repeats the address; a lookup error's errno is negative.
            why = (
                os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
            )
            raise CannotListen(
                f"cannot listen on {host} for health_port: {why}; give health_port a port no "
                "other process uses (each process on a host needs its own)"
            ) from None
        log.info(
            "health: http://%s:%d/readyz, metrics: /metrics",
            host,
            server.port,
            extra={"health_port": server.port},
        )
        yield server.port
    finally:
        _stop(loop, thread, server, health)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _stop(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    server: HealthServer,
    health: SchedulerHealth,
) -> None:
    async def close() -> None:
        await server.stop()
        await health.aclose()

    try:
        asyncio.run_coroutine_threadsafe(close(), loop).result(_STOP)
    except Exception as exc:  # stopping anyway: the thread is a daemon
        log.warning("scheduler: the health port did not close cleanly: %s", type(exc).__name__)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(_STOP)
