"""Oracle PBSM: token grant/cache/refresh, exact scheduler requests, status mapping, errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from contracts.commands import TriggerBatch
from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors._http import RETRIABLE_STATUSES
from workers.vendors.pbsm import PbsmClient, PbsmConnection, TokenManager, TriggerBatchHandler

BASE = "http://pbsm.test:8700"
TOKEN_URL = f"{BASE}/oauth2/v1/token"
SECRETS = ("client-s3cret", "user-passw0rd", "access-", "refresh-")
RUN_ID = "B2001_2022-05-20_1653041947296_1"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePbsm:
    """Token endpoint plus scheduler; records requests, scripts answers."""

    def __init__(self) -> None:
        self.token_forms: list[dict[str, str]] = []
        self.calls: list[httpx.Request] = []
        self.issued = 0
        self.valid: set[str] = set()
        self.answers: list[httpx.Response] = []
        self.token_status = 200
        self.refuse_refresh = False
        self.refuse_all = False  # the scheduler refuses every token

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/v1/token":
            self.token_forms.append(
                {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            )
            await asyncio.sleep(0.01)  # let concurrent callers pile up behind the lock
            refused = self.refuse_refresh and "refresh_token" in self.token_forms[-1]
            if self.token_status != 200 or refused:
                return httpx.Response(self.token_status, json={"error": "invalid_grant"})
            self.issued += 1
            token = f"access-{self.issued}"
            self.valid.add(token)
            body = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            return httpx.Response(200, json={**body, "refresh_token": f"refresh-{self.issued}"})
        self.calls.append(request)
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if self.refuse_all or token not in self.valid:
            return httpx.Response(401)
        if self.answers:
            return self.answers.pop(0)
        return httpx.Response(200, json={"batchRunId": RUN_ID, "statusCode": "0", "status": "ok"})


def make(fake: FakePbsm, clock: Clock | None = None) -> TriggerBatchHandler:
    secrets = {"client_secret": SecretStr(SECRETS[0]), "password": SecretStr(SECRETS[1])}
    conn = PbsmConnection(
        base_url=BASE + "/", token_url=TOKEN_URL, username="batchman", timeout=9.0, **secrets
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return TriggerBatchHandler(
        PbsmClient(http, conn, TokenManager(http, conn, clock=clock or Clock()))
    )


def trigger(**overrides: Any) -> TriggerBatch:
    return TriggerBatch.model_validate({"batch": "B2001", **overrides})


def no_secret(*things: object) -> None:
    for thing in things:
        for secret in SECRETS:
            assert secret not in str(thing) and secret not in repr(thing)


async def test_token_request_and_batch_trigger_are_exact() -> None:
    fake = FakePbsm()
    triggered = await make(fake).trigger(
        trigger(params={"$FICMISDATE$": "2022-10-23"}), command_id="c"
    )
    assert triggered.vendor_ref == {"batch_run_id": RUN_ID, "batch": "B2001"}
    assert triggered.status == "ok" and triggered.report is None
    form = {"grant_type": "password", "scope": "urn:opc:idm:__myscopes__ offline_access"}
    assert fake.token_forms == [{**form, "username": "batchman", "password": SECRETS[1]}]
    (call,) = fake.calls
    assert call.method == "POST"
    assert str(call.url) == f"{BASE}/SchedulerService/rest-api/v1/external/trigger"
    expected = dict(ofs_tenant_id="TENANT1", ofs_service_id="PBSMCS", ofs_workspace_id="WS001")
    expected |= dict(ofs_remote_user="batchuser", locale="en-US", authorization="Bearer access-1")
    for name, value in {**expected, "content-type": "application/json"}.items():
        assert call.headers[name] == value
    assert call.extensions["timeout"]["read"] == 9.0
    assert json.loads(call.content) == {
        "batchName": "B2001",
        "batchType": "rest",
        "dynamicParamList": {"batchParams": {"$FICMISDATE$": "2022-10-23"}},
    }


async def test_token_request_wire_form_and_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "access-x", "expires_in": 60})

    conn = PbsmConnection(
        base_url=BASE, token_url=TOKEN_URL, client_secret=SecretStr("cs"), password=SecretStr("p&w")
    )
    tokens = TokenManager(httpx.AsyncClient(transport=httpx.MockTransport(handler)), conn)
    assert await tokens.token() == "access-x"
    (request,) = seen
    assert str(request.url) == f"{BASE}/oauth2/v1/token" and request.method == "POST"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        b"pbsm-client:cs"
    ).decode("ascii")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded;charset=UTF-8"
    assert request.content == (
        b"grant_type=password&scope=urn:opc:idm:__myscopes__+offline_access"
        b"&username=pbsm-user&password=p%26w"
    )


async def test_group_trigger_with_dynamic_param_list_and_tasks() -> None:
    fake, dates = FakePbsm(), {"MIS_BATCH001": "2022-10-23", "MIS_BATCH002": "2022-10-28"}
    group = [{"batch": b, "params": {"$FICMISDATE$": d}} for b, d in dates.items()]
    cmd = trigger(group=True, group_params=group, excluded_tasks=["t2"], held_tasks=["t3"])
    await make(fake).trigger(cmd, command_id="c")
    params = [{"batchName": b, "batchParams": {"$FICMISDATE$": d}} for b, d in dates.items()]
    assert json.loads(fake.calls[0].content) == {
        "batchName": "B2001",
        "batchType": "group",
        "dynamicParamList": params,
        "excludedTasks": ["t2"],
        "heldTasks": ["t3"],
    }
    await make(fake).trigger(trigger(), command_id="c")
    assert json.loads(fake.calls[1].content) == {"batchName": "B2001", "batchType": "rest"}


async def test_token_is_cached_across_calls() -> None:
    fake = FakePbsm()
    a = make(fake)
    for _ in range(3):
        await a.trigger(trigger(), command_id="c")
    assert len(fake.token_forms) == 1 and len(fake.calls) == 3


async def test_twenty_concurrent_calls_after_expiry_refresh_once() -> None:
    fake, clock = FakePbsm(), Clock()
    a = make(fake, clock)
    await a.trigger(trigger(), command_id="c")
    clock.now += 3600 - 60  # the refresh margin has been reached
    await asyncio.gather(*(a.trigger(trigger(), command_id="c") for _ in range(20)))
    grants = [form["grant_type"] for form in fake.token_forms]
    assert grants == ["password", "refresh_token"]
    assert fake.token_forms[1]["refresh_token"] == "refresh-1"
    assert {c.headers["Authorization"] for c in fake.calls[1:]} == {"Bearer access-2"}


async def test_401_mid_run_refreshes_once_for_all_and_the_calls_succeed() -> None:
    fake = FakePbsm()
    a = make(fake)
    await a.trigger(trigger(), command_id="c")
    fake.valid.clear()  # the vendor revoked every access token early
    results = await asyncio.gather(*(a.trigger(trigger(), command_id="c") for _ in range(5)))
    assert all(r.vendor_ref == {"batch_run_id": RUN_ID, "batch": "B2001"} for r in results)
    assert [form["grant_type"] for form in fake.token_forms] == ["password", "refresh_token"]


async def test_second_401_is_rejected() -> None:
    fake = FakePbsm()
    fake.refuse_all = True
    a = make(fake)
    with pytest.raises(VendorRejected) as info:
        await a.trigger(trigger(), command_id="c")
    assert info.value.http_status == 401 and len(fake.calls) == 2
    assert [form["grant_type"] for form in fake.token_forms] == ["password", "refresh_token"]
    no_secret(info.value, a.client.tokens, a.client, a)


async def test_refused_refresh_falls_back_to_password_grant() -> None:
    fake, clock = FakePbsm(), Clock()
    a = make(fake, clock)
    await a.trigger(trigger(), command_id="c")
    clock.now += 7200
    fake.refuse_refresh = True
    await a.trigger(trigger(), command_id="c")
    assert [f["grant_type"] for f in fake.token_forms] == ["password", "refresh_token", "password"]
    assert fake.calls[-1].headers["Authorization"] == "Bearer access-2"


@pytest.mark.parametrize("status", [400, 401, 500, 502, 503, 504])
async def test_token_endpoint_errors(status: int) -> None:
    """The token call classifies answers as the trigger and status calls do (`error_for`):
    429/502/503/504 are passing, every other refusal (500 included) is final."""
    fake = FakePbsm()
    fake.token_status = status
    a = make(fake)
    with pytest.raises((VendorRejected, VendorUnavailable)) as info:
        await a.trigger(trigger(), command_id="c")
    assert str(info.value).startswith("PBSM token: ") and not fake.calls
    assert isinstance(info.value, VendorUnavailable) == (status in RETRIABLE_STATUSES)
    if isinstance(info.value, VendorUnavailable):
        assert not info.value.maybe_sent, "a token call never starts a batch"
    no_secret(info.value, a.client.tokens)


async def test_negative_status_code_is_rejected() -> None:
    fake = FakePbsm()
    body = {"severity": "error", "summary": "no such batch", "statusCode": "-3", "status": "fail"}
    fake.answers = [httpx.Response(200, json=body)]
    with pytest.raises(VendorRejected) as info:
        await make(fake).trigger(trigger(), command_id="c")
    assert info.value.vendor_code == "-3"
    assert "Object does not exist" in info.value.message and "no such batch" in info.value.message


STATES = {"1": "running", "2": "running", "5": "running", "0": "succeeded", "4": "succeeded"}
STATES |= {"-1": "failed", "3": "failed", "-2": "cancelled", "9": "failed", "": "failed"}


@pytest.mark.parametrize("code", list(STATES))
async def test_status_maps_batch_status_code(code: str) -> None:
    fake = FakePbsm()
    tasks = [{"taskCode": "t1", "taskStatus": "SUCCESSFUL", "statusCode": "0"}]
    body = dict(batchRunId=RUN_ID, taskStatusList=tasks, batchList=[], batchStatusCode=code)
    body |= dict(batchStatus="TEXT", status="success", statusCode="0")
    fake.answers = [httpx.Response(200, json=body)]
    report = await make(fake).status({"batch_run_id": RUN_ID}, cursor={})
    assert json.loads(fake.calls[0].content) == {"batchRunId": RUN_ID}
    assert str(fake.calls[0].url).endswith("/SchedulerService/rest-api/v1/external/status")
    assert report.state == STATES[code] and report.status == "TEXT"
    assert report.result == {"batchStatusCode": code, "taskStatusList": tasks}
    assert report.vendor_code == (code or None)
    assert (report.message is None) == (STATES[code] in ("running", "succeeded"))


async def test_group_status_reports_batch_list() -> None:
    fake = FakePbsm()
    batches = [{"batchRunId": "b1", "batchStatusCode": 0, "batchStatus": "SUCCESSFUL"}]
    body = dict(batchList=batches, batchStatusCode=0, batchStatus="SUCCESSFUL", statusCode="0")
    fake.answers = [httpx.Response(200, json=body)]
    report = await make(fake).status({"batch_run_id": RUN_ID}, cursor={})
    assert report.state == "succeeded"
    assert report.result["batchList"] == [{**batches[0], "batchStatusCode": "0"}]


@pytest.mark.parametrize("name", ["interrupt", "rerun", "restart"])
async def test_run_calls(name: str) -> None:
    fake = FakePbsm()
    client = make(fake).client
    answer = await getattr(client, name)("B2001", RUN_ID)
    assert answer.batchRunId == RUN_ID
    assert str(fake.calls[0].url) == f"{BASE}/SchedulerService/rest-api/v1/external/{name}"
    assert json.loads(fake.calls[0].content) == {"batchName": "B2001", "batchRunId": RUN_ID}
