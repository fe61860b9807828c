"""The blocking client (kombu), for Django, Flask or Celery code bases: the same `send`, a
blocking `result(timeout)`, and a consumer helper.

```python
from contracts import TriggerBatch
from flowgate_client.sync import Client

with Client("amqp://guest:guest@127.0.0.1:5672/") as client:
    handle = client.send(TriggerBatch(batch="B2001"))
    event = handle.result(timeout=600)     # succeeded, or CommandFailed/CommandCancelled
```

Publishes are confirmed (`confirm_publish`); every broker operation goes through kombu's
`Connection.ensure` with `retry_policy` (kombu's own keys: `max_retries`, `interval_start`,
`interval_step`, `interval_max`), which reconnects and re-consumes the reply queue. One client
may be shared by threads: its connection is used under a lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import kombu.exceptions
from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding
from kombu.messaging import Consumer, Producer

from contracts.commands import Command
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

__all__ = ["DEFAULT_RETRY_POLICY", "Client", "Handle", "Subscription"]

log = logging.getLogger("flowgate_client")

DEFAULT_RETRY_POLICY: Mapping[str, Any] = {
    "max_retries": 5,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 5,
}
_DRAIN_SLICE = 0.1  # seconds the lock is held per wait: a send never waits longer for it

T = TypeVar("T")


class Handle:
    """One command sent; its events arrive when the client's connection is drained, which
    `result()` and `events()` do."""

    def __init__(self, client: Client, command_id: str, command_type: str) -> None:
        self._client = client
        self.id = command_id
        self.command_type = command_type
        self._events: list[Event] = []
        self._seen: set[str] = set()
        self._terminal: Event | None = None

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

    def _wait_past(self, count: int, deadline: float | None, timeout: float | None) -> None:
        while len(self._events) <= count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeout(
                    f"{self.command_type} {self.id}: no terminal event within {timeout} s"
                )
            self._client._drain(_DRAIN_SLICE if left is None else min(left, _DRAIN_SLICE))

    def result(self, timeout: float | None = None) -> Event:
        """The terminal event when the command `succeeded`; `CommandFailed` (with the error
        kind) or `CommandCancelled` when it ended otherwise; `ResultTimeout` after `timeout`
        seconds without a terminal event (the command goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._terminal is None:
            self._wait_past(len(self._events), deadline, timeout)
        return outcome(self._terminal)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """`accepted`, each `progress`, then the terminal event, as they arrive."""
        deadline = None if timeout is None else time.monotonic() + timeout
        index = 0
        while True:
            self._wait_past(index, deadline, timeout)
            while index < len(self._events):
                event = self._events[index]
                index += 1
                yield event
                if event.terminal:
                    return


class Client:
    """A kombu connection, a confirmed producer and one reply queue for every command sent
    (`flowgate.reply.<user>.<uuid>`, expiring `reply_queue_expires` seconds after its consumer
    left, so a reconnect finds what was published meanwhile)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        source: str = "urn:flowgate:client",
        reply_queue_expires: float = 300.0,
        reply_queue_type: Literal["classic", "quorum"] | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        prefetch: int = 512,
        connect_timeout: float = 10.0,
        connection_name: str = "flowgate-client",
        user_id: str | bool = True,
    ) -> None:
        self.source = source
        # As the async client: the URL's user on every command unless told otherwise.
        self.user_id = url_user(url) if user_id is True else (user_id or None)
        self._user = url_user(url)
        self.reply_queue = private_queue(REPLY_QUEUE_PREFIX, self._user)
        self.retry_policy = dict(retry_policy or DEFAULT_RETRY_POLICY)
        self._prefetch = prefetch
        self._connection = Connection(
            url,
            transport_options={
                "confirm_publish": True,
                # Shown by RabbitMQ (management UI, rabbitmqctl list_connections).
                "client_properties": {"connection_name": connection_name},
            },
            connect_timeout=connect_timeout,
        )
        self._reply = Queue(
            self.reply_queue,
            durable=True,
            auto_delete=False,
            queue_arguments={
                "x-expires": int(reply_queue_expires * 1000),
                "x-queue-type": reply_queue_type_for(url, reply_queue_type),
            },
        )
        self._lock = threading.RLock()
        self._channel: Any = None
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._handles: weakref.WeakValueDictionary[str, Handle] = weakref.WeakValueDictionary()
        self._subscriptions: dict[str, Subscription] = {}

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        """Connect (with the retry policy), check flowgate's exchanges exist, declare and
        consume the reply queue."""
        with self._lock:
            if self._channel is not None:
                return
            self._connection.ensure_connection(**self.retry_policy)
            self._check_exchanges()
            self.revive(self._connection.channel())

    def revive(self, channel: Any) -> None:
        """Called by kombu's `ensure` after a reconnect too: a new channel, the reply queue
        declared (it may have expired) and consumed again."""
        self._channel = channel
        channel.basic_qos(0, self._prefetch, False)
        self._producer = Producer(channel)
        self._consumer = Consumer(
            channel, queues=[self._reply], on_message=self._on_reply, auto_declare=True
        )
        self._consumer.consume()
        for subscription in self._subscriptions.values():
            subscription._start(channel)

    def close(self) -> None:
        with self._lock:
            self._channel = self._producer = self._consumer = None
            self._connection.release()

    def _check_exchanges(self) -> None:
        for name in (COMMANDS_EXCHANGE, EVENTS_EXCHANGE):
            channel = self._connection.channel()
            try:
                channel.exchange_declare(name, "topic", passive=True)
            except self._connection.channel_errors as exc:
                if getattr(exc, "code", None) != 404:
                    raise
                raise TopologyMissing(
                    f"exchange {name!r} does not exist on this virtual host: no flowgate has "
                    "run there yet (`flowgate declare` creates flowgate's exchanges and queues)"
                ) from None
            finally:
                try:
                    channel.close()
                except Exception:  # already closed by the broker's 404
                    log.debug("flowgate client: closing a checked channel", exc_info=True)

    def _ensure(self, fun: Callable[[], T]) -> T:
        with self._lock:
            if self._channel is None:
                self.connect()
            ensured: Callable[[], T] = self._connection.ensure(self, fun, **self.retry_policy)
            return ensured()

    def drain(self, timeout: float) -> None:
        """Read this client's connection for up to `timeout` seconds: each event that came
        back goes to its command's handle (or is dropped when the handle is gone). For a
        long-lived publisher that never waits on its commands (`flowgate scheduler`): its
        reply queue does not fill up, and a dropped connection is re-established (per
        `retry_policy`) while it is idle rather than at its next send."""
        self._drain(timeout)

    def _drain(self, timeout: float) -> None:
        def drain() -> None:
            # Nothing arrived: socket.timeout is TimeoutError.
            with contextlib.suppress(TimeoutError):
                self._connection.drain_events(timeout=timeout)

        self._ensure(drain)

    def _on_reply(self, message: Any) -> None:
        try:
            event = parse_event(message.body, message.delivery_info.get("routing_key", ""))
        except (ValueError, KeyError) as exc:
            log.warning("flowgate client: not an event on %s: %s", self.reply_queue, exc)
        else:
            handle = self._handles.get(event.command_id)
            if handle is not None:
                handle._deliver(event)
        message.ack()

    # --------------------------------------------------------------------- commands

    def send(
        self,
        command: Command,
        *,
        connection: str | None = None,
        deadline: Deadline = None,
        id: str | None = None,
    ) -> Handle:
        """Publish one command, confirmed by RabbitMQ, retried per `retry_policy`; its handle
        holds the command id (generated unless given: sending again with it is safe)."""
        outgoing = prepare(
            command, source=self.source, connection=connection, deadline=deadline, id=id
        )
        handle = Handle(self, outgoing.id, outgoing.command_type)
        self._handles[outgoing.id] = handle

        def publish() -> None:
            assert self._producer is not None
            self._producer.publish(
                outgoing.body,
                exchange=COMMANDS_EXCHANGE,
                routing_key=outgoing.command_type,
                content_type=outgoing.content_type,
                content_encoding="utf-8",
                message_id=outgoing.id,
                reply_to=self.reply_queue,
                user_id=self.user_id,
                delivery_mode=2,
            )

        try:
            self._ensure(publish)
        except (kombu.exceptions.OperationalError, *self._connection.connection_errors) as exc:
            raise PublishFailed(f"{outgoing.command_type} {outgoing.id}: {exc!r}") from exc
        return handle

    # ------------------------------------------------------------------- consumers

    def subscribe(self, *patterns: str, idle_timeout: float | None = None) -> Subscription:
        """Every event whose routing key matches one of `patterns` (default `#`), from an
        exclusive queue of this subscription's own bound to `flowgate.events`: bound before
        this returns, so nothing published afterwards is missed. Each event is acked when the
        loop asks for the next one. Iteration ends after `idle_timeout` seconds without an
        event (never, by default); `close()` it, or use it as a context manager, to stop.
        After a reconnect the queue is declared and consumed again; events published while
        the connection was down are not in it."""
        exchange = Exchange(EVENTS_EXCHANGE, "topic", passive=True)
        queue = Queue(
            private_queue(SUBSCRIBER_QUEUE_PREFIX, self._user),
            exclusive=True,
            auto_delete=True,
            bindings=[binding(exchange, routing_key=p) for p in patterns or ("#",)],
        )
        subscription = Subscription(self, queue, idle_timeout)

        def start() -> None:
            subscription._start(self._channel)
            self._subscriptions[queue.name] = subscription

        self._ensure(start)
        return subscription


class Subscription:
    """`for event in client.subscribe(...)`: see `Client.subscribe`."""

    def __init__(self, client: Client, queue: Queue, idle_timeout: float | None) -> None:
        self._client = client
        self._queue = queue
        self._idle_timeout = idle_timeout
        self._waiting: deque[tuple[Event, Any]] = deque()
        self._consumer: Consumer | None = None
        self._unacked: Any = None
        self._closed = False

    @property
    def queue(self) -> str:
        return str(self._queue.name)

    def _start(self, channel: Any) -> None:
        """Consume on `channel` (again, after a reconnect: the exclusive queue went with the
        old connection, and kombu's Consumer declares it and its bindings first)."""
        self._consumer = Consumer(channel, queues=[self._queue], on_message=self._on_message)
        self._consumer.consume()

    def _on_message(self, message: Any) -> None:
        try:
            event = parse_event(message.body, message.delivery_info.get("routing_key", ""))
        except (ValueError, KeyError) as exc:
            log.warning("flowgate client: not an event: %s", exc)
            message.ack()
        else:
            self._waiting.append((event, message))

    def _ack(self) -> None:
        message, self._unacked = self._unacked, None
        # A message of a connection that has since dropped cannot be acked (its queue went
        # with it): there is nothing left to ack.
        if message is not None and message.channel is self._client._channel:
            message.ack()

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Event:
        if self._closed:
            raise StopIteration
        if self._unacked is not None:
            self._client._ensure(self._ack)
        idle_since = time.monotonic()
        while not self._waiting:
            if (
                self._idle_timeout is not None
                and time.monotonic() - idle_since >= self._idle_timeout
            ):
                self.close()
                raise StopIteration
            self._client._drain(_DRAIN_SLICE)
        event, self._unacked = self._waiting.popleft()
        return event

    def close(self) -> None:
        """Stop consuming; the exclusive queue is deleted with the consumer."""
        if self._closed:
            return
        self._closed = True
        self._client._subscriptions.pop(self.queue, None)
        consumer = self._consumer
        if consumer is not None:
            try:
                self._client._ensure(consumer.cancel)
            except Exception:  # the connection is going: the exclusive queue goes with it
                log.debug("flowgate client: cancelling a subscription", exc_info=True)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
