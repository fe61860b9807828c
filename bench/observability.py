"""`python -m bench.observability`: what metrics, log lines and traces cost a message.

One command settled the way a worker settles a followed one: the settler binds it, the handler
makes one vendor call (httpx over a MockTransport: no socket) and publishes `accepted` (to a
broker that keeps nothing), the settler records how it settled it and acks. Timed in rounds of
`-n` messages, the variants interleaved so machine noise hits each alike; the best round of
each is reported, in microseconds of CPU per message:

    bare          every instrumentation hook replaced by a no-op: the code before this change
    metrics       as shipped, logging at WARNING (no line written), tracing off
    + json logs   the same, logging at INFO as JSON lines to /dev/null (3 lines a message)
    + tracing     metrics, and tracing on: an SDK provider with a no-op exporter

Needs nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from contracts import EventData, EventKind
from workers import logs, publisher, settlement, tracing
from workers.broker.base import OutgoingMessage
from workers.broker.memory import MemoryBroker
from workers.idempotency import MemoryStore
from workers.metrics import Metrics, installed
from workers.outcome import Done
from workers.publisher import Context, Publisher
from workers.runtime import Outcomes
from workers.settlement import Answer, Settler, Work
from workers.vendors import _http
from workers.vendors._http import Calling, call

__all__ = ["main"]


class _NullBroker(MemoryBroker):
    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        return None


class _Delivery:
    """A delivery that only counts its ack."""

    body = b"{}"
    content_type = "application/cloudevents+json"
    headers: dict[str, Any] = {}
    routing_key = "trigger-batch"
    exchange = "flowgate.commands"
    message_id = "m"
    reply_to = None
    user_id = None
    redelivered = False
    delivery_count = 0
    settled = False
    lost = False

    async def ack(self) -> None:
        self.settled = True


class _NoExport(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextlib.contextmanager
def _bare() -> Iterator[None]:
    """Every hook this change added, made a no-op (the `workers` code as it was)."""
    saved = (
        settlement._observe,
        publisher._logged,
        _http._measured,
        logs.bind,
        logs.unbind,
        tracing.span,
    )
    settlement._observe = lambda *a, **k: None
    publisher._logged = lambda *a, **k: None
    _http._measured = lambda *a, **k: None
    logs.bind = lambda *a, **k: None  # type: ignore[assignment]
    logs.unbind = lambda *a, **k: None
    tracing.span = lambda *a, **k: contextlib.nullcontext()
    try:
        yield
    finally:
        (
            settlement._observe,
            publisher._logged,
            _http._measured,
            logs.bind,
            logs.unbind,
            tracing.span,
        ) = saved


@contextlib.contextmanager
def _logging(level: int) -> Iterator[None]:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    with open(os.devnull, "w") as sink:
        logs.configure(logging.getLevelName(level), "json", stream=sink, force=True)
        try:
            yield
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in before[0]:
                root.addHandler(handler)
            root.setLevel(before[1])


@contextlib.contextmanager
def _traced() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_NoExport()))
    tracing.enable(provider)
    try:
        yield
    finally:
        tracing.disable()
        provider.shutdown()


async def _round(n: int, settler: Settler, http: httpx.AsyncClient) -> float:
    context = Context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    data = EventData(
        command_id="c", command_type="trigger-batch", connection="default", vendor_ref={"r": "1"}
    )

    async def handler(work: Work) -> Done:
        work.answer = Answer("c", "trigger-batch", "default", context)
        work.trace("consume trigger-batch", context.traceparent, None)
        with Calling("pbsm", "trigger"):
            await call(http, http.build_request("POST", "http://pbsm/run"), what="PBSM run")
        await settler._publisher.event(EventKind.ACCEPTED, data, context=context)
        work.outcome = "accepted"
        return Done()

    started = time.process_time()
    for _ in range(n):
        work = Work(_Delivery(), "flowgate.cmd.trigger-batch")  # type: ignore[arg-type]
        await settler.run(work, handler)
    return (time.process_time() - started) / n * 1e6


async def _main(n: int, rounds: int) -> None:
    settler = Settler(Outcomes(MemoryStore(), Publisher(_NullBroker())))
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"id": 1}))
    variants: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
        "bare (no instrumentation)": _bare,
        "metrics (logging at WARNING, tracing off)": lambda: _logging(logging.WARNING),
        "metrics + JSON log lines (INFO, to /dev/null)": lambda: _logging(logging.INFO),
        "metrics + tracing (SDK, no-op exporter)": lambda: _stacked(
            _logging(logging.WARNING), _traced()
        ),
    }
    best = dict.fromkeys(variants, float("inf"))
    async with httpx.AsyncClient(transport=transport) as http:
        with installed(Metrics()):
            await _round(min(n, 500), settler, http)  # warm up
            for _ in range(rounds):
                for name, variant in variants.items():
                    with variant():
                        best[name] = min(best[name], await _round(n, settler, http))
    bare = best["bare (no instrumentation)"]
    print(f"| settle path, one vendor call and one event ({n:,} x {rounds}) | CPU per message |")
    print("|---|---|")
    for name, micros in best.items():
        extra = "" if name.startswith("bare") else f" (+{micros - bare:.1f} us)"
        print(f"| {name} | {micros:.1f} us{extra} |")


@contextlib.contextmanager
def _stacked(*managers: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("-n", type=int, default=5_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(_main(args.n, args.rounds))


if __name__ == "__main__":
    main()
