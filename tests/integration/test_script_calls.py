"""The store's script calls, one pipelined round trip per event-loop turn (`ScriptCalls`), on
the real Redis: each caller gets its own reply or its own error, whatever the others get."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.conftest import REDIS_URL
from workers._script_calls import ScriptCalls

ECHO = "return ARGV[1]"
# Fails for an argument of "boom" only: one bad call among good ones.
PICKY = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]"


class Counting(redis.Redis):
    """Counts what reaches Redis: pipelines executed and calls made alone."""

    pipelines = 0
    alone = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> list[Any]:
            type(self).pipelines += 1
            return await execute(raise_on_error=raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    async def evalsha(self, *args: Any) -> Any:
        type(self).alone += 1
        return await super().evalsha(*args)


@pytest.fixture
async def client() -> AsyncIterator[Counting]:
    Counting.pipelines = Counting.alone = 0
    client = Counting(
        connection_pool=redis.ConnectionPool.from_url(REDIS_URL, decode_responses=True)
    )
    try:
        yield client
    finally:
        await client.aclose(close_connection_pool=True)


async def test_the_calls_of_one_turn_go_in_one_pipeline_each_with_its_own_reply(
    client: Counting,
) -> None:
    calls = ScriptCalls(client)
    echo = client.register_script(ECHO)
    replies = await asyncio.gather(*(calls.run(echo, [], [f"v{i}"]) for i in range(50)))
    assert replies == [f"v{i}" for i in range(50)]
    assert (Counting.pipelines, Counting.alone) == (1, 0)


async def test_a_call_alone_in_its_turn_is_sent_as_it_is(client: Counting) -> None:
    calls = ScriptCalls(client)
    echo = client.register_script(ECHO)
    assert await calls.run(echo, ["k"], ["one"]) == "one"
    assert await calls.run(echo, ["k"], ["two"]) == "two"
    assert (Counting.pipelines, Counting.alone) == (0, 2)


async def test_one_scripts_error_fails_its_own_call_only(client: Counting) -> None:
    calls = ScriptCalls(client)
    picky = client.register_script(PICKY)
    replies = await asyncio.gather(
        *(calls.run(picky, [], [arg]) for arg in ("a", "boom", "c")), return_exceptions=True
    )
    assert replies[0] == "a" and replies[2] == "c"
    assert isinstance(replies[1], ResponseError) and "boom" in str(replies[1])


@pytest.mark.parametrize("batch", [1, 20], ids=["alone", "pipelined"])
async def test_scripts_redis_forgot_are_loaded_again(client: Counting, batch: int) -> None:
    """A restarted, failed-over or flushed Redis answers NOSCRIPT: loaded, then sent again."""
    calls = ScriptCalls(client)
    # SCRIPT FLUSH drops every script on this Redis: every client loads its own again.
    marker = time.monotonic_ns()
    script = client.register_script(f"return ARGV[1] .. ':{marker}'")
    await client.script_flush()
    replies = await asyncio.gather(*(calls.run(script, [], [str(i)]) for i in range(batch)))
    assert replies == [f"{i}:{marker}" for i in range(batch)]


async def test_a_lost_connection_fails_every_call_of_the_batch() -> None:
    # Nothing listens on port 1: the connection itself fails, for every caller.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        calls = ScriptCalls(dead)
        echo = dead.register_script(ECHO)
        replies = await asyncio.gather(
            *(calls.run(echo, [], [str(i)]) for i in range(5)), return_exceptions=True
        )
    finally:
        await dead.aclose()
    assert all(isinstance(r, RedisConnectionError | OSError) for r in replies), replies


async def test_a_cancelled_caller_leaves_the_others_their_replies(client: Counting) -> None:
    calls = ScriptCalls(client)
    echo = client.register_script(ECHO)
    tasks = [asyncio.ensure_future(calls.run(echo, [], [str(i)])) for i in range(5)]
    await asyncio.sleep(0)  # every call queued, the batch not yet sent
    tasks[2].cancel()
    replies = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(replies[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(replies) if i != 2] == ["0", "1", "3", "4"]


async def test_one_wait_covers_every_replicated_call_of_the_batch(client: Counting) -> None:
    """The shared Redis has no replica: each call learns 0 acknowledged, after one wait of
    `replica_wait_ms`, not one per call."""
    calls = ScriptCalls(client, replicas=1, replica_wait_ms=200)
    echo = client.register_script(ECHO)
    started = time.monotonic()
    replies = await asyncio.gather(*(calls.run_replicated(echo, [], [str(i)]) for i in range(10)))
    waited = time.monotonic() - started
    assert replies == [(str(i), 0) for i in range(10)]
    assert Counting.pipelines == 1
    # Redis's WAIT blocks its whole timeout when the replicas are short: it did, once.
    assert 0.2 <= waited < 10 * 0.2, f"{waited:.2f} s: no wait, or a wait per call"
