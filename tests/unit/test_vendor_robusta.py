"""Robusta client and adapter against httpx.MockTransport: wire shapes, states, errors."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

import workers.vendors.robusta as robusta
from contracts.commands import ProcessSchedule, StartProcess
from workers.errors import VendorError, VendorRejected, VendorUnavailable
from workers.vendors.robusta import (
    RobustaClient,
    RobustaConnection,
    StartProcessHandler,
    format_date,
    starts_at,
)

BASE = "http://vendor.test:8700"
SECRET = "r0bu5ta-Secret"
SPID = "f0d2228c-9711-42f5-91ca-afc957f29255"

Handler = Callable[[httpx.Request], httpx.Response]


def make(
    handler: Handler, *, clock: Callable[[], float] = time.time, **settings: Any
) -> tuple[StartProcessHandler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    connection = RobustaConnection(
        base_url=BASE, username="rob", password=SecretStr(SECRET), timeout=4.0, **settings
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return StartProcessHandler(RobustaClient(http, connection), clock=clock), seen


def answer(status: int, body: Any = None, **headers: str) -> Handler:
    return lambda r: httpx.Response(status, json=body, headers=headers)


SAVED = answer(200, {"robustaSpid": SPID, "message": "Process saved"})


async def test_start_process_sends_the_exact_request() -> None:
    adapter, seen = make(SAVED)
    command = StartProcess(
        process_name="OneStepNotepadRunner",
        values={"username": "Ada", "surname": 'Love"lace'},
        run_once=False,
    )

    triggered = await adapter.trigger(command, command_id="c-1")

    assert triggered.vendor_ref == {"robusta_spid": SPID}
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == BASE + "/scheduler/connector-API/process/start"
    auth = base64.b64encode(f"rob:{SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {auth}"
    assert request.headers["content-type"] == "application/json"
    assert request.extensions["timeout"]["read"] == 4.0
    assert json.loads(request.content) == {
        "values": {"username": "Ada", "surname": 'Love"lace'},
        "name": "OneStepNotepadRunner",
        "runOnce": "N",
        "runImmediately": "Y",
    }


async def test_scheduled_start_sends_dates_in_the_connection_zone() -> None:
    adapter, seen = make(SAVED, timezone="Europe/Istanbul")
    command = StartProcess(
        process_name="Runner",
        worker="7",
        run_once=False,
        run_immediately=False,
        schedule=ProcessSchedule(
            quartz_cron="0 6 6 ? * FRI",
            start=datetime(2020, 11, 16, 13, 56, tzinfo=UTC),  # 16:56 in Istanbul (UTC+3)
            end=datetime(2020, 11, 18, 13, 55, tzinfo=UTC),
            retry_count=1,
        ),
    )

    await adapter.trigger(command, command_id="c-1")

    assert json.loads(seen[0].content) == {
        "values": {},
        "name": "Runner",
        "worker": "7",
        "runOnce": "N",
        "runImmediately": "N",
        "quartzDef": "0 6 6 ? * FRI",
        "startDate": "2020-11-16 16:56:00",
        "endDate": "2020-11-18 16:55:00",
        "retryCount": "1",
    }


def schedule(start: datetime, **fields: Any) -> ProcessSchedule:
    values: dict[str, Any] = {
        "quartz_cron": "0 6 6 ? * FRI",
        "start": start,
        "end": start + timedelta(days=2),
        "retry_count": 1,
    }
    return ProcessSchedule.model_validate(values | fields)


@pytest.mark.parametrize(
    ("said", "scheduled", "sent"),
    [
        # Not said: as the seed's scheduled example ("runOnce": "N", "run immediately": "N")
        # with a schedule, Y without one (as before).
        ({}, True, ("N", "N")),
        ({}, False, ("Y", "Y")),
        ({"run_once": True}, True, ("Y", "N")),
        ({"run_immediately": True}, True, ("N", "Y")),
        ({"run_once": False, "run_immediately": False}, False, ("N", "N")),
    ],
)
async def test_run_flags_not_said_follow_the_seed_for_a_schedule(
    said: dict[str, bool], scheduled: bool, sent: tuple[str, str]
) -> None:
    adapter, seen = make(SAVED)
    plan = schedule(datetime(2020, 11, 16, 16, 56, tzinfo=UTC)) if scheduled else None
    await adapter.trigger(StartProcess(process_name="R", schedule=plan, **said), command_id="c-1")

    body = json.loads(seen[0].content)
    assert (body["runOnce"], body["runImmediately"]) == sent
    assert ("quartzDef" in body) is scheduled


NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(moment: datetime) -> Callable[[], float]:
    return lambda: moment.timestamp()


async def test_a_scheduled_process_hours_away_is_followed_from_its_start() -> None:
    adapter, seen = make(SAVED, clock=at(NOW))
    start = NOW + timedelta(hours=5)

    triggered = await adapter.trigger(
        StartProcess(process_name="R", schedule=schedule(start)), command_id="c-1"
    )

    assert triggered.starts_at == start.timestamp()
    assert json.loads(seen[0].content)["startDate"] == "2026-03-01 14:00:00"


@pytest.mark.parametrize(
    ("start", "said"),
    [
        (NOW - timedelta(hours=1), {}),  # its start has passed: it may be running already
        (NOW, {}),
        (NOW + timedelta(hours=5), {"run_immediately": True}),  # asked to run now
    ],
)
async def test_a_process_that_may_run_now_is_followed_at_once(
    start: datetime, said: dict[str, bool]
) -> None:
    adapter, _ = make(SAVED, clock=at(NOW))

    scheduled = await adapter.trigger(
        StartProcess(process_name="R", schedule=schedule(start), **said), command_id="c"
    )
    unscheduled = await adapter.trigger(StartProcess(process_name="R"), command_id="c")

    assert scheduled.starts_at is None and unscheduled.starts_at is None
    assert starts_at(StartProcess(process_name="R"), NOW.timestamp()) is None


def test_naive_dates_are_taken_as_already_in_the_zone() -> None:
    zone = ZoneInfo("Europe/Istanbul")
    assert format_date(datetime(2020, 11, 18, 16, 55, 7, 999), zone) == "2020-11-18 16:55:07"


def status_answer(status: str, message: str | None = "m", **outputs: Any) -> Handler:
    body = {"status": status, "message": message, **{f"__out_{k}": v for k, v in outputs.items()}}
    return answer(200, body)


@pytest.mark.parametrize(
    ("status", "settings", "state"),
    [
        ("WAITING", {}, "running"),
        ("RUNNING", {}, "running"),
        ("SUCCEEDED", {}, "succeeded"),
        ("FAILED", {}, "failed"),
        ("FAILED", {"unknown_status": "running"}, "running"),
        ("QUEUED", {"running_statuses": ["QUEUED"]}, "running"),
        ("RUNNING", {"running_statuses": ["QUEUED"]}, "failed"),
        ("DONE", {"success_statuses": ["SUCCEEDED", "DONE"]}, "succeeded"),
    ],
)
async def test_status_mapping(status: str, settings: dict[str, Any], state: str) -> None:
    adapter, seen = make(status_answer(status), **settings)

    report = await adapter.status({"robusta_spid": SPID}, cursor={})

    assert (report.state, report.status, report.message) == (state, status, "m")
    (request,) = seen
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/scheduler/connector-api/process/status/{SPID}"
    assert request.headers["authorization"].startswith("Basic ")


async def test_success_reports_outputs_without_prefix() -> None:
    handler = status_answer("SUCCEEDED", "Your transaction has ended.", x="Ada Lovelace", n=2)
    adapter, _ = make(handler)

    report = await adapter.status({"robusta_spid": SPID}, cursor={})

    assert report.state == "succeeded"
    assert report.result == {"x": "Ada Lovelace", "n": 2}
    assert report.message == "Your transaction has ended."
    assert report.cursor == {}


async def test_failure_without_a_vendor_message_says_which_status() -> None:
    adapter, _ = make(status_answer("ERROR", message=None))

    report = await adapter.status({"robusta_spid": SPID}, cursor={})

    assert report.state == "failed"
    assert report.message == f"process {SPID} ended with status ERROR"


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (answer(400, {"message": "name is missing"}), VendorRejected,
         "Process start: HTTP 400: name is missing"),
        (answer(401), VendorRejected, "HTTP 401"),
        (answer(503, {"message": "busy"}, **{"Retry-After": "12"}), VendorUnavailable, "HTTP 503"),
        (answer(429), VendorUnavailable, "HTTP 429"),
        (answer(200, {"message": "Process saved"}), VendorRejected, "without a robustaSpid"),
    ],
)  # fmt: skip
async def test_start_errors(handler: Handler, error: type[VendorError], text: str) -> None:
    adapter, _ = make(handler)

    with pytest.raises(error) as raised:
        await adapter.trigger(StartProcess(process_name="R"), command_id="c")

    assert text in raised.value.message
    if raised.value.http_status == 503:
        assert isinstance(raised.value, VendorUnavailable)
        assert raised.value.retry_after == 12.0
    assert_no_secret(raised.value)


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (answer(404, {"message": "unknown process"}), VendorRejected,
         f"Process status {SPID}: HTTP 404: unknown process"),
        (answer(200, {"message": "no status"}), VendorRejected, "without a status"),
        (answer(502), VendorUnavailable, "HTTP 502"),
    ],
)  # fmt: skip
async def test_status_errors(handler: Handler, error: type[VendorError], text: str) -> None:
    adapter, _ = make(handler)

    with pytest.raises(error) as raised:
        await adapter.status({"robusta_spid": SPID}, cursor={})

    assert text in raised.value.message
    assert_no_secret(raised.value)


async def test_connection_error_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    adapter, _ = make(handler)
    with pytest.raises(VendorUnavailable) as raised:
        await adapter.trigger(StartProcess(process_name="R"), command_id="c")
    assert_no_secret(raised.value)


def assert_no_secret(error: Exception) -> None:
    encoded = base64.b64encode(f"rob:{SECRET}".encode()).decode()
    for text in (str(error), repr(error), repr(error.args)):
        assert SECRET not in text and encoded not in text


def test_all_is_sorted_and_exported() -> None:
    names = robusta.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert all(hasattr(robusta, name) for name in names)
