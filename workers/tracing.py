"""Traces: OpenTelemetry spans for what flowgate does with a command, off unless enabled.

With `tracing.enabled` (`configure`, at the entry point), a command's W3C `traceparent`
continues through flowgate:

    consume <type>     the worker taking the command, child of the command's traceparent
      <vendor> <op>    each vendor HTTP call (trigger, status, cancel, token), which carries
                       its own `traceparent` header to the vendor
      publish <key>    each event; the event's `traceparent` is this span's, a child of the
                       command's
    poll <type>        each status call of a followed run (the poll request carries the consume
                       span's context), with its vendor calls and events below it

Off (the default), nothing is created: each place that would open a span pays one check of
a module global and gets a shared do-nothing context manager; events carry the command's own
traceparent, as they always did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from workers.settings import TracingSettings

__all__ = ["Scope", "active", "begin", "carried", "configure", "disable", "enable", "span"]

_PROPAGATOR = TraceContextTextMapPropagator()
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()

# The tracer while tracing is on; None is the whole of "off".
_tracer: trace.Tracer | None = None

Attributes = Mapping[str, str | int | float | bool]


def enable(provider: trace.TracerProvider) -> None:
    """Record spans on `provider` (tests give one with an in-memory exporter)."""
    global _tracer
    _tracer = provider.get_tracer("flowgate")


def disable() -> None:
    global _tracer
    _tracer = None


def active() -> bool:
    return _tracer is not None


def configure(settings: TracingSettings, role: str) -> Callable[[], None] | None:
    """Tracing as the settings say, for a process of `role`: the function that flushes and
    stops it at exit, or None when it is off."""
    if not settings.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    name = settings.service_name or f"flowgate-{role}"
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    # Batched, in a thread of its own: a span costs the message a queue append, never a send.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint)))
    enable(provider)

    def stop() -> None:
        disable()
        provider.shutdown()

    return stop


def _parent(traceparent: str | None, tracestate: str | None) -> otel_context.Context:
    """The context whose span is the remote `traceparent`; an empty one (a new trace) without."""
    if not traceparent:
        return otel_context.Context()
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())


def _in_span() -> bool:
    return trace.get_current_span().get_span_context().is_valid


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    traceparent: str | None = None,
    tracestate: str | None = None,
    remote: bool = False,
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """A span as the current one for the block (None when tracing is off). Its parent is the
    current span; with `remote`, the given `traceparent` instead (a new trace without one)."""
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    parent = _parent(traceparent, tracestate) if remote else None
    return tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes)


def carried(traceparent: str | None, tracestate: str | None) -> tuple[str | None, str | None]:
    """What to send on: the current span's trace context while tracing is on and there is one,
    else the given one, unchanged."""
    if _tracer is None or not _in_span():
        return traceparent, tracestate
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", traceparent), carrier.get("tracestate", tracestate)


@contextlib.contextmanager
def _publishing(
    name: str, traceparent: str | None, tracestate: str | None
) -> Iterator[tuple[str | None, str | None]]:
    # Under the consume or poll span when there is one, else under the command's own context.
    with span(
        name,
        kind=SpanKind.PRODUCER,
        traceparent=traceparent,
        tracestate=tracestate,
        remote=not _in_span(),
        attributes={"messaging.system": "rabbitmq", "messaging.operation.type": "send"},
    ):
        yield carried(traceparent, tracestate)


def publishing(
    name: str, traceparent: str | None, tracestate: str | None
) -> contextlib.AbstractContextManager[tuple[str | None, str | None]]:
    """A publish span for the block, yielding the trace context the message carries: the
    span's while tracing is on, the given one otherwise."""
    if _tracer is None:
        return contextlib.nullcontext((traceparent, tracestate))
    return _publishing(name, traceparent, tracestate)


class Scope:
    """A span left open beyond one block (a command's consume span ends when its message is
    settled): current from `begin` until `end`, which must run in the same task."""

    def __init__(self, opened: trace.Span, token: Any) -> None:
        self._span = opened
        self._token = token

    def end(self, outcome: str | None, error_kind: str = "") -> None:
        if outcome:
            self._span.set_attribute("flowgate.outcome", outcome)
        if error_kind:
            self._span.set_attribute("flowgate.error_kind", error_kind)
            self._span.set_status(StatusCode.ERROR, error_kind)
        otel_context.detach(self._token)
        self._span.end()


def begin(
    name: str,
    traceparent: str | None,
    tracestate: str | None,
    *,
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Attributes | None = None,
) -> Scope | None:
    """Open a span under the remote `traceparent` and make it current; None when off."""
    tracer = _tracer
    if tracer is None:
        return None
    opened = tracer.start_span(
        name, context=_parent(traceparent, tracestate), kind=kind, attributes=attributes
    )
    token = otel_context.attach(trace.set_span_in_context(opened))
    return Scope(opened, token)
