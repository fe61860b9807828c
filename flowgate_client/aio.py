"""The asyncio client (aio-pika): send typed commands, await their outcome, subscribe to events.

```python
from contracts import TriggerBatch
from flowgate_client.aio import Client

async with Client("amqp://guest:guest@127.0.0.1:5672/") as client:
    handle = await client.send(TriggerBatch(batch="B2001", params={"$FICMISDATE$": "2026-11-21"}))
    event = await handle.result(timeout=600)     # succeeded, or CommandFailed/CommandCancelled
```

Every command a client sends names the client's reply queue in its AMQP `reply_to`, so flowgate
sends every event of the command there too (docs/contract.md): one queue per client, whatever
the number of commands in flight, and no event of anyone else's command is read.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Literal

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from contracts.commands import Command
from flowgate_client import _failover as failover
from flowgate_client._common import (
    COMMANDS_EXCHANGE,
    DEFAULT_URL,
    EVENTS_EXCHANGE,
    REPLY_QUEUE_PREFIX,
    SUBSCRIBER_QUEUE_PREFIX,
    Deadline,
    Event,
    PublishFailed,
    ResultTimeout,
    TopologyMissing,
    outcome,
    parse_event,
    prepare,
    private_queue,
    url_user,
)
from flowgate_client._common import reply_queue_type as reply_queue_type_for

__all__ = ["Client", "Handle", "Subscription"]

log = logging.getLogger("flowgate_client")


class Handle:
    """One command sent: its id, and its events as they come back on the client's reply queue.

    Events are kept in order (a duplicate delivery, same event id, is dropped), so `events()`
    and `result()` may be called at any time after `send`, any number of times."""

    def __init__(self, command_id: str, command_type: str) -> None:
        self.id = command_id
        self.command_type = command_type
        self._events: list[Event] = []
        self._seen: set[str] = set()
        self._terminal: Event | None = None
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        state = self._terminal.kind.value if self._terminal else "pending"
        return f"<Handle {self.command_type} {self.id} {state}>"

    @property
    def done(self) -> bool:
        return self._terminal is not None

    def _deliver(self, event: Event) -> None:
        if event.id in self._seen or self._terminal is not None:
            return
        self._seen.add(event.id)
        self._events.append(event)
        if event.terminal:
            self._terminal = event
        # Wake every waiter; later waiters wait on a fresh flag.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_past(self, count: int) -> None:
        while len(self._events) <= count:
            await self._changed.wait()

    # A timeout argument, as concurrent.futures and the sync client have it: one line for the
    # caller, and the timeout becomes ResultTimeout, which says the command goes on.
    async def result(self, timeout: float | None = None) -> Event:  # noqa: ASYNC109
        """The terminal event when the command `succeeded`. Raises `CommandFailed` (with the
        error kind) or `CommandCancelled` when it ended otherwise, and `ResultTimeout` when
        nothing terminal came within `timeout` seconds (the command goes on)."""
        try:
            async with asyncio.timeout(timeout):
                while self._terminal is None:
                    await self._wait_past(len(self._events))
        except TimeoutError:
            raise ResultTimeout(
                f"{self.command_type} {self.id}: no terminal event within {timeout} s"
            ) from None
        return outcome(self._terminal)

    async def events(self, timeout: float | None = None) -> AsyncIterator[Event]:  # noqa: ASYNC109
        """`accepted`, each `progress`, then the terminal event (whatever its kind), as they
        arrive; `ResultTimeout` when the terminal event is not there within `timeout` s."""
        index = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self._wait_past(index)
                    while index < len(self._events):
                        event = self._events[index]
                        index += 1
                        yield event
                        if event.terminal:
                            return
        except TimeoutError:
            raise ResultTimeout(
                f"{self.command_type} {self.id}: no terminal event within {timeout} s"
            ) from None


class Client:
    """A connection to RabbitMQ (robust: it reconnects and restores its queue and consumers),
    a publisher-confirmed channel, and one reply queue for every command it sends.

    Every command carries the AMQP `user_id` of the user the URL logs in as (RabbitMQ checks
    it; a flowgate connection may accept commands from some users only), unless `user_id`
    says otherwise (False: none).

    The reply queue, `flowgate.reply.<user>.<uuid>`, is not exclusive but expires
    `reply_queue_expires` seconds after its consumer left: a connection that drops and comes
    back finds the events published meanwhile, and a client that is gone leaves nothing
    behind."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        source: str = "urn:flowgate:client",
        reply_queue_expires: float = 300.0,
        reply_queue_type: Literal["classic", "quorum"] | None = None,
        prefetch: int = 512,
        publish_timeout: float = 30.0,
        connection_name: str = "flowgate-client",
        ssl_context: ssl.SSLContext | None = None,
        user_id: str | bool = True,
    ) -> None:
        self._url = url
        self.source = source
        self.user_id = url_user(url) if user_id is True else (user_id or None)
        self._user = url_user(url)
        self.reply_queue = private_queue(REPLY_QUEUE_PREFIX, self._user)
        self._expires_ms = int(reply_queue_expires * 1000)
        self._reply_queue_type = reply_queue_type_for(url, reply_queue_type)
        self._prefetch = prefetch
        self._publish_timeout = publish_timeout
        self._connection_name = connection_name
        self._ssl_context = ssl_context
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._commands: aio_pika.abc.AbstractExchange | None = None
        self._handles: weakref.WeakValueDictionary[str, Handle] = weakref.WeakValueDictionary()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, check flowgate's exchanges exist, declare and consume the reply queue."""
        if self._connection is not None:
            return
        options: dict[str, Any] = {"client_properties": {"connection_name": self._connection_name}}
        if self._ssl_context is not None:
            options["ssl_context"] = self._ssl_context
        connection = await failover.connect(self._url, **options)
        try:
            await _check_exchanges(connection)
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await channel.declare_queue(
                self.reply_queue,
                durable=True,
                arguments={"x-expires": self._expires_ms, "x-queue-type": self._reply_queue_type},
            )
            await queue.consume(self._on_reply)
            self._commands = await channel.get_exchange(COMMANDS_EXCHANGE, ensure=False)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel = connection, channel

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body, message.routing_key or "")
        except (ValueError, KeyError) as exc:
            log.warning("flowgate client: not an event on %s: %s", self.reply_queue, exc)
        else:
            handle = self._handles.get(event.command_id)
            if handle is not None:
                handle._deliver(event)
        await message.ack()

    async def send(
        self,
        command: Command,
        *,
        connection: str | None = None,
        deadline: Deadline = None,
        id: str | None = None,
    ) -> Handle:
        """Publish one command (confirmed by RabbitMQ) and return its handle; `handle.id` is
        the command id (generated unless given): sending again with the same id is safe, as
        flowgate never triggers a vendor twice for one id. `deadline`: an aware datetime, or
        a timedelta from now. Raises `PublishFailed` when RabbitMQ did not confirm it."""
        outgoing = prepare(
            command, source=self.source, connection=connection, deadline=deadline, id=id
        )
        if self._commands is None:
            await self.connect()
        assert self._commands is not None
        handle = Handle(outgoing.id, outgoing.command_type)
        # Registered before publishing: a synchronous command may answer before the confirm.
        self._handles[outgoing.id] = handle
        message = aio_pika.Message(
            outgoing.body,
            content_type=outgoing.content_type,
            content_encoding="utf-8",
            message_id=outgoing.id,
            reply_to=self.reply_queue,
            user_id=self.user_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            # Confirmed (a nack raises). mandatory=False: flowgate.commands has an alternate
            # exchange, so an unknown type is kept and answered `failed`, never returned.
            await self._commands.publish(
                message,
                routing_key=outgoing.command_type,
                mandatory=False,
                timeout=self._publish_timeout,
            )
        except (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
            raise PublishFailed(f"{outgoing.command_type} {outgoing.id}: {exc!r}") from exc
        return handle

    def subscribe(self, *patterns: str, prefetch: int = 256) -> Subscription:
        """Every event whose routing key matches one of `patterns` (`trigger-batch.*`,
        `*.failed`; default `#`), from a queue of this subscription's own (exclusive, deleted
        when it closes) bound to `flowgate.events`; see `Subscription`."""
        return Subscription(self, patterns or ("#",), prefetch)

    async def _open_connection(self) -> aio_pika.abc.AbstractRobustConnection:
        if self._connection is None:
            await self.connect()
        assert self._connection is not None
        return self._connection


class Subscription:
    """`async for event in client.subscribe(...)` reads events; each is acked when the loop
    asks for the next one. `async with client.subscribe(...) as events:` binds the queue on
    entry (so nothing published after it is missed) and deletes it on exit; without it the
    queue is bound when the loop starts and goes when `close()` is called or the client
    closes."""

    def __init__(self, client: Client, patterns: tuple[str, ...], prefetch: int) -> None:
        self._client = client
        self.patterns = patterns
        self._prefetch = prefetch
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._messages: aio_pika.abc.AbstractQueueIterator | None = None
        self._unacked: aio_pika.abc.AbstractIncomingMessage | None = None

    async def start(self) -> None:
        """Declare the queue, bind it to every pattern and start consuming (idempotent)."""
        if self._messages is not None:
            return
        connection = await self._client._open_connection()
        channel = await connection.channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=self._prefetch)
        events = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        queue = await channel.declare_queue(
            private_queue(SUBSCRIBER_QUEUE_PREFIX, self._client._user),
            exclusive=True,
            auto_delete=True,
        )
        for pattern in self.patterns:
            await queue.bind(events, pattern)
        self._messages = queue.iterator()
        await self._messages.consume()

    async def close(self) -> None:
        channel, self._channel, self._messages = self._channel, None, None
        if channel is not None and not channel.is_closed:
            await channel.close()

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        await self.start()
        assert self._messages is not None
        while True:
            if self._unacked is not None:
                message, self._unacked = self._unacked, None
                await message.ack()
            message = await self._messages.__anext__()
            self._unacked = message
            try:
                return parse_event(message.body, message.routing_key or "")
            except (ValueError, KeyError) as exc:
                log.warning("flowgate client: not an event: %s", exc)


async def _check_exchanges(connection: aio_pika.abc.AbstractConnection) -> None:
    """Passive declares, on a channel of their own (a missing exchange closes the channel)."""
    for name in (COMMANDS_EXCHANGE, EVENTS_EXCHANGE):
        channel = await connection.channel()
        try:
            await channel.get_exchange(name, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise TopologyMissing(
                f"exchange {name!r} does not exist on this virtual host: no flowgate has run "
                "there yet (`flowgate declare` creates flowgate's exchanges and queues)"
            ) from None
        finally:
            if not channel.is_closed:
                await channel.close()
