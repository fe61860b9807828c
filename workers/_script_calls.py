"""The store's Lua script calls, sent to Redis one pipelined round trip per event-loop turn.

A worker under load makes many store calls at once (a claim per command, a record per
trigger, an outcome per end). Each one alone costs redis-py a connection from the pool, a
write and a read: ~95 us of client CPU a call, measured. The calls made in one turn of the
loop go out together instead, as one pipeline (not a transaction: each script is atomic on
its own, and the calls are unrelated), and each caller gets its own reply or its own error:
~30-50 us a call when 8-64 are in flight. A call alone in its turn is sent as it is, so a
quiet process pays nothing for this.

A claim that must reach `replicas` replicas asks for a `WAIT` after it; one `WAIT` at the end
of the pipeline covers every claim in it (Redis replicates in order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio as redis
    from redis.commands.core import AsyncScript

__all__ = ["ScriptCalls"]

Arg = str | int


@dataclass
class _Call:
    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[Arg]
    replicated: bool
    future: asyncio.Future[tuple[Any, int]] = field(repr=False)


class ScriptCalls:
    def __init__(self, client: redis.Redis, *, replicas: int = 0, replica_wait_ms: int = 0):
        self._client = client
        self._replicas = replicas
        self._replica_wait_ms = replica_wait_ms
        self._pending: list[_Call] = []
        self._flushing: set[asyncio.Task[None]] = set()  # referenced until done

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The script's reply; its error (a RedisError or OSError) raised here."""
        reply, _ = await self._queue(script, keys, args, replicated=False)
        return reply

    async def run_replicated(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]
    ) -> tuple[Any, int]:
        """The script's reply and how many replicas acknowledged it within the wait."""
        return await self._queue(script, keys, args, replicated=True)

    def _queue(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg], *, replicated: bool
    ) -> asyncio.Future[tuple[Any, int]]:
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, replicated, loop.create_future())
        self._pending.append(call)
        if len(self._pending) == 1:
            # A task's first step runs in the loop's next turn: every call queued in this
            # turn is in the batch by then.
            task = loop.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return call.future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            await self._send(batch)
        except asyncio.CancelledError:
            for call in batch:
                call.future.cancel()
            raise
        except Exception as exc:  # the connection, not a script: every call in it failed
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)

    async def _send(self, batch: list[_Call]) -> None:
        from redis.exceptions import NoScriptError

        replies: list[Any]
        acked = 0
        if len(batch) == 1 and not batch[0].replicated:
            call = batch[0]
            try:
                replies = [await self._evalsha(self._client, call)]
            except NoScriptError as exc:
                replies = [exc]
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for call in batch:
                    await self._evalsha(pipe, call)
                waits = any(call.replicated for call in batch)
                if waits:
                    pipe.wait(self._replicas, self._replica_wait_ms)
                replies = await pipe.execute(raise_on_error=False)
            if waits:
                last = replies.pop()
                acked = int(last) if isinstance(last, int | str) else 0
        again: list[_Call] = []
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                again.append(call)  # Redis restarted, failed over or flushed its scripts
            elif call.future.done():
                pass  # its caller was cancelled while it waited
            elif isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result((reply, acked))
        if again:
            for script in {id(c.script): c.script for c in again}.values():
                script.sha = await self._client.script_load(script.script)
            await self._send(again)

    @staticmethod
    async def _evalsha(client: Any, call: _Call) -> Any:
        # On a pipeline this only queues the command (and returns the pipeline).
        return await client.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
