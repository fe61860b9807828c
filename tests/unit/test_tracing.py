"""Traces (`workers/tracing.py`) over the whole system on the in-memory broker and the
simulators, recorded by the SDK's InMemorySpanExporter: a command's traceparent continues
through consume, its vendor calls (sent to the vendor as a `traceparent` header), each poll
and each publish, and every event's traceparent is a child span of the command's. Off, nothing
is recorded and events carry the command's own traceparent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts import encode_command
from tests.unit.test_memory_flow import Memory, memory_system
from workers import tracing
from workers.broker.base import OutgoingMessage
from workers.demo import SAMPLE_COMMANDS
from workers.settings import load_settings
from workers.topology import COMMANDS_EXCHANGE

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


async def send(
    system: Memory,
    command_type: str,
    traceparent: str | None,
    tracestate: str | None = None,
) -> str:
    command_id = str(uuid.uuid4())
    body, content_type = encode_command(
        command_type, SAMPLE_COMMANDS[command_type], command_id=command_id
    )
    headers: dict[str, Any] = {"traceparent": traceparent} if traceparent else {}
    if tracestate:
        headers["tracestate"] = tracestate
    message = OutgoingMessage(
        body=body, content_type=content_type, headers=headers, message_id=command_id
    )
    await system.broker.publish(COMMANDS_EXCHANGE, command_type, message)
    return command_id


def hexed(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return hexed(span.context.span_id, 16)


def parent_id(span: ReadableSpan) -> str | None:
    return hexed(span.parent.span_id, 16) if span.parent is not None else None


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_commands_trace_continues_through_flowgate(
    spans: InMemorySpanExporter,
) -> None:
    async with memory_system(run_seconds=0.6) as system:
        command_id = await send(system, "trigger-batch", TRACEPARENT, "vendor=abc")
        await system.settled([command_id])
    recorded = list(spans.get_finished_spans())
    for span in recorded:
        assert span.context is not None
        assert hexed(span.context.trace_id, 32) == TRACE_ID, span.name
    [consume] = named(recorded, "consume trigger-batch")
    assert parent_id(consume) == PARENT_ID and consume.kind is SpanKind.CONSUMER
    assert consume.attributes is not None
    assert consume.attributes["flowgate.command_id"] == command_id
    assert consume.attributes["flowgate.outcome"] == "accepted"
    assert consume.attributes["messaging.system"] == "rabbitmq"
    assert consume.attributes["messaging.destination.name"] == "flowgate.cmd.trigger-batch"
    assert consume.attributes["flowgate.attempt"] == 1
    assert "flowgate.error_kind" not in consume.attributes
    assert consume.context is not None and consume.context.trace_state.get("vendor") == "abc"
    by_id = {span_id(s): s for s in recorded}
    # The vendor calls of the trigger are the consume span's children ...
    for name in ("pbsm token", "pbsm trigger"):
        [call] = named(recorded, name)
        assert parent_id(call) == span_id(consume) and call.kind is SpanKind.CLIENT
    # ... and each poll's status call is its poll's, each poll under the consume span.
    polls = named(recorded, "poll trigger-batch")
    assert len(polls) >= 2
    assert {parent_id(p) for p in polls} == {span_id(consume)}
    for status in named(recorded, "pbsm status"):
        assert by_id[parent_id(status) or ""].name == "poll trigger-batch"
    # The vendor received each call's own span as its parent.
    ledger = system.sims.ledger
    sent = [e.headers.get("traceparent") for e in ledger.entries("pbsm.trigger")]
    assert sent == [f"00-{TRACE_ID}-{span_id(named(recorded, 'pbsm trigger')[0])}-01"]
    statuses = {f"00-{TRACE_ID}-{span_id(s)}-01" for s in named(recorded, "pbsm status")}
    assert {e.headers.get("traceparent") for e in ledger.entries("pbsm.status")} == statuses
    # Every event's traceparent is its publish span, a child of the consume or a poll span.
    events = system.events.by_command[command_id]
    kinds = [e["type"].rsplit(".", 1)[1] for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "succeeded"
    for event in events:
        _, trace_id, event_parent, _ = event["traceparent"].split("-")
        assert trace_id == TRACE_ID
        publish = by_id[event_parent]
        assert publish.kind is SpanKind.PRODUCER
        assert publish.name == f"publish {event['_routing_key']}"
        parent = by_id[parent_id(publish) or ""]
        assert parent.name in ("consume trigger-batch", "poll trigger-batch")


async def test_a_command_without_a_traceparent_starts_one_trace(
    spans: InMemorySpanExporter,
) -> None:
    async with memory_system(run_seconds=0.3) as system:
        command_id = await send(system, "run-partner", None)
        await system.settled([command_id])
    recorded = list(spans.get_finished_spans())
    [consume] = named(recorded, "consume run-partner")
    assert consume.parent is None and consume.context is not None
    trace_id = consume.context.trace_id
    assert {s.context.trace_id for s in recorded if s.context is not None} == {trace_id}
    assert named(recorded, "poll run-partner")
    for event in system.events.by_command[command_id]:
        assert event["traceparent"].split("-")[1] == hexed(trace_id, 32)


async def test_off_nothing_is_recorded_and_events_carry_the_commands_traceparent() -> None:
    assert not tracing.active()
    async with memory_system(run_seconds=0.3) as system:
        command_id = await send(system, "start-process", TRACEPARENT)
        await system.settled([command_id])
    assert {e["traceparent"] for e in system.events.by_command[command_id]} == {TRACEPARENT}
    for entry in system.sims.ledger.entries():
        assert "traceparent" not in entry.headers


def test_the_readme_example_turns_tracing_on_and_stop_turns_it_off(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [example] = [b for b in re.findall(r"```toml\n(.*?)```", readme, flags=re.S) if "tracing" in b]
    config = tmp_path / "flowgate.toml"
    config.write_text(example)
    settings = load_settings(config)
    assert settings.tracing.enabled and settings.log_format == "json"
    assert tracing.configure(load_settings().tracing, "worker") is None, "off by default"
    stop = tracing.configure(settings.tracing, "worker")
    assert stop is not None and tracing.active()
    stop()
    assert not tracing.active()


async def test_a_failed_commands_span_says_its_error_kind(spans: InMemorySpanExporter) -> None:
    from workers.simulators import Fault

    async with memory_system(run_seconds=0.3) as system:
        system.sims.inject(Fault(route="pbsm.trigger", status=400, times=1))
        command_id = await send(system, "trigger-batch", TRACEPARENT)
        await system.settled([command_id])
    [consume] = named(list(spans.get_finished_spans()), "consume trigger-batch")
    assert consume.attributes is not None
    assert consume.attributes["flowgate.outcome"] == "failed"
    assert consume.attributes["flowgate.error_kind"] == "rejected"
    assert not consume.status.is_ok
