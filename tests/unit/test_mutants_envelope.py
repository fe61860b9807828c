"""The envelope's promises that the mutation run (scripts/mutation, TESTING.md) found untested.

- Decoding never raises anything but `ContractError`, whatever the bytes: undecodable header
  bytes, lists inside the data, a CloudEvents library failure with or without text.
- Every refusal says what is wrong, exactly, and carries the id to answer to: the body's `id`,
  else the `ce-id` header, else the AMQP message id (never an invented one); and the command
  type (the event's own when it has one, else the routing key's) and the replayed id when the
  envelope names them.
- The limits are limits: a body of exactly `max_bytes`, data exactly `max_depth` deep, pass.
- Only CloudEvents 1.0 is spoken; a command without an id is refused in either mode, even when
  its body has one.
- Times: a deadline without an offset is UTC, one with an offset keeps it.
- Binary-mode data is read as XML (the json-to-xml form) under any XML media type, whatever
  its case and parameters, and only then.
- What is read is what was sent: time, connection (None when absent), trace context from the
  AMQP headers or else the envelope, the replayed id.
- Written commands and events carry every attribute they were given (`tracestate`, `replayof`,
  a `Z` deadline), a fresh UUID when no id is given, and event data in JSON form.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from contracts import (
    ContractError,
    EventData,
    EventKind,
    InputLimits,
    decode_command,
    encode_command,
    encode_event,
    event_id,
)

STRUCTURED = "application/cloudevents+json"
BATCH = {"batch": "B2001", "params": {"$X$": "1"}}


def body_of(data: Any = None, **attributes: Any) -> bytes:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "cmd-1",
        "source": "urn:test",
        "type": "flowgate.trigger-batch",
        "data": BATCH if data is None else data,
    }
    event.update(attributes)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()


def decode(body: bytes, routing_key: str = "trigger-batch", **kwargs: Any) -> Any:
    kwargs.setdefault("content_type", STRUCTURED)
    kwargs.setdefault("headers", {})
    return decode_command(body, routing_key=routing_key, **kwargs)


def refused(body: bytes, routing_key: str = "trigger-batch", **kwargs: Any) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode(body, routing_key, **kwargs)
    return info.value


def binary_headers(**extra: Any) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "urn:test",
        "ce-type": "flowgate.trigger-batch",
    }
    headers.update(extra)
    return {k: v for k, v in headers.items() if v is not None}


# --- ContractError --------------------------------------------------------------------------------


def test_a_contract_error_reads_as_its_message_and_names_nothing_it_was_not_told() -> None:
    exc = ContractError("bad", command_id="c", command_type="add-paylink")
    assert str(exc) == "bad" == exc.message
    assert (exc.command_id, exc.command_type, exc.replayof) == ("c", "add-paylink", None)
    assert ContractError("x").replayof is None


# --- only ContractError, whatever the input -------------------------------------------------------


def test_header_bytes_that_are_not_utf8_are_read_not_raised() -> None:
    headers = binary_headers(**{"ce-id": b"bin-\xff", "ce-connection": b"eu-\xfe"})
    env = decode(json.dumps(BATCH).encode(), content_type="application/json", headers=headers)
    assert env.id == "bin-\ufffd"
    assert env.connection == "eu-\ufffd"


def test_lists_inside_the_data_are_counted_not_a_crash() -> None:
    data = {"process_name": "P", "values": {"rows": [[1, [2, [3]]], {"k": [4]}]}}
    env = decode(body_of(data, type="flowgate.start-process"), "start-process")
    assert env.data.process_name == "P"
    # values(2) > rows(3) > [..](4) > [2, ..](5) > [3](6): six levels.
    assert decode(
        body_of(data, type="flowgate.start-process"),
        "start-process",
        limits=InputLimits(max_depth=6),
    )
    err = refused(
        body_of(data, type="flowgate.start-process"),
        "start-process",
        limits=InputLimits(max_depth=5),
    )
    assert err.message == "data is nested deeper than 5 levels"


def test_a_failure_of_the_cloudevents_library_without_text_is_named_by_its_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Odd(Exception):
        pass

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise Odd()

    monkeypatch.setattr("contracts.envelope.rabbitmq.from_rabbitmq", broken)
    err = refused(body_of())
    assert err.message == "not a valid CloudEvent: Odd"
    assert err.command_id == "cmd-1"


# --- what a refusal says, and to whom -------------------------------------------------------------


def test_a_body_that_is_not_json_is_answered_to_its_ce_id_header_then_its_message_id() -> None:
    body = b"{not json"
    err = refused(body, headers={"ce-id": "h-1"}, message_id="m-1")
    assert err.message == (
        "body is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))"
    )
    assert err.command_id == "h-1"
    assert refused(body, message_id="m-1").command_id == "m-1"
    assert refused(body).command_id is None
    assert refused(body, headers={"ce-id": ""}, message_id="").command_id is None


def test_a_body_nested_too_deeply_is_refused_with_its_header_id() -> None:
    err = refused(b"[" * 100_000 + b"]" * 100_000, message_id="m-1")
    assert (err.message, err.command_id) == ("body is nested too deeply", "m-1")


def test_binary_data_nested_too_deeply_is_refused_with_its_id() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    err = refused(body, content_type="application/json", headers=binary_headers())
    assert (err.message, err.command_id) == ("body is nested too deeply", "bin-1")


def test_a_structured_command_that_is_not_an_object_is_refused_with_its_header_id() -> None:
    err = refused(b"[1, 2]", message_id="m-1")
    assert err.message == "a structured-mode command must be a JSON object"
    assert err.command_id == "m-1"


@pytest.mark.parametrize("found", [None, 5, ""], ids=["absent", "not-a-string", "empty"])
def test_a_command_without_a_usable_id_is_answered_to_its_message_id(found: object) -> None:
    event = json.loads(body_of())
    event["id"] = found
    err = refused(
        json.dumps({k: v for k, v in event.items() if v is not None}).encode(), message_id="m-1"
    )
    assert err.message == (
        "missing id: structured mode needs an `id` attribute, binary mode a `ce-id` header"
    )
    assert err.command_id == "m-1"


def test_the_body_id_wins_over_the_header_ids() -> None:
    err = refused(body_of(specversion=None), headers={"ce-id": "h-1"}, message_id="m-1")
    assert err.message == (
        "missing specversion (structured mode needs content type application/cloudevents+json "
        "and a `specversion` attribute; binary mode a `ce-specversion` header)"
    )
    assert err.command_id == "cmd-1"


@pytest.mark.parametrize(
    ("body", "answer_to"),
    [
        (body_of(), "cmd-1"),  # a structured command sent with the wrong content type
        (body_of(id=None), "m-1"),
        (b'{"id": 5}', "m-1"),
        (b"[1]", "m-1"),
        (b"\xff not json", "m-1"),
        (b"[" * 100_000 + b"]" * 100_000, "m-1"),
    ],
    ids=["body-id", "no-body-id", "id-not-a-string", "not-an-object", "not-json", "deep"],
)
def test_a_binary_command_without_ce_id_is_refused_and_answered_as_well_as_can_be(
    body: bytes, answer_to: str
) -> None:
    err = refused(body, content_type="application/json", headers={}, message_id="m-1")
    assert err.message.startswith("missing id:")
    assert err.command_id == answer_to


def test_a_binary_command_without_specversion_is_refused_with_its_ce_id() -> None:
    headers = binary_headers(**{"ce-specversion": None})
    err = refused(json.dumps(BATCH).encode(), content_type="application/json", headers=headers)
    assert err.message.startswith("missing specversion")
    assert err.command_id == "bin-1"


def test_only_cloudevents_1_0_is_spoken() -> None:
    err = refused(body_of(specversion="0.3"))
    assert err.message.startswith("not a valid CloudEvent: ")
    assert "specversion" in err.message
    assert err.command_id == "cmd-1"


def test_a_cloudevents_library_refusal_is_quoted_by_its_first_line_cut_at_300() -> None:
    err = refused(body_of(source=None, type=None, data=None), message_id="m-1")
    prefix = "not a valid CloudEvent: "
    assert err.message.startswith(prefix + "Failed to create CloudEvent")
    assert "source" in err.message
    assert len(err.message) == len(prefix) + 300
    assert "\n" not in err.message
    assert err.command_id == "cmd-1"


def test_an_error_names_the_routing_keys_type_when_the_message_could_not() -> None:
    assert refused(b"{not json", "add-paylink").command_type == "add-paylink"
    assert refused(b"{not json", "no-such-type").command_type is None
    # When the event names its type, that one stands even if it is not the routing key's.
    err = refused(body_of(type="flowgate.run-partner"), "trigger-batch")
    assert err.command_type == "run-partner"


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (
            "a string",
            STRUCTURED,
            "data must be a JSON object (binary mode needs content type application/json, "
            "or application/xml for the json-to-xml form)",
        ),
        ([1, 2], STRUCTURED, "data must be a JSON object"),
    ],
    ids=["text", "list"],
)
def test_data_that_is_not_an_object_is_refused_saying_so(
    data: Any, content_type: str, message: str
) -> None:
    err = refused(body_of(data, replayof="old-1"), content_type=content_type)
    assert err.message == message
    assert (err.command_id, err.command_type, err.replayof) == ("cmd-1", "trigger-batch", "old-1")


def test_a_refused_replay_names_the_replayed_id() -> None:
    assert refused(body_of({"nope": 1}, replayof="old-1")).replayof == "old-1"
    assert refused(body_of({"nope": 1})).replayof is None


def test_validation_problems_are_listed_separated_and_at_most_five() -> None:
    err = refused(body_of({"business_id": "PR"}, type="flowgate.add-paylink"), "add-paylink")
    assert err.message == "data.order_id: Field required; data.payment_link: Field required"
    many = {**BATCH, **{f"x{i}": i for i in range(1, 8)}}
    err = refused(body_of(many))
    parts = err.message.split("; ")
    assert len(parts) == 5
    assert parts[0] == "data.x1: Extra inputs are not permitted"


def test_a_problem_deep_in_the_data_is_located_by_its_path() -> None:
    err = refused(body_of({"batch": "G", "group": True, "group_params": [{"params": {}}]}))
    assert err.message == "data.group_params.0.batch: Field required"


def test_a_rule_across_fields_is_reported_on_the_data() -> None:
    err = refused(body_of({"batch": "G", "group": True, "params": {"a": "1"}}))
    assert err.message == "data: Value error, a batch group takes group_params, not params"


def test_a_bad_deadline_is_named_in_the_refusal() -> None:
    err = refused(body_of(deadline="next tuesday"))
    assert err.message == "deadline is not an RFC 3339 time"
    assert err.command_id == "cmd-1"


# --- limits ---------------------------------------------------------------------------------------


def test_a_body_of_exactly_the_size_limit_passes_one_byte_more_does_not() -> None:
    body = body_of()
    assert decode(body, limits=InputLimits(max_bytes=len(body))).id == "cmd-1"
    err = refused(body, limits=InputLimits(max_bytes=len(body) - 1), headers={}, message_id="m-1")
    assert err.message == f"message is {len(body)} bytes, over the {len(body) - 1}-byte limit"
    assert err.command_id == "m-1"


def test_data_exactly_as_deep_as_the_limit_passes() -> None:
    data = {"process_name": "P", "values": {"a": {"b": "leaf"}}}  # three levels
    body = body_of(data, type="flowgate.start-process")
    assert decode(body, "start-process", limits=InputLimits(max_depth=3))
    err = refused(body, "start-process", limits=InputLimits(max_depth=2))
    assert err.message == "data is nested deeper than 2 levels"


# --- what is read ---------------------------------------------------------------------------------


def test_a_deadline_without_offset_is_utc_and_an_offset_is_kept() -> None:
    naive = decode(body_of(deadline="2030-01-02T03:04:05")).deadline
    assert naive == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC) and naive.tzinfo is not None
    offset = decode(body_of(deadline="2030-01-02T03:04:05+02:00")).deadline
    assert offset.utcoffset() == timedelta(hours=2)
    assert offset == datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC)


def test_what_the_envelope_says_is_what_is_read() -> None:
    env = decode(
        body_of(
            time="2030-01-02T03:04:05Z",
            tracestate="from=envelope",
            traceparent="00-envelope-01",
            replayof="old-1",
        )
    )
    assert env.time == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (env.tracestate, env.traceparent, env.replayof) == (
        "from=envelope",
        "00-envelope-01",
        "old-1",
    )
    assert env.connection is None, "no connection named: the vendor's default serves it"
    plain = decode(body_of())
    assert (plain.tracestate, plain.traceparent, plain.replayof) == (None, None, None)


def test_a_binary_command_is_read_from_its_headers() -> None:
    headers = binary_headers(**{"ce-replayof": "old-2", "ce-time": "2030-01-02T03:04:05Z"})
    env = decode(json.dumps(BATCH).encode(), content_type="application/json", headers=headers)
    assert (env.id, env.replayof) == ("bin-1", "old-2")
    assert env.time == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- what is written ------------------------------------------------------------------------------


def test_a_written_command_carries_what_it_was_given() -> None:
    deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    body, content_type = encode_command(
        "trigger-batch", BATCH, command_id="c-1", deadline=deadline, replayof="old-1"
    )
    raw = json.loads(body)
    assert content_type == STRUCTURED
    assert raw["deadline"] == "2030-01-02T03:04:05Z"
    assert raw["replayof"] == "old-1"
    assert raw["source"] == "urn:flowgate:cli"
    env = decode(body)
    assert (env.id, env.replayof, env.deadline, env.source) == (
        "c-1",
        "old-1",
        deadline,
        "urn:flowgate:cli",
    )
    other = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    again, _ = encode_command("trigger-batch", BATCH, deadline=other)
    assert json.loads(again)["deadline"] == "2030-01-02T03:04:05+02:00"


def test_a_written_command_without_an_id_gets_a_fresh_uuid() -> None:
    ids = {json.loads(encode_command("trigger-batch", BATCH)[0])["id"] for _ in range(3)}
    assert len(ids) == 3
    for found in ids:
        assert str(uuid.UUID(found)) == found


def test_a_written_event_carries_its_trace_state_and_replayed_id() -> None:
    data = EventData(command_id="c-9", command_type="trigger-batch", connection="prod")
    event = json.loads(
        encode_event(
            EventKind.PROGRESS,
            data,
            discriminator="3",
            traceparent="00-t",
            tracestate="k=v",
            replayof="old-1",
        )
    )
    assert (event["traceparent"], event["tracestate"], event["replayof"]) == (
        "00-t",
        "k=v",
        "old-1",
    )
    assert event["id"] == event_id("c-9", EventKind.PROGRESS, "3")
    assert event["id"] != event_id("c-9", EventKind.PROGRESS)
    plain = json.loads(encode_event(EventKind.SUCCEEDED, data))
    assert "tracestate" not in plain and "replayof" not in plain


def test_event_data_is_written_in_its_json_form() -> None:
    result = {"amount": Decimal("1.50"), "run": uuid.UUID(int=1), "on": datetime(2030, 1, 2).date()}
    data = EventData(
        command_id="c-9", command_type="trigger-batch", connection="prod", result=result
    )
    event = json.loads(encode_event(EventKind.SUCCEEDED, data))
    assert event["data"]["result"] == {
        "amount": "1.50",
        "run": "00000000-0000-0000-0000-000000000001",
        "on": "2030-01-02",
    }


XML_BATCH = (
    b'<map xmlns="http://www.w3.org/2005/xpath-functions"><string key="batch">B2001</string>'
    b'<map key="params"><string key="$X$">1</string></map></map>'
)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/xml",
        "text/xml",
        "TEXT/XML; charset=utf-8",
        "application/vnd.acme+xml",
        "application/vnd.acme+XML",
        "application/xml; charset=utf-8; version=1",
    ],
)
def test_binary_data_is_read_as_xml_under_any_xml_media_type(content_type: str) -> None:
    env = decode(XML_BATCH, content_type=content_type, headers=binary_headers())
    assert (env.data.batch, env.data.params) == ("B2001", {"$X$": "1"})


def test_xml_data_under_a_json_media_type_is_refused() -> None:
    err = refused(XML_BATCH, content_type="application/json", headers=binary_headers())
    assert err.message.startswith("data must be a JSON object")
