"""Property-based fuzzing of the command worker's input path.

Every hypothesis case is one delivery handed straight to the worker's handler (the code that
`flowgate worker` runs per message), with an in-memory broker that records what the worker
published and an in-process simulator for the valid commands that reach a vendor. For every
case: the handler returns normally, the delivery is acked exactly once (never requeued, never
rejected), and invalid input ends as a dead letter with an `x-flowgate-reason` plus a `failed`
event of kind `invalid` for the command id whenever one can be read. Valid commands may go on
to their vendor (an `accepted` or terminal event) instead.

Cases: raw bytes (incl. non-UTF-8), JSON that is not a CloudEvent, CloudEvents with random
data, wrong content types, bodies over 1 MiB, nesting 10-5000 deep, missing or odd ids, types
that do not match the routing key, binary mode with random `ce-` headers, and valid commands.

    FLOWGATE_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/unit/test_fuzz.py -q
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import COMMAND_TYPES
from tests.conftest import fast_settings
from workers.app import Flowgate
from workers.broker.base import OutgoingMessage
from workers.broker.memory import MemoryBroker
from workers.idempotency import MemoryStore
from workers.settlement import Work
from workers.simulators import SimulatorConfig, Simulators, serve
from workers.topology import (
    DEAD_EXCHANGE,
    DELAY_EXCHANGE,
    EVENTS_EXCHANGE,
    UNROUTED_QUEUE,
    command_queue,
)

EXAMPLES = int(os.environ.get("FLOWGATE_FUZZ_EXAMPLES", "500"))
# The fuzzer found that a command without an id ran under an id the CloudEvents SDK invents;
# fixed, and pinned by `test_command_without_id_is_refused`.
KNOWN_INVENTED_ID = False
MAX_BYTES = 1024 * 1024
TYPES = sorted(COMMAND_TYPES)
T = TypeVar("T")

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("FLOWGATE_FUZZ_SEED") is None and EXAMPLES <= 500,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)


# --- the system under test ---------------------------------------------------------------


class RecordingBroker(MemoryBroker):
    """A MemoryBroker that also keeps every publish, so each case can see what it produced."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, str, OutgoingMessage]] = []

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        self.published.append((exchange, routing_key, message))
        await super().publish(exchange, routing_key, message)


@dataclass
class FakeDelivery:
    """A delivery as `AmqpBroker` hands it over, recording how it was settled."""

    body: bytes
    content_type: str | None
    headers: Mapping[str, Any]
    routing_key: str
    exchange: str = "flowgate.commands"
    message_id: str | None = None
    reply_to: str | None = None
    user_id: str | None = None
    redelivered: bool = False
    delivery_count: int = 0
    settlements: list[str] = field(default_factory=list)
    lost: bool = False

    @property
    def settled(self) -> bool:
        return bool(self.settlements)

    async def ack(self) -> None:
        self.settlements.append("ack")

    async def requeue(self) -> None:
        self.settlements.append("requeue")

    async def reject(self) -> None:
        self.settlements.append("reject")


class Loop:
    """flowgate (worker role, memory broker and store) and the simulators on an event loop in a
    thread of their own, so hypothesis drives plain synchronous cases."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.done: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)


@dataclass
class System:
    app: Flowgate
    broker: RecordingBroker


@pytest.fixture(scope="module")
def system() -> Iterator[tuple[Loop, System]]:
    runner = Loop()
    runner.thread.start()
    started: Future[System] = Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        config = SimulatorConfig()
        for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
            vendor.run_seconds = 30
        async with serve(Simulators(config)) as sims:
            broker = RecordingBroker()
            app = Flowgate(
                fast_settings("amqp://unused/", sims.base_url), broker, store=MemoryStore()
            )
            await app.connect()  # declares the topology; nobody consumes: we call the handler
            stop.append(asyncio.Event())
            started.set_result(System(app, broker))
            await stop[0].wait()
            await app.stop()
            await broker.close()

    task = asyncio.run_coroutine_threadsafe(main(), runner.loop)
    system_ = started.result(30)
    try:
        yield runner, system_
    finally:
        runner.loop.call_soon_threadsafe(stop[0].set)
        task.result(30)
        runner.loop.call_soon_threadsafe(runner.loop.stop)
        runner.thread.join(10)
        runner.loop.close()


# --- strategies ----------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
content_types = st.sampled_from(
    [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "application/json",
        "application/cloudevents-batch+json",
        "text/plain",
        "application/xml",
        "application/octet-stream",
        None,
        "",
    ]
) | st.text(max_size=40)
header_values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
)
ids = st.one_of(
    st.uuids().map(str),
    st.text(min_size=1, max_size=40),
    st.just(""),
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@dataclass(frozen=True)
class Case:
    routing_key: str
    body: bytes
    content_type: str | None
    headers: dict[str, Any]
    # True: well formed (it may reach the vendor); False: must be refused; None: either.
    valid: bool | None = False
    note: str = ""

    def __repr__(self) -> str:  # huge bodies must not flood the failure report
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return (
            f"Case({self.note}, rk={self.routing_key!r}, ct={self.content_type!r}, "
            f"headers={self.headers!r}, body[{len(self.body)}]={body!r})"
        )


def _envelope(cid: Any, ce_type: str, data: Any, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": cid,
        "source": "urn:fuzz",
        "type": ce_type,
        "datacontenttype": "application/json",
        "data": data,
    }
    event.update(extra)
    return event


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def valid_data(draw: st.DrawFn, command_type: str) -> dict[str, Any]:
    word = st.text(st.characters(codec="utf-8", exclude_characters="<>"), min_size=1, max_size=20)
    ident = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
    params = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
    if command_type == "trigger-batch":
        if draw(st.booleans()):
            return {"batch": draw(word), "params": draw(params)}
        group = st.fixed_dictionaries({"batch": word, "params": params})
        return {
            "batch": draw(word),
            "group": True,
            "group_params": draw(st.lists(group, max_size=2)),
        }
    if command_type == "run-partner":
        return {
            "partner_name": draw(word),
            "direction": draw(st.sampled_from(["INBOUND", "outbound", "Outbound"])),
            "input_parameters": draw(params),
        }
    if command_type == "start-process":
        return {
            "process_name": draw(word),
            "values": draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
        }
    return {
        "business_id": draw(st.sampled_from(["PR", "JM", "XX"]) | ident),
        "order_id": draw(ident),
        "payment_link": draw(word),
    }


@st.composite
def valid_commands(draw: st.DrawFn) -> Case:
    command_type = draw(st.sampled_from(TYPES))
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["connection"] = draw(st.sampled_from(["default", "nope"]) | st.text(max_size=8))
    event = _envelope(
        str(uuid.uuid4()), f"flowgate.{command_type}", draw(valid_data(command_type)), **extra
    )
    return Case(
        command_type, _dumps(event), "application/cloudevents+json", {}, valid=True, note="valid"
    )


@st.composite
def raw_bytes(draw: st.DrawFn) -> Case:
    body = draw(st.binary(max_size=512))
    if draw(st.booleans()):
        body = b"\xff\xfe\xc3\x28" + body  # never UTF-8
    return Case(draw(st.sampled_from(TYPES)), body, draw(content_types), {}, note="bytes")


@st.composite
def json_not_cloudevents(draw: st.DrawFn) -> Case:
    return Case(
        draw(st.sampled_from(TYPES)),
        _dumps(draw(json_values)),
        draw(content_types),
        {},
        note="json",
    )


@st.composite
def cloudevents_random(draw: st.DrawFn) -> Case:
    """A CloudEvent whose attributes and data are drawn: wrong, missing or odd in every way."""
    routing_key = draw(st.sampled_from(TYPES))
    ce_type = draw(
        st.sampled_from([f"flowgate.{t}" for t in TYPES] + ["flowgate.nope", "other.type", ""])
        | st.text(max_size=20)
    )
    data = draw(json_values | valid_data(routing_key))
    event = _envelope(draw(ids), ce_type, data)
    for attribute in draw(
        st.lists(st.sampled_from(["id", "specversion", "source", "type", "data"]), max_size=2)
    ):
        event.pop(attribute, None)  # missing attributes, missing id among them
    if draw(st.booleans()):
        event["specversion"] = draw(st.sampled_from(["0.3", "2.0", 1]) | st.text(max_size=4))
    extensions = st.fixed_dictionaries(
        {},
        optional={
            "connection": json_values,
            "deadline": st.sampled_from(["2000-01-01T00:00:00Z", "soon", "9999-12-31T23:59:59Z"])
            | json_values,
            "time": st.text(max_size=20) | json_values,
            "traceparent": st.text(max_size=60),
            "datacontenttype": content_types,
            "data_base64": st.text(max_size=20),
        },
    )
    event.update(draw(extensions))
    return Case(routing_key, _dumps(event), draw(content_types), {}, valid=None, note="ce")


@st.composite
def huge(draw: st.DrawFn) -> Case:
    size = draw(st.integers(min_value=MAX_BYTES + 1, max_value=MAX_BYTES + 300_000))
    routing_key = draw(st.sampled_from(TYPES))
    cid = str(uuid.uuid4())
    body = _dumps(_envelope(cid, f"flowgate.{routing_key}", {"batch": ""}))
    body = body.replace(b'"batch": ""', b'"batch": "' + b"x" * size + b'"')
    headers = {"ce-id": cid} if draw(st.booleans()) else {}
    return Case(routing_key, body, "application/cloudevents+json", headers, note="huge")


@st.composite
def deep(draw: st.DrawFn) -> Case:
    depth = draw(st.integers(min_value=10, max_value=5000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = opener * depth + "1" + closer * depth
    routing_key = draw(st.sampled_from(TYPES))
    where = draw(st.sampled_from(["body", "data", "values", "params"]))
    cid = str(uuid.uuid4())
    if where == "body":
        text = nested
    else:
        data = {
            "data": nested,
            "values": '{"process_name": "p", "values": {"v": ' + nested + "}}",
            "params": '{"batch": "b", "params": {"p": ' + nested + "}}",
        }[where]
        text = (
            '{"specversion": "1.0", "id": "' + cid + '", "source": "urn:fuzz", '
            f'"type": "flowgate.{routing_key}", "datacontenttype": "application/json", '
            f'"data": {data}}}'
        )
    return Case(
        routing_key,
        text.encode(),
        "application/cloudevents+json",
        {},
        # Shallow enough `values` (any JSON, within the 32-level limit) is a valid command.
        valid=None if where == "values" and depth + 2 <= 32 else False,
        note=f"deep-{where}",
    )


@st.composite
def mismatched_type(draw: st.DrawFn) -> Case:
    command_type, routing_key = draw(st.permutations(TYPES))[:2]
    event = _envelope(str(uuid.uuid4()), f"flowgate.{command_type}", draw(valid_data(command_type)))
    return Case(routing_key, _dumps(event), "application/cloudevents+json", {}, note="mismatch")


@st.composite
def binary_mode(draw: st.DrawFn) -> Case:
    routing_key = draw(st.sampled_from(TYPES))
    headers: dict[str, Any] = {
        "ce-specversion": draw(st.sampled_from(["1.0", "0.3", ""]) | header_values),
        "ce-id": draw(st.uuids().map(str) | header_values),
        "ce-source": draw(st.just("urn:fuzz") | header_values),
        "ce-type": draw(st.sampled_from([f"flowgate.{t}" for t in TYPES]) | header_values),
    }
    for name in draw(st.lists(st.sampled_from(list(headers)), max_size=2)):
        headers.pop(name, None)
    headers.update(
        draw(
            st.dictionaries(
                st.sampled_from(["ce-time", "ce-connection", "ce-deadline", "ce-subject", "ce-x"])
                | st.text(max_size=10).map(lambda s: "ce-" + s),
                header_values,
                max_size=3,
            )
        )
    )
    body = draw(
        st.binary(max_size=200) | json_values.map(_dumps) | valid_data(routing_key).map(_dumps)
    )
    return Case(routing_key, body, draw(content_types), headers, valid=None, note="binary")


@st.composite
def odd_headers(draw: st.DrawFn) -> Case:
    """An invalid command with flowgate's own headers set by a stranger."""
    routing_key = draw(st.sampled_from(TYPES))
    event = _envelope(str(uuid.uuid4()), f"flowgate.{routing_key}", {"unexpected": True})
    # Non-finite numbers and forged delay-ladder headers once crashed or parked a command
    # (pinned by the regression tests below).
    numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(
        min_value=-(2**63), max_value=2**63 - 1
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "x-flowgate-attempt": header_values | numbers,
        "x-flowgate-due": header_values | numbers,
        "traceparent": header_values,
        "tracestate": header_values,
        "x-delivery-count": header_values,
    }
    optional["x-first-death-queue"] = st.sampled_from(["flowgate.delay.250", "elsewhere"])
    headers = draw(st.fixed_dictionaries({}, optional=optional))
    return Case(routing_key, _dumps(event), "application/cloudevents+json", headers, note="headers")


cases = st.one_of(
    raw_bytes(),
    json_not_cloudevents(),
    cloudevents_random(),
    huge(),
    deep(),
    mismatched_type(),
    binary_mode(),
    odd_headers(),
    valid_commands(),
)


# --- the property ----------------------------------------------------------------------------


def readable_ids(case: Case) -> set[str]:
    """Ids a reader could take from the message: the `ce-id` header, or a structured body's id."""
    found: set[str] = set()
    ce_id = next((v for k, v in case.headers.items() if k.lower() == "ce-id"), None)
    if ce_id is not None and ce_id != "":
        found.add(ce_id if isinstance(ce_id, str) else str(ce_id))
    if len(case.body) <= MAX_BYTES:
        # Parsed on a fresh thread: how deep json.loads can go depends on the caller's stack,
        # and the worker decodes on a shallow one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            try:
                parsed = pool.submit(json.loads, case.body).result()
            except (ValueError, RecursionError):
                parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("id"), str) and parsed["id"]:
            found.add(parsed["id"])
    return found


async def _handle(system: System, case: Case, unrouted: bool) -> tuple[FakeDelivery, list[Any]]:
    system.broker.published.clear()
    delivery = FakeDelivery(case.body, case.content_type, dict(case.headers), case.routing_key)
    if unrouted:
        work = Work(delivery, UNROUTED_QUEUE)
        await system.app.settler.run(work, system.app.worker.handle_unrouted)
    else:
        work = Work(delivery, command_queue(case.routing_key))
        handler = functools.partial(system.app.worker.handle, command_type=case.routing_key)
        await system.app.settler.run(work, handler)
    return delivery, list(system.broker.published)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """Thousands of refusals are logged as warnings: keep them out of the captured output."""
    logger = logging.getLogger("flowgate")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def check(system: tuple[Loop, System], case: Case, unrouted: bool = False) -> None:
    runner, sut = system
    # The handler must return normally: an exception here is the worker dying on input.
    delivery, published = runner.run(_handle(sut, case, unrouted))
    assert delivery.settlements == ["ack"], f"settled {delivery.settlements}, want one ack"
    events = [json.loads(m.body) for exchange, _, m in published if exchange == EVENTS_EXCHANGE]
    dead = [m for exchange, _, m in published if exchange == DEAD_EXCHANGE]
    # The settler answers a bug too (failed/internal): on input, that is the worker failing.
    internal = [m for m in dead if m.headers.get("x-flowgate-error-kind") == "internal"]
    assert internal == [], f"a bug on input: {[m.headers.get('x-flowgate-reason') for m in dead]}"
    for letter in dead:
        assert letter.headers.get("x-flowgate-reason"), letter.headers
        assert letter.body == case.body, "a dead letter keeps the input byte for byte"
    failed_invalid = [
        e
        for e in events
        if e["type"].endswith(".failed") and e["data"]["error"]["kind"] == "invalid"
    ]
    refused_dead = [m for m in dead if m.headers.get("x-flowgate-error-kind") == "invalid"]
    ids = readable_ids(case)
    if ids or not KNOWN_INVENTED_ID:
        # Every answer is about the id the sender wrote, never one made up on the way.
        for event in events:
            assert event["data"]["command_id"] in ids, f"answer about an unknown id: {event}"
    if failed_invalid or refused_dead or case.valid is False:
        # Refused: a dead letter with its reason, and the answer when an id can be read.
        assert len(dead) == 1, f"want one dead letter, got {len(dead)}; events {events}"
        assert [e for e in events if not e["type"].endswith(".failed")] == []
        if ids:
            assert len(failed_invalid) == 1, f"no failed/invalid event for {ids}: {events}"
            assert failed_invalid[0]["data"]["command_id"] in ids
        elif not KNOWN_INVENTED_ID:
            assert events == [], "an answer to nobody"
    else:
        # A valid command went on to its vendor: answered (accepted, or a terminal event), or
        # parked for a retry.
        delayed = [m for exchange, _, m in published if exchange == DELAY_EXCHANGE]
        assert events or delayed, "a valid command produced nothing"


@FUZZ
@given(case=cases)
def test_worker_survives_and_answers_every_input(system: tuple[Loop, System], case: Case) -> None:
    check(system, case)


@FUZZ
@given(case=st.one_of(raw_bytes(), cloudevents_random(), binary_mode()), key=st.text(max_size=30))
def test_unrouted_input_is_answered(system: tuple[Loop, System], case: Case, key: str) -> None:
    case = Case(key, case.body, case.content_type, case.headers, valid=False, note=case.note)
    check(system, case, unrouted=True)


# --- regressions: bugs this fuzzer found, fixed, and kept fixed ---------------------------


def _plain(system: tuple[Loop, System], case: Case) -> tuple[FakeDelivery, list[Any]]:
    runner, sut = system
    return runner.run(_handle(sut, case, unrouted=False))


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_command_without_id_is_refused(system: tuple[Loop, System], mode: str) -> None:
    """A command with no id must be refused: the CloudEvents SDK makes up a UUID4 for it, so
    every redelivery would get a new id and idempotency (one trigger per id) is lost."""
    data = {"business_id": "PR", "order_id": "O1", "payment_link": "https://p/1"}
    if mode == "structured":
        event = _envelope(None, "flowgate.add-paylink", data)
        del event["id"]
        case = Case("add-paylink", _dumps(event), "application/cloudevents+json", {})
    else:
        headers = {"ce-specversion": "1.0", "ce-source": "urn:x", "ce-type": "flowgate.add-paylink"}
        case = Case("add-paylink", _dumps(data), "application/json", headers)
    delivery, published = _plain(system, case)
    assert delivery.settlements == ["ack"]
    kinds = [json.loads(m.body)["type"] for e, _, m in published if e == EVENTS_EXCHANGE]
    assert kinds == [], f"answered about an id the sender never wrote: {kinds}"
    dead = [m for e, _, m in published if e == DEAD_EXCHANGE]
    assert len(dead) == 1 and dead[0].headers.get("x-flowgate-error-kind") == "invalid"


def test_infinite_attempt_header_does_not_crash_the_handler(system: tuple[Loop, System]) -> None:
    event = _envelope(str(uuid.uuid4()), "flowgate.trigger-batch", {"unexpected": True})
    case = Case(
        "trigger-batch",
        _dumps(event),
        "application/cloudevents+json",
        {"x-flowgate-attempt": float("inf")},
    )
    delivery, _ = _plain(system, case)
    assert delivery.settlements == ["ack"]


@pytest.mark.parametrize("due", [float("inf"), float("nan"), 1e300])
def test_forged_due_header_cannot_crash_or_park_a_command(
    system: tuple[Loop, System], due: float
) -> None:
    """`x-flowgate-due` + `x-first-death-queue` are plain headers any publisher can set: a
    non-finite due crashes the handler, a far one parks the command in the delay ladder."""
    event = _envelope(str(uuid.uuid4()), "flowgate.trigger-batch", {"unexpected": True})
    headers = {"x-flowgate-due": due, "x-first-death-queue": "flowgate.delay.250"}
    case = Case("trigger-batch", _dumps(event), "application/cloudevents+json", headers)
    delivery, published = _plain(system, case)
    assert delivery.settlements == ["ack"]
    assert [e for e, _, _ in published if e == DEAD_EXCHANGE], "refused with a dead letter"
