"""The client SDKs without a broker: typed commands in, the wire message out, events parsed,
outcomes raised, and the package importable without the worker or its dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts import (
    AddPaylink,
    ErrorInfo,
    ErrorKind,
    EventData,
    EventKind,
    GroupBatchParams,
    TriggerBatch,
    decode_command,
    encode_event,
)
from flowgate_client import (
    CommandCancelled,
    CommandFailed,
    Event,
    ResultTimeout,
    parse_event,
)
from flowgate_client._common import outcome, prepare

WORKER_ONLY = (
    "workers",
    "httpx",
    "httpx_aiohttp",
    "redis",
    "hiredis",
    "starlette",
    "uvicorn",
    "uvloop",
    "pydantic_settings",
    "celery",
    "rich",
)


def test_the_client_imports_nothing_of_the_worker() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import flowgate_client, flowgate_client.aio, flowgate_client.sync
        from contracts import TriggerBatch
        loaded = sorted({{name.split(".")[0] for name in sys.modules}})
        print(",".join(n for n in loaded if n in {WORKER_ONLY!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "", f"worker-only modules imported: {done.stdout}"


def test_an_invalid_command_fails_at_construction_with_pydantics_message() -> None:
    with pytest.raises(ValidationError, match="batch\n  String should have at least 1 character"):
        TriggerBatch(batch="")
    with pytest.raises(ValidationError, match="a batch group takes group_params, not params"):
        TriggerBatch(batch="G1", group=True, params={"a": "b"})


def test_prepare_writes_the_command_flowgate_reads() -> None:
    command = TriggerBatch(batch="B2001", params={"$FICMISDATE$": "2026-11-21"})
    deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    out = prepare(command, source="urn:test", connection="prod", deadline=deadline, id="c-1")
    assert (out.id, out.command_type) == ("c-1", "trigger-batch")
    decoded = decode_command(
        out.body, content_type=out.content_type, headers={}, routing_key="trigger-batch"
    )
    assert decoded.id == "c-1" and decoded.connection == "prod"
    assert decoded.deadline == deadline
    assert decoded.data == command
    # Only what the publisher set goes on the wire: defaults stay the worker's.
    assert json.loads(out.body)["data"] == {
        "batch": "B2001",
        "params": {"$FICMISDATE$": "2026-11-21"},
    }


def test_prepare_generates_an_id_and_takes_a_relative_deadline() -> None:
    before = datetime.now(UTC)
    out = prepare(
        AddPaylink.model_validate(AddPaylink.example),
        source="urn:test",
        deadline=timedelta(hours=2),
    )
    other = prepare(AddPaylink.model_validate(AddPaylink.example), source="urn:test")
    assert out.id != other.id and len(out.id) == 36
    deadline = datetime.fromisoformat(json.loads(out.body)["deadline"].replace("Z", "+00:00"))
    assert timedelta(hours=2) <= deadline - before < timedelta(hours=2, minutes=1)


@pytest.mark.parametrize(
    "not_a_command", [{"batch": "B2001"}, GroupBatchParams(batch="B1")], ids=["dict", "part"]
)
def test_prepare_takes_only_command_models(not_a_command: object) -> None:
    with pytest.raises(TypeError, match="command model"):
        prepare(not_a_command, source="urn:test")  # type: ignore[arg-type]


def test_a_naive_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare(TriggerBatch(batch="B1"), source="urn:test", deadline=datetime(2030, 1, 1))


def _event(kind: EventKind, **fields: object) -> Event:
    base = {"command_id": "c-1", "command_type": "trigger-batch", "connection": "default"}
    data = EventData.model_validate({**base, **fields})
    return parse_event(encode_event(kind, data), f"trigger-batch.{kind.value}")


def test_events_parse_typed() -> None:
    event = _event(EventKind.PROGRESS, status="RUNNING", vendor_ref={"batch_run_id": "r1"})
    assert event.kind is EventKind.PROGRESS and not event.terminal
    assert event.command_id == "c-1" and event.data.status == "RUNNING"
    assert event.routing_key == "trigger-batch.progress"
    assert event.raw["subject"] == "c-1"
    with pytest.raises(ValueError):
        parse_event(b'{"type": "something.else"}')


def test_outcome_returns_success_and_raises_the_rest() -> None:
    succeeded = _event(EventKind.SUCCEEDED, status="SUCCESSFUL")
    assert outcome(succeeded) is succeeded
    error = ErrorInfo(kind=ErrorKind.VENDOR_FAILED, message="batch failed", vendor_code="-1")
    with pytest.raises(CommandFailed) as failed:
        outcome(_event(EventKind.FAILED, error=error))
    assert failed.value.kind is ErrorKind.VENDOR_FAILED
    assert failed.value.error.vendor_code == "-1"
    assert "vendor_failed" in str(failed.value) and "batch failed" in str(failed.value)
    with pytest.raises(CommandCancelled) as cancelled:
        outcome(_event(EventKind.CANCELLED, status="INTERRUPTED"))
    assert cancelled.value.event.data.status == "INTERRUPTED"


def test_result_timeout_is_a_timeout_error() -> None:
    assert issubclass(ResultTimeout, TimeoutError)
