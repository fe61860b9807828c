"""The wire contract: CloudEvents decoding/encoding, command models, schema drift, isolation."""

from __future__ import annotations

import ast
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import contracts
from contracts import (
    ContractError,
    EventData,
    EventKind,
    InputLimits,
    StartProcess,
    TriggerBatch,
    decode_command,
    encode_command,
    encode_event,
    event_id,
)
from contracts.schema import SCHEMA_DIR, render_all

PARTNER = {"partner_name": "ACME", "direction": "inbound"}
STRUCTURED = "application/cloudevents+json"


def structured(ce_type: str, data: Any, *, cid: str = "cmd-1", **extra: Any) -> bytes:
    event = {"specversion": "1.0", "id": cid, "source": "urn:test", "type": ce_type}
    return json.dumps({**event, **extra, "data": data}).encode()


def decode(body: bytes, routing_key: str = "run-partner", **kwargs: Any) -> Any:
    kwargs.setdefault("content_type", STRUCTURED)
    kwargs.setdefault("headers", {})
    return decode_command(body, routing_key=routing_key, **kwargs)


def refused(body: bytes, routing_key: str = "run-partner", **kwargs: Any) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode(body, routing_key, **kwargs)
    return info.value


def test_structured_mode_decodes_and_normalises_direction() -> None:
    body, content_type = encode_command("run-partner", PARTNER, command_id="c-7", connection="p")
    env = decode(body, content_type=content_type)
    assert (env.id, env.type, env.connection) == ("c-7", "run-partner", "p")
    assert env.data.direction == "INBOUND"
    assert env.deadline is None


@pytest.mark.parametrize("as_bytes", [False, True])
def test_binary_mode_reads_ce_headers_and_json_body(as_bytes: bool) -> None:
    headers: dict[str, Any] = {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "urn:test",
        "ce-type": "flowgate.trigger-batch",
        "ce-connection": "prod",
    }
    if as_bytes:
        headers = {k: v.encode() for k, v in headers.items()}
    body = json.dumps({"batch": "B1", "params": {"$X$": "1"}}).encode()
    env = decode(body, "trigger-batch", content_type="application/json", headers=headers)
    assert (env.id, env.connection, env.source) == ("bin-1", "prod", "urn:test")
    assert isinstance(env.data, TriggerBatch)
    assert env.data.params == {"$X$": "1"}


def test_partner_name_allows_backslash_and_quote_refuses_angle_brackets() -> None:
    name = 'ACME "EU" \\ EDI'
    env = decode(structured("flowgate.run-partner", {**PARTNER, "partner_name": name}))
    assert env.data.partner_name == name
    for bad in ("<script>", "a>b"):
        err = refused(structured("flowgate.run-partner", {**PARTNER, "partner_name": bad}))
        assert "partner_name" in err.message
        assert err.command_id == "cmd-1"


def test_type_routing_key_mismatch_names_both() -> None:
    err = refused(structured("flowgate.run-partner", PARTNER), "trigger-batch")
    assert "flowgate.run-partner" in err.message and "trigger-batch" in err.message
    assert err.command_id == "cmd-1"


@pytest.mark.parametrize("ce_type", ["flowgate.launch-rocket", "other.run-partner", "run-partner"])
def test_unknown_type_refused_with_id(ce_type: str) -> None:
    err = refused(structured(ce_type, PARTNER))
    assert "unknown command type" in err.message
    assert err.command_id == "cmd-1"


def test_missing_required_fields_are_listed() -> None:
    err = refused(structured("flowgate.add-paylink", {"business_id": "PR"}), "add-paylink")
    for name in ("order_id", "payment_link"):
        assert f"data.{name}" in err.message
    assert err.command_type == "add-paylink"


@pytest.mark.parametrize("data", [[1, 2], "text", 5])
def test_data_must_be_an_object(data: Any) -> None:
    err = refused(structured("flowgate.run-partner", data))
    assert "JSON object" in err.message
    assert err.command_id == "cmd-1"
    # The type is known by then: without it the `failed` event goes out as `unknown.failed`.
    assert err.command_type == "run-partner"


def test_deadline_is_aware_and_bad_deadline_carries_id() -> None:
    body = structured("flowgate.run-partner", PARTNER, deadline="2030-01-02T03:04:05Z")
    deadline = decode(body).deadline
    assert deadline == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert deadline.tzinfo is not None
    when = datetime.now(UTC) + timedelta(hours=1)
    body, _ = encode_command("run-partner", PARTNER, deadline=when)
    assert decode(body).deadline == when
    err = refused(structured("flowgate.run-partner", PARTNER, deadline="next tuesday"))
    assert "deadline" in err.message and err.command_id == "cmd-1"


def test_body_over_max_bytes_refused_with_header_id() -> None:
    limits = InputLimits(max_bytes=2048)
    body = structured("flowgate.run-partner", {**PARTNER, "input_parameters": {"x": "y" * 4096}})
    headers = {"ce-id": b"big-1"}
    err = refused(body, limits=limits, content_type="application/json", headers=headers)
    assert "2048" in err.message and err.command_id == "big-1"


def test_data_deeper_than_max_depth_refused_with_id() -> None:
    deep: Any = "leaf"
    for _ in range(10):
        deep = {"k": deep}
    body = structured("flowgate.start-process", {"process_name": "P", "values": deep})
    err = refused(body, "start-process", limits=InputLimits(max_depth=5))
    assert "nested deeper than 5" in err.message and err.command_id == "cmd-1"
    env = decode(body, "start-process", limits=InputLimits(max_depth=20))
    assert env.data.process_name == "P"


def test_traceparent_from_amqp_header_wins() -> None:
    body = structured("flowgate.run-partner", PARTNER, traceparent="00-ext-00")
    assert decode(body).traceparent == "00-ext-00"
    env = decode(body, headers={"traceparent": b"00-amqp-01", "tracestate": "k=v"})
    assert (env.traceparent, env.tracestate) == ("00-amqp-01", "k=v")


def test_encode_event_is_a_cloudevent_with_deterministic_id() -> None:
    data = EventData(command_id="c-9", command_type="trigger-batch", connection="prod")
    event = json.loads(encode_event(EventKind.SUCCEEDED, data, traceparent="00-t"))
    assert event["specversion"] == "1.0"
    assert event["type"] == "flowgate.trigger-batch.succeeded"
    assert event["subject"] == "c-9"
    assert event["source"] == "urn:flowgate:prod"
    assert event["traceparent"] == "00-t"
    assert event["data"]["command_id"] == "c-9"
    assert event["id"] == event_id("c-9", EventKind.SUCCEEDED)
    uuid.UUID(event["id"])
    again = json.loads(encode_event(EventKind.SUCCEEDED, data))
    assert again["id"] == event["id"]
    ids = {event_id("c-9", kind) for kind in EventKind}
    assert len(ids) == len(EventKind)
    assert event_id("c-9", EventKind.PROGRESS, "1") != event_id("c-9", EventKind.PROGRESS, "2")
    assert event_id("c-9", EventKind.FAILED) != event_id("c-10", EventKind.FAILED)


def test_trigger_batch_params_rules() -> None:
    TriggerBatch(batch="B", params={"a": "1"})
    TriggerBatch(batch="G", group=True, group_params=[{"batch": "B", "params": {"a": "1"}}])
    with pytest.raises(ValidationError, match="group_params, not params"):
        TriggerBatch(batch="G", group=True, params={"a": "1"})
    with pytest.raises(ValidationError, match="group_params needs group"):
        TriggerBatch(batch="B", group_params=[{"batch": "B"}])


def test_start_process_schedule_rules() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    good = {
        "quartz_cron": "0 0 * * * ?",
        "start": start,
        "end": start + timedelta(days=1),
        "retry_count": 0,
    }
    assert StartProcess(process_name="P", schedule=good).schedule is not None
    for end in (start, start - timedelta(seconds=1)):
        with pytest.raises(ValidationError, match="end must be after"):
            StartProcess(process_name="P", schedule={**good, "end": end})
    with pytest.raises(ValidationError, match="timezone"):
        StartProcess(process_name="P", schedule={**good, "start": datetime(2030, 1, 1)})


SCHEDULE = {
    "quartz_cron": "0 6 6 ? * FRI",
    "start": "2030-11-16T16:56:00Z",
    "end": "2030-11-18T16:55:00Z",
    "retry_count": 1,
}


@pytest.mark.parametrize("missing", ["quartz_cron", "start", "end", "retry_count"])
def test_a_schedule_needs_all_four_of_robustas_starred_fields(missing: str) -> None:
    # Robusta's document stars quartzDef, startDate, endDate and retryCount for a scheduled run.
    schedule = {k: v for k, v in SCHEDULE.items() if k != missing}
    data = {"process_name": "P", "schedule": schedule}
    err = refused(structured("flowgate.start-process", data), "start-process")
    assert f"data.schedule.{missing}: Field required" in err.message
    assert err.command_id == "cmd-1"


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 6 6 ? * FR", "field 6 (day-of-week) 'FR': 'FR' is not 1-7 (1 = SUN) or SUN-SAT"),
        ("0 0 12 * *", "a Quartz cron expression has 6 or 7 fields"),
        ("0 0 12 * * *", "must be '?'"),
    ],
)
def test_a_bad_quartz_cron_is_refused_with_the_reason(cron: str, reason: str) -> None:
    data = {"process_name": "P", "schedule": {**SCHEDULE, "quartz_cron": cron}}
    err = refused(structured("flowgate.start-process", data), "start-process")
    assert err.message.startswith("data.schedule.quartz_cron: Value error, ")
    assert reason in err.message


def test_run_flags_not_given_are_none() -> None:
    # "Not said": the Robusta handler decides (Y without a schedule, N with one).
    process = StartProcess(process_name="P", schedule=SCHEDULE)
    assert (process.run_once, process.run_immediately) == (None, None)
    said = StartProcess(process_name="P", run_once=True, run_immediately=False)
    assert (said.run_once, said.run_immediately) == (True, False)


def test_committed_schemas_match_models() -> None:
    rendered = render_all()
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert sorted(committed) == sorted(rendered), "schema files added or missing"
    stale = [name for name, text in rendered.items() if committed[name] != text]
    assert not stale, f"run `python -m contracts.schema`: {stale} drifted"


def test_contracts_imports_nothing_from_workers() -> None:
    package = Path(contracts.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "workers"]
    assert offenders == []
    assert len(list(package.rglob("*.py"))) >= 5


def test_an_rfc3339_deadline_in_lower_case_is_read() -> None:
    """RFC 3339 (5.6) allows `t` and `z` in lower case; `datetime.fromisoformat` does not."""
    from datetime import UTC, datetime

    from contracts import decode_command, encode_command

    body, content_type = encode_command("trigger-batch", {"batch": "B1"}, command_id="c-z")
    event = json.loads(body)
    event["deadline"] = "2030-01-02t03:04:05z"
    envelope = decode_command(
        json.dumps(event).encode(),
        content_type=content_type,
        headers={},
        routing_key="trigger-batch",
    )
    assert envelope.deadline == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
