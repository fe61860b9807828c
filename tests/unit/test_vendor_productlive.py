"""Product-Live client and handlers against the simulator over a socket: the exact requests
(URL, method, X-Api-Key, body), every job status, per-key results, XML results, following
invitations, and the account's rate limit (flowgate's own pacing, the vendor's 429)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from contracts import ErrorKind, InvitePartners, RunJob
from contracts.jsonxml import xml_to_json
from tests.waiting import poll_until
from workers.app import make_resources
from workers.errors import InvalidCommand, Throttled, VendorRejected
from workers.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from workers.registry import Registry
from workers.settings import Settings
from workers.simulators import Fault, RunningSimulators, SimulatorConfig, Simulators, serve
from workers.vendors.base import StatusReport
from workers.vendors.productlive import (
    InvitePartnersHandler,
    ProductLiveClient,
    ProductLiveConnection,
    RunJobHandler,
)

ECHO_JOB = "65819ba43ad5b963658ab35d"
INVITE_JOB = "6601c0ffee0000000000000a"
KEY = "productlive-api-key"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulators]:
    config = SimulatorConfig()
    config.productlive.run_seconds = 0.15
    config.productlive.accept_after = 0.3
    async with serve(Simulators(config)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def connection(sim: RunningSimulators, **settings: Any) -> ProductLiveConnection:
    return ProductLiveConnection(base_url=sim.base_url, timeout=5.0, **settings)


def run_job(
    sim: RunningSimulators,
    http: httpx.AsyncClient,
    limiter: RateLimiter | None = None,
    **settings: Any,
) -> RunJobHandler:
    return RunJobHandler(ProductLiveClient(http, connection(sim, **settings), limiter))


def invite(
    sim: RunningSimulators, http: httpx.AsyncClient, **settings: Any
) -> InvitePartnersHandler:
    return InvitePartnersHandler(ProductLiveClient(http, connection(sim, **settings)))


async def until_final(
    handler: RunJobHandler | InvitePartnersHandler, vendor_ref: dict[str, str]
) -> StatusReport:
    cursor: dict[str, Any] = {}

    async def look() -> StatusReport:
        nonlocal cursor
        report = await handler.status(vendor_ref, cursor=cursor)
        cursor = dict(report.cursor)
        return report

    return await poll_until(look, lambda r: r.state != "running", timeout=5, interval=0.05)


async def test_run_job_sends_the_documented_request_and_answers_the_output(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    handler = run_job(sim, http)
    command = RunJob(job_id=ECHO_JOB, input={"someKey": "some data"})
    triggered = await handler.trigger(command, command_id="c1")
    [create] = sim.sims.ledger.entries("productlive.job_create")
    assert (create.method, create.path) == ("POST", "/v1/data_factory/job_executions")
    assert create.headers["x-api-key"] == KEY
    assert create.headers["content-type"] == "application/json"
    assert create.json == {"jobId": ECHO_JOB, "input": {"someKey": "some data"}}
    execution_id = triggered.vendor_ref["job_execution_id"]
    assert triggered.vendor_ref == {"job_execution_id": execution_id}
    assert triggered.status == "PENDING"
    report = await until_final(handler, dict(triggered.vendor_ref))
    assert (report.state, report.status) == ("succeeded", "COMPLETED")
    assert report.result["output"]["input"] == {"someKey": "some data"}
    [file] = report.result["files"]
    assert file["object"] == "data_factory_file"
    assert file["url"].startswith("https://api.product-live.com/v1/data_factory/files/")
    assert report.result["output"]["report"]["url"] == file["url"]  # kept where it was
    read = sim.sims.ledger.entries("productlive.job_read")[-1]
    assert (read.method, read.path) == ("GET", f"/v1/data_factory/job_executions/{execution_id}")
    assert read.headers["x-api-key"] == KEY


async def test_run_job_by_job_key_and_an_unknown_key_is_invalid_before_any_call(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    handler = run_job(sim, http, jobs={"nightly": ECHO_JOB})
    await handler.trigger(RunJob(job_key="nightly"), command_id="c1")
    [create] = sim.sims.ledger.entries("productlive.job_create")
    assert create.json == {"jobId": ECHO_JOB, "input": {}}
    with pytest.raises(InvalidCommand, match="names no job"):
        await handler.trigger(RunJob(job_key="weekly"), command_id="c2")
    assert len(sim.sims.ledger.entries("productlive.job_create")) == 1


@pytest.mark.parametrize(
    ("status", "state", "kind"),
    [
        ("USER_ERROR", "failed", ErrorKind.REJECTED),
        ("FAILED", "failed", ErrorKind.VENDOR_FAILED),
        ("TIMEDOUT", "failed", ErrorKind.VENDOR_FAILED),
        ("TERMINATED", "cancelled", None),
    ],
)
async def test_each_final_status(
    sim: RunningSimulators,
    http: httpx.AsyncClient,
    status: str,
    state: str,
    kind: ErrorKind | None,
) -> None:
    sim.sims.set_outcome("productlive", "scripted", status)
    handler = run_job(sim, http)
    triggered = await handler.trigger(
        RunJob(job_id=ECHO_JOB, input={"name": "scripted"}), command_id="c1"
    )
    report = await until_final(handler, dict(triggered.vendor_ref))
    assert (report.state, report.status) == (state, status)
    if kind is not None:
        assert report.error_kind == kind
        assert report.message and status in report.message


async def test_a_401_is_final(sim: RunningSimulators, http: httpx.AsyncClient) -> None:
    handler = run_job(sim, http, api_key=SecretStr("wrong"))
    with pytest.raises(VendorRejected) as caught:
        await handler.trigger(RunJob(job_id=ECHO_JOB), command_id="c1")
    assert caught.value.http_status == 401


async def test_invite_partners_one_result_per_key_failed_keys_listed(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    handler = invite(sim, http)
    command = InvitePartners.model_validate(
        {
            "operations": [
                {"key": "a", "to_account_name": "Supplier A", "to_user_email": "a@supplier.com"},
                {"key": "b", "to_account_name": "Supplier B", "to_user_email": "not-an-email"},
                {"key": "c", "to_account_name": "  ", "to_user_email": "c@supplier.com"},
                {
                    "key": "d",
                    "to_account_name": "Supplier D",
                    "to_user_email": "d@supplier.com",
                    "from_user_id": "9224",
                },
            ]
        }
    )
    triggered = await handler.trigger(command, command_id="c1")
    [create] = sim.sims.ledger.entries("productlive.job_create")

    def op(key: str, name: str, email: str, **extra: str) -> dict[str, Any]:
        return {"key": key, "element": {"toAccountName": name, "toUserEmail": email, **extra}}

    assert create.json == {
        "jobId": INVITE_JOB,
        "input": {
            "operations": [
                op("a", "Supplier A", "a@supplier.com"),
                op("b", "Supplier B", "not-an-email"),
                op("c", "  ", "c@supplier.com"),
                op("d", "Supplier D", "d@supplier.com", fromUserId="9224"),
            ]
        },
    }
    report = await until_final(handler, dict(triggered.vendor_ref))
    assert (report.state, report.status) == ("succeeded", "COMPLETED")
    results = report.result["results"]
    assert [r["key"] for r in results] == ["a", "b", "c", "d"]
    assert report.result["failed_keys"] == ["b", "c"]
    assert results[0]["response"]["object"] == "partner_invitation"
    assert results[0]["response"]["status"] == "PENDING"
    assert results[1]["error"]["code"] == "INVALID_EMAIL"
    assert results[2]["error"]["code"] == "MISSING_ACCOUNT_NAME"
    assert results[3]["response"]["fromUserId"] == "9224"


async def test_no_invitation_created_is_rejected_with_every_key(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    handler = invite(sim, http)
    command = InvitePartners.model_validate(
        {"operations": [{"key": "x", "to_account_name": "X", "to_user_email": "bad"}]}
    )
    triggered = await handler.trigger(command, command_id="c1")
    report = await until_final(handler, dict(triggered.vendor_ref))
    assert (report.state, report.error_kind) == ("failed", ErrorKind.REJECTED)
    assert report.result["failed_keys"] == ["x"]
    assert report.result["results"][0]["error"]["code"] == "INVALID_EMAIL"


async def test_xml_result_is_the_json_result_in_json_to_xml_form(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    handler = invite(sim, http)
    command = InvitePartners.model_validate(
        {
            "operations": [{"key": "a", "to_account_name": "A", "to_user_email": "a@a.com"}],
            "result_format": "xml",
        }
    )
    triggered = await handler.trigger(command, command_id="c1")
    assert triggered.vendor_ref["result_format"] == "xml"
    report = await until_final(handler, dict(triggered.vendor_ref))
    assert set(report.result) == {"xml"}
    document = report.result["xml"]
    assert '<array key="results">' in document
    parsed = xml_to_json(document, max_bytes=1 << 20, max_depth=32)
    assert parsed["failed_keys"] == []
    assert parsed["results"][0]["response"]["toAccountName"] == "A"


async def test_following_invitations_until_accepted(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    handler = invite(sim, http, follow_invitations=True)
    command = InvitePartners.model_validate(
        {
            "operations": [
                {"key": "a", "to_account_name": "A", "to_user_email": "a@a.com"},
                {"key": "b", "to_account_name": "B", "to_user_email": "b@b.com"},
            ]
        }
    )
    triggered = await handler.trigger(command, command_id="c1")
    statuses: list[str] = []
    cursor: dict[str, Any] = {}

    async def look() -> StatusReport:
        nonlocal cursor
        report = await handler.status(triggered.vendor_ref, cursor=cursor)
        cursor = dict(report.cursor)
        if not statuses or statuses[-1] != report.status:
            statuses.append(report.status)
        return report

    report = await poll_until(look, lambda r: r.state != "running", timeout=5, interval=0.05)
    assert report.state == "succeeded"
    assert "COMPLETED; invitations ACCEPTED 0/2" in statuses
    assert [r["response"]["status"] for r in report.result["results"]] == ["ACCEPTED"] * 2
    reads = sim.sims.ledger.entries("productlive.invitation_read")
    ids = {r["response"]["id"] for r in report.result["results"]}
    assert {e.path.rsplit("/", 1)[-1] for e in reads} == ids
    assert all(e.method == "GET" and e.headers["x-api-key"] == KEY for e in reads)


async def test_following_stops_when_its_time_is_up(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    sim.sims.vendors["productlive"].config.accept_after = None  # type: ignore[attr-defined]
    handler = invite(sim, http, follow_invitations=True, follow_invitations_for=0.3)
    command = InvitePartners.model_validate(
        {"operations": [{"key": "a", "to_account_name": "A", "to_user_email": "a@a.com"}]}
    )
    triggered = await handler.trigger(command, command_id="c1")
    report = await until_final(handler, dict(triggered.vendor_ref))
    assert (report.state, report.status) == ("succeeded", "COMPLETED")
    assert report.result["results"][0]["response"]["status"] == "PENDING"


async def test_no_room_in_the_account_is_throttled_and_sends_nothing(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    limiter = MemoryRateLimiter()
    # Two connections on one account share its count.
    first = run_job(sim, http, limiter, account="4203", rate_limit={"requests": 2, "window": 30})
    second = run_job(sim, http, limiter, account="4203", rate_limit={"requests": 2, "window": 30})
    await first.trigger(RunJob(job_id=ECHO_JOB), command_id="c1")
    await second.trigger(RunJob(job_id=ECHO_JOB), command_id="c2")
    with pytest.raises(Throttled) as caught:
        await first.trigger(RunJob(job_id=ECHO_JOB), command_id="c3")
    assert 29 < caught.value.wait <= 30.5 + 30 / 2  # the window (+margin), plus a spread
    assert len(sim.sims.ledger.entries("productlive.job_create")) == 2


async def test_a_429_pauses_the_whole_account_for_its_retry_after(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    limiter = MemoryRateLimiter()
    creator = run_job(sim, http, limiter)
    sim.sims.inject(Fault(route="productlive.job_create", status=429, retry_after=7, times=1))
    with pytest.raises(Throttled) as caught:
        await creator.trigger(RunJob(job_id=ECHO_JOB), command_id="c1")
    assert 7 <= caught.value.wait <= 7 + 60 / 50
    # Another command type's call on the same account now waits too, without a request.
    reader = run_job(sim, http, limiter)
    with pytest.raises(Throttled, match="paused"):
        await reader.status({"job_execution_id": "000000000000000000000001"}, cursor={})
    assert len(sim.sims.ledger.entries()) == 1


async def test_the_simulator_enforces_the_documented_limit_with_retry_after(
    sim: RunningSimulators, http: httpx.AsyncClient
) -> None:
    sim.sims.vendors["productlive"].config.rate_limit = 3  # type: ignore[attr-defined]
    answers = []
    for _ in range(4):
        response = await http.get(
            f"{sim.base_url}/v1/partner-invitations/1", headers={"X-Api-Key": KEY}
        )
        answers.append(response.status_code)
    assert answers == [404, 404, 404, 429]
    assert 55 <= int(response.headers["retry-after"]) <= 60
    assert json.loads(response.text)["statusCode"] == 429
    bad = await http.get(f"{sim.base_url}/v1/partner-invitations/1", headers={"X-Api-Key": "x"})
    assert bad.status_code == 401
    # flowgate paces itself (limit 10 here), meets the vendor's 429, and pauses the account
    handler = run_job(sim, http, rate_limit={"requests": 10, "window": 60})
    with pytest.raises(Throttled, match="429"):
        await handler.trigger(RunJob(job_id=ECHO_JOB), command_id="c1")
    await asyncio.sleep(0)


async def test_the_registry_opens_productlive_clients_on_the_processes_limiter() -> None:
    for store, kind in (("memory", MemoryRateLimiter), ("redis", RedisRateLimiter)):
        settings = Settings(idempotency={"store": store})
        resources = make_resources(settings)
        registry = Registry(settings, resources=resources)
        try:
            for command_type in ("run-job", "invite-partners"):
                handler = registry.handler(command_type, "default").handler
                assert isinstance(handler, RunJobHandler | InvitePartnersHandler)
                assert handler.client.limiter is resources.limiter
                assert isinstance(resources.limiter, kind)
        finally:
            await registry.aclose()
            await resources.aclose()


def test_a_failed_report_carries_its_error_kind_to_the_terminal_event() -> None:
    from contracts import EventKind
    from workers.runtime import terminal_event

    kind, error = terminal_event(
        StatusReport("failed", "USER_ERROR", message="refused", error_kind=ErrorKind.REJECTED)
    )
    assert kind == EventKind.FAILED and error is not None
    assert (error.kind, error.message) == (ErrorKind.REJECTED, "refused")
    _, error = terminal_event(StatusReport("failed", "FAILED"))
    assert error is not None and error.kind == ErrorKind.VENDOR_FAILED
