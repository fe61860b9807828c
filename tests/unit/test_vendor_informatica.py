"""Informatica client and adapter against httpx.MockTransport: wire shapes, states, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import workers.vendors.informatica as informatica
from contracts.commands import RunPartner
from workers.errors import VendorError, VendorRejected, VendorUnavailable
from workers.vendors.informatica import (
    InformaticaClient,
    InformaticaConnection,
    RunPartnerHandler,
)

BASE = "http://vendor.test:8700"
SECRET = "s3cr3t-Pa55"
STATUS_URL = BASE + "/b2b-gw/api/v3/event/status/"

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, **settings: Any) -> tuple[RunPartnerHandler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    connection = InformaticaConnection(
        base_url=BASE + "/", username="iics", password=SecretStr(SECRET), timeout=7.5, **settings
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return RunPartnerHandler(InformaticaClient(http, connection)), seen


def events(table: dict[str, list[dict[str, Any]]]) -> Handler:
    """Answers Event Status from `table`: each id's answers in turn, the last one repeated."""

    def handle(request: httpx.Request) -> httpx.Response:
        event_id = request.url.path.rsplit("/", 1)[-1]
        answers = table[event_id]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(200, json={"eventId": event_id, **answer})

    return handle


def task(status: str, files: tuple[dict[str, Any], ...] = (), final: bool = True) -> dict[str, Any]:
    """A task event as the Event Status page documents it; `files` only once it is final."""
    event: dict[str, Any] = {
        "eventType": "Task Level Event", "eventStatus": status, "isErrorStatus": False,
        "isFinalStatus": final, "eventCreationTimestamp": 1763701200123, "partnerName": "P",
        "partnerNumber": "P001", "partnerFileType": "Custom", "direction": "Inbound",
    }  # fmt: skip
    if files:
        event["files"] = list(files)
    return event


def file(
    status: str, event_id: str = "7640", error: bool = False, final: bool = True
) -> dict[str, Any]:
    return {"eventId": event_id, "eventType": "File Level Event", "eventStatus": status,
            "isErrorStatus": error, "isFinalStatus": final, "parentEventId": "7638",
            "eventCreationTimestamp": 1763701201000, "fileName": f"in-{event_id}.xml",
            "messageType": "Custom", "ackCode": "",
            "interchangeControlNumber": "000000001"}  # fmt: skip


async def test_run_partner_sends_the_exact_request() -> None:
    adapter, seen = make(lambda r: httpx.Response(200, json={"eventId": "7638"}))
    command = RunPartner(partner_name='My\\Cust "A"', direction="inbound")

    triggered = await adapter.trigger(command, command_id="c-1")

    assert triggered.vendor_ref == {"event_id": "7638"}
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == BASE + "/b2b-gw/api/v1/partner/run"
    auth = base64.b64encode(f"iics:{SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {auth}"
    assert request.headers["content-type"] == "application/json"
    assert request.extensions["timeout"] == {"connect": 7.5, "read": 7.5, "write": 7.5, "pool": 7.5}
    assert b'"My\\\\Cust \\"A\\""' in request.content  # JSON-escaped backslash and quote
    assert json.loads(request.content) == {"partnerName": 'My\\Cust "A"', "direction": "INBOUND"}


async def test_mapping_parameters_hold_only_non_empty_maps() -> None:
    adapter, seen = make(lambda r: httpx.Response(200, json={"eventId": 42}))
    command = RunPartner(
        partner_name="P",
        direction="OUTBOUND",
        input_parameters={"invoice": "INV-1"},
        session_properties={"Default buffer block size": "18MB"},
    )

    triggered = await adapter.trigger(command, command_id="c-1")

    assert triggered.vendor_ref == {"event_id": "42"}
    assert json.loads(seen[0].content)["mappingParameters"] == {
        "inputParameters": {"invoice": "INV-1"},
        "mctAdvSessionProperties": {"Default buffer block size": "18MB"},
    }


async def test_follows_task_then_each_file_event_by_its_own_id_to_success() -> None:
    listed = (file("Complete", "7640"), file("Processing", "7641", final=False))
    table = {
        "7638": [task("Processing", final=False), task("Complete", listed)],
        "7641": [file("Processing", "7641", final=False), file("Complete", "7641")],
    }
    adapter, seen = make(events(table))
    ref = {"event_id": "7638"}

    first = await adapter.status(ref, cursor={})
    assert (first.state, first.status, first.cursor) == ("running", "Processing", {})

    second = await adapter.status(ref, cursor=first.cursor)
    assert (second.state, second.status) == ("running", "Complete")
    cursor = json.loads(json.dumps(second.cursor))  # JSON-serialisable, as the poller stores it

    third = await adapter.status(ref, cursor=cursor)
    assert third.state == "succeeded"
    assert third.message is None
    files = third.result["file_events"]
    assert [(e["eventId"], e["eventStatus"], e["fileName"]) for e in files] == [
        ("7640", "Complete", "in-7640.xml"),
        ("7641", "Complete", "in-7641.xml"),
    ]
    assert "files" not in third.result["task_event"], "reported once, in file_events"
    # A file event final in the task's listing is not asked again; a pending one is, by id.
    asked = [r.url.path.rsplit("/", 1)[-1] for r in seen]
    assert asked == ["7638", "7638", "7641", "7641"]
    assert all(str(r.url).startswith(STATUS_URL) and r.method == "GET" for r in seen)
    assert all(r.headers["authorization"].startswith("Basic ") for r in seen)


async def test_timestamps_are_rfc3339_in_the_result() -> None:
    adapter, _ = make(events({"7638": [task("Complete", (file("Complete"),))]}))

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert report.result["task_event"]["eventCreationTimestamp"] == "2025-11-21T05:00:00.123Z"
    assert report.result["file_events"][0]["eventCreationTimestamp"] == "2025-11-21T05:00:01.000Z"
    assert report.result["task_event"]["partnerNumber"] == "P001"


async def test_failed_task_event_fails_the_run() -> None:
    adapter, _ = make(events({"7638": [task("System Error", (file("Processing", final=False),))]}))

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert (report.state, report.status) == ("failed", "System Error")
    assert report.message is not None and "task event 7638" in report.message
    assert [e["eventId"] for e in report.result["file_events"]] == ["7640"]


@pytest.mark.parametrize(("fail_on_file_error", "state"), [(True, "failed"), (False, "succeeded")])
async def test_file_error_status_follows_the_setting(fail_on_file_error: bool, state: str) -> None:
    table = {"7638": [task("Complete", (file("Warning", error=True),))]}
    adapter, _ = make(events(table), fail_on_file_error=fail_on_file_error)

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert report.state == state
    if state == "failed":
        assert report.message is not None and "file event 7640 (in-7640.xml)" in report.message


async def test_the_run_ends_when_every_file_is_final_naming_each_file_in_error() -> None:
    listed = (
        file("Error", "7640", error=True),
        file("Processing", "7641", final=False),
        file("Processing", "7642", final=False),
    )
    table = {
        "7638": [task("Complete", listed)],
        "7641": [file("Processing", "7641", final=False), file("Complete", "7641")],
        "7642": [file("System Error", "7642", error=True)],
    }
    adapter, _ = make(events(table))
    ref = {"event_id": "7638"}

    first = await adapter.status(ref, cursor={})
    assert first.state == "running", "a file in error does not end the run while others run"
    report = await adapter.status(ref, cursor=first.cursor)

    assert report.state == "failed"
    assert report.message == (
        "file event 7640 (in-7640.xml) ended in Error; "
        "file event 7642 (in-7642.xml) ended in System Error"
    )
    assert [(e["eventId"], e["eventStatus"]) for e in report.result["file_events"]] == [
        ("7640", "Error"),
        ("7641", "Complete"),
        ("7642", "System Error"),
    ]


async def test_connection_lists_decide_the_statuses_they_name() -> None:
    table = {"1": [task("Archived", (file("Quarantined"),))], "3": [task("Archived")]}
    adapter, _ = make(
        events(table),
        final_statuses=["Complete", "Archived"],
        failure_statuses=["Error", "Quarantined"],
    )

    assert (await adapter.status({"event_id": "3"}, cursor={})).state == "succeeded"
    report = await adapter.status({"event_id": "1"}, cursor={})
    assert (report.state, report.status) == ("failed", "Archived")
    # A listed running status is not final, whatever the vendor's flag says.
    other, _ = make(events({"4": [task("Processing", final=True)]}))
    assert (await other.status({"event_id": "4"}, cursor={})).state == "running"


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        ({"isFinalStatus": False, "isErrorStatus": False}, "running"),
        ({"isFinalStatus": True, "isErrorStatus": False}, "succeeded"),
        ({"isFinalStatus": True, "isErrorStatus": True}, "failed"),
    ],
)
async def test_a_status_no_list_names_follows_the_vendors_flags(
    flags: dict[str, bool], state: str
) -> None:
    """A customer-defined status ("Rejected by Partner") is neither polled until the run's
    maximum duration nor guessed: the vendor's isFinalStatus / isErrorStatus decide."""
    custom = file("Rejected by Partner") | flags
    adapter, _ = make(events({"7638": [task("Complete", (custom,))], "7640": [custom]}))

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert report.state == state


def fail(status: int, body: Any = None, **headers: str) -> Handler:
    return lambda r: httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (fail(400, {"error": {"code": "B2B-400", "message": "bad direction"}}), VendorRejected,
         "Run Partner: HTTP 400: bad direction"),
        (fail(401), VendorRejected, "HTTP 401"),
        (fail(503, {"error": {"message": "busy"}}, **{"Retry-After": "7"}), VendorUnavailable,
         "HTTP 503"),
        (fail(200, {"status": "ok"}), VendorRejected, "answered 200 without an eventId"),
        (fail(200, None), VendorRejected, "without an eventId"),
    ],
)  # fmt: skip
async def test_run_partner_errors(handler: Handler, error: type[VendorError], text: str) -> None:
    adapter, _ = make(handler)

    with pytest.raises(error) as raised:
        await adapter.trigger(RunPartner(partner_name="P", direction="INBOUND"), command_id="c")

    assert text in raised.value.message
    if isinstance(raised.value, VendorUnavailable):
        assert raised.value.retry_after == 7.0
    if raised.value.http_status == 400:
        assert raised.value.vendor_code == "B2B-400"
    assert_no_secret(raised.value)


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (fail(404, {"error": {"code": "404", "message": "unknown event"}}), VendorRejected,
         "Event Status 7638: HTTP 404: unknown event"),
        (fail(200, {"eventId": "7638"}), VendorRejected, "unreadable event (fields: eventStatus)"),
        (fail(502), VendorUnavailable, "HTTP 502"),
    ],
)  # fmt: skip
async def test_event_status_errors(handler: Handler, error: type[VendorError], text: str) -> None:
    adapter, _ = make(handler)

    with pytest.raises(error) as raised:
        await adapter.status({"event_id": "7638"}, cursor={})

    assert text in raised.value.message
    assert_no_secret(raised.value)


async def test_timeout_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    adapter, _ = make(handler)
    with pytest.raises(VendorUnavailable) as raised:
        await adapter.status({"event_id": "7638"}, cursor={})
    assert_no_secret(raised.value)


def assert_no_secret(error: Exception) -> None:
    encoded = base64.b64encode(f"iics:{SECRET}".encode()).decode()
    for text in (str(error), repr(error), repr(error.args)):
        assert SECRET not in text and encoded not in text


def test_all_is_sorted_and_exported() -> None:
    names = informatica.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert all(hasattr(informatica, name) for name in names)
