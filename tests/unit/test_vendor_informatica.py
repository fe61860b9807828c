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


def task(status: str, files: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"eventType": "Task Level Event", "eventStatus": status, "isErrorStatus": False,
            "isFinalStatus": True, "fileEvents": [{"eventId": f} for f in files]}  # fmt: skip


def file(status: str, error: bool = False) -> dict[str, Any]:
    return {"eventType": "File Level Event", "eventStatus": status, "isErrorStatus": error,
            "parentEventId": "7638", "fileName": "in.xml"}  # fmt: skip


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


async def test_follows_task_then_file_events_to_success() -> None:
    table = {
        "7638": [task("Processing"), task("Complete", ("7640", "7641"))],
        "7640": [file("Complete")],
        "7641": [file("Processing"), file("Complete")],
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
    assert [e["eventId"] for e in third.result["file_events"]] == ["7640", "7641"]
    assert third.result["task_event"]["fileEvents"] == [{"eventId": "7640"}, {"eventId": "7641"}]
    asked = [r.url.path.rsplit("/", 1)[-1] for r in seen]
    assert asked == ["7638", "7638", "7640", "7641", "7641"]
    assert all(str(r.url).startswith(STATUS_URL) and r.method == "GET" for r in seen)
    assert all(r.headers["authorization"].startswith("Basic ") for r in seen)


async def test_failed_task_event_fails_the_run() -> None:
    adapter, _ = make(events({"7638": [task("System Error", ("7640",))]}))

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert (report.state, report.status) == ("failed", "System Error")
    assert report.message is not None and "task event 7638" in report.message
    assert report.result["file_events"] == []


@pytest.mark.parametrize(("fail_on_file_error", "state"), [(True, "failed"), (False, "succeeded")])
async def test_file_error_status_follows_the_setting(fail_on_file_error: bool, state: str) -> None:
    table = {"7638": [task("Complete", ("7640",))], "7640": [file("Warning", error=True)]}
    adapter, _ = make(events(table), fail_on_file_error=fail_on_file_error)

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert report.state == state
    if state == "failed":
        assert report.message is not None and "file event 7640 (in.xml)" in report.message


async def test_failed_file_event_fails_without_waiting_for_the_others() -> None:
    table = {
        "7638": [task("Complete", ("7640", "7641"))],
        "7640": [file("Error")],
        "7641": [file("Processing")],
    }
    adapter, _ = make(events(table))

    report = await adapter.status({"event_id": "7638"}, cursor={})

    assert report.state == "failed"
    assert report.message == "file event 7640 (in.xml) ended with status Error"


async def test_custom_statuses_per_connection() -> None:
    table = {"1": [task("Archived", ("2",))], "2": [file("Quarantined")], "3": [task("Archived")]}
    adapter, _ = make(
        events(table),
        final_statuses=["Complete", "Archived"],
        failure_statuses=["Error", "Quarantined"],
    )

    assert (await adapter.status({"event_id": "3"}, cursor={})).state == "succeeded"
    report = await adapter.status({"event_id": "1"}, cursor={})
    assert (report.state, report.status) == ("failed", "Archived")
    # Only the connection's lists decide: "Complete" is not final where it is not listed.
    other, _ = make(events({"4": [task("Complete")]}), final_statuses=["Archived"])
    assert (await other.status({"event_id": "4"}, cursor={})).state == "running"


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
