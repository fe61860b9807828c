"""Waiting in tests on what can be observed, never on a clock.

A bare `asyncio.sleep(0.5)` either waits too long (slow tests) or not long enough (flaky ones).
Where something signals (an `asyncio.Event`, the `Events.changed` condition) wait on that; where
nothing does, poll the observable state with a deadline, here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["poll_until", "wait_until"]

T = TypeVar("T")


async def poll_until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
) -> T:
    """Await `probe()` until `done` accepts its result, and return that result.

    Fails (AssertionError, with the last result) when `timeout` seconds pass first. `probe`
    is called again and again, so it must only look, never change what it looks at.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if done(result):
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"still {result!r} after {timeout} s")
        await asyncio.sleep(interval)


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.01
) -> None:
    """`poll_until` for a plain condition on in-process state."""

    async def probe() -> bool:
        return condition()

    await poll_until(probe, bool, timeout=timeout, interval=interval)
