"""The vendor simulators over a real socket: wire shapes, auth, validation, runs, faults."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from workers.simulators import Fault, SimulatorConfig, Simulators, serve

RUN = 0.2
IICS = ("iics-user", "iics-password")
ROBUSTA = ("robusta-user", "robusta-password")
TMF = {"client_id": "b2bsoft-client", "client_secret": "b2bsoft-secret", "X-Correlation-ID": "c1"}
OFS = {
    "ofs_tenant_id": "T",
    "ofs_service_id": "S",
    "ofs_workspace_id": "WS001",
    "ofs_remote_user": "U",
    "locale": "en-US",
}
PBSM = "/SchedulerService/rest-api/v1/external/"
ORDER = "/b2bsoft-ux/v1/PR/productOrder/801dm00000Km9aVAAR"


def order_body(name: str = "PayLink", action: str = "add") -> dict[str, Any]:
    payment = [{"id": "https://pay/link", "name": name}]
    return {
        "externalId": "00163913",
        "channel": [{"id": "sourceSystem", "name": "B2BSoft"}],
        "productOrderItem": [{"id": "", "action": action, "payment": payment}],
    }


class FakeClock:
    """The simulators' monotonic clock, moved on by the test: a run advances only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sims(clock: FakeClock) -> Simulators:
    config = SimulatorConfig()
    for vendor in (config.informatica, config.robusta, config.pbsm):
        vendor.run_seconds = RUN
    return Simulators(config, clock=clock)


@pytest.fixture
async def client(sims: Simulators) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(sims) as running, httpx.AsyncClient(base_url=running.base_url) as http:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", running.base_url)
        yield http


async def poll(
    client: httpx.AsyncClient, clock: FakeClock, method: str, url: str, **kw: Any
) -> list[Any]:
    """Every answer until the run is final, the run 50 ms further on each time (at most 2 s)."""
    seen: list[Any] = []
    for _ in range(40):
        body = (await client.request(method, url, **kw)).json()
        seen.append(body)
        final = body.get("isFinalStatus") or body.get("batchStatusCode") in ("0", "-1", "-2", "3")
        if final or body.get("status") not in (None, "WAITING", "RUNNING", "success"):
            return seen
        clock.now += 0.05
    raise AssertionError(f"never final: {seen[-1]}")


async def pbsm_token(client: httpx.AsyncClient) -> dict[str, Any]:
    data = {"grant_type": "password", "scope": "urn:opc:idm:__myscopes__ offline_access"}
    data |= {"username": "pbsm-user", "password": "pbsm-password"}
    answer = await client.post(
        "/oauth2/v1/token", data=data, auth=("pbsm-client", "pbsm-client-secret")
    )
    assert answer.status_code == 200
    token: dict[str, Any] = answer.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    return token


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return OFS | {"Authorization": f"Bearer {token['access_token']}"}


async def test_informatica_run_follows_task_then_file_events(
    sims: Simulators, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    sims.set_outcome("informatica", "Acme", "Complete", file_status="Error")
    body = {"partnerName": "Acme", "direction": "inbound"}
    answer = await client.post("/b2b-gw/api/v1/partner/run", json=body, auth=IICS)
    assert answer.status_code == 200
    event_id = answer.json()["eventId"]
    seen = await poll(client, clock, "GET", f"/b2b-gw/api/v3/event/status/{event_id}", auth=IICS)
    # The fields of Informatica's Event Status REST API page; files only once final.
    assert seen[0]["eventStatus"] == "Downloading" and "files" not in seen[0]
    assert seen[0]["isFinalStatus"] is False
    task = seen[-1]
    assert set(task) == {
        "eventId", "eventType", "eventStatus", "eventCreationTimestamp", "partnerName",
        "partnerNumber", "partnerFileType", "direction", "isErrorStatus", "isFinalStatus", "files",
    }  # fmt: skip
    assert task["eventType"] == "Task Level Event" and task["eventStatus"] == "Complete"
    assert isinstance(task["eventCreationTimestamp"], int), "epoch milliseconds"
    assert task["partnerName"] == "Acme" and len(task["files"]) == 2
    listed = task["files"][0]
    assert set(listed) >= {
        "eventId", "eventType", "eventStatus", "eventCreationTimestamp", "parentEventId",
        "fileName", "messageType", "ackCode", "isErrorStatus", "isFinalStatus",
    }  # fmt: skip
    assert listed["eventType"] == "File Level Event" and listed["parentEventId"] == event_id
    file_url = f"/b2b-gw/api/v3/event/status/{listed['eventId']}"
    files = await poll(client, clock, "GET", file_url, auth=IICS)
    assert files[-1]["eventStatus"] == "Error" and files[-1]["isErrorStatus"] is True
    assert files[-1]["isFinalStatus"] is True
    assert files[-1]["parentEventId"] == event_id
    missing = await client.get("/b2b-gw/api/v3/event/status/1", auth=IICS)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


async def test_informatica_custom_statuses_carry_their_configured_flags(
    sims: Simulators, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    sims.set_outcome("informatica", "Acme", "Complete", file_status="Rejected by Partner")
    body = {"partnerName": "Acme", "direction": "OUTBOUND"}
    event_id = (await client.post("/b2b-gw/api/v1/partner/run", json=body, auth=IICS)).json()[
        "eventId"
    ]
    seen = await poll(client, clock, "GET", f"/b2b-gw/api/v3/event/status/{event_id}", auth=IICS)
    file_url = f"/b2b-gw/api/v3/event/status/{seen[-1]['files'][0]['eventId']}"
    files = await poll(client, clock, "GET", file_url, auth=IICS)
    final = files[-1]
    assert final["eventStatus"] == "Rejected by Partner"
    assert (final["isFinalStatus"], final["isErrorStatus"]) == (True, True)
    with pytest.raises(ValueError, match="informatica final statuses"):
        sims.set_outcome("informatica", "Acme", "Made Up")


@pytest.mark.parametrize(
    "body",
    [
        {"partnerName": "Acme", "direction": "SIDEWAYS"},
        {"direction": "INBOUND"},
        {"partnerName": "Ac<me>", "direction": "INBOUND"},
        {"partnerName": "Acme", "direction": "INBOUND", "mappingParameters": []},
    ],
)
async def test_informatica_rejects_bad_requests(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    answer = await client.post("/b2b-gw/api/v1/partner/run", json=body, auth=IICS)
    assert answer.status_code == 400 and answer.json()["error"]["message"]
    wrong = await client.post("/b2b-gw/api/v1/partner/run", json=body, auth=("iics-user", "x"))
    assert wrong.status_code == 401


async def test_robusta_outputs_and_validation(client: httpx.AsyncClient, clock: FakeClock) -> None:
    start = "/scheduler/connector-API/process/start"
    body = {"values": {"name": "Username", "surname": "Surname"}, "name": "OneStep"}
    body |= {"runOnce": "Y", "runImmediately": "Y", "startDate": "2020-11-16 16:56:00"}
    answer = await client.post(start, json=body, auth=ROBUSTA)
    assert answer.status_code == 200 and answer.json()["message"] == "Process saved"
    spid = answer.json()["robustaSpid"]
    seen = await poll(
        client, clock, "GET", f"/scheduler/connector-api/process/status/{spid}", auth=ROBUSTA
    )
    assert seen[0]["status"] == "WAITING"
    assert seen[-1]["status"] == "SUCCEEDED" and seen[-1]["__out_x"] == "Username Surname"
    assert seen[-1]["__out_surname"] == "Surname"
    for bad in ({"runOnce": "yes"}, {"name": ""}, {"endDate": "18/11/2020"}):
        assert (await client.post(start, json=body | bad, auth=ROBUSTA)).status_code == 400
    assert (await client.post(start, json=body, auth=IICS)).status_code == 401


async def test_robusta_scripted_failure(
    sims: Simulators, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    sims.set_outcome("robusta", "Broken", "FAILED")
    answer = await client.post(
        "/scheduler/connector-API/process/start", json={"name": "Broken"}, auth=ROBUSTA
    )
    url = f"/scheduler/connector-api/process/status/{answer.json()['robustaSpid']}"
    last = (await poll(client, clock, "GET", url, auth=ROBUSTA))[-1]
    assert last["status"] == "FAILED" and "__out_x" not in last


async def test_robusta_scheduled_process_waits_for_its_start_date(
    sims: Simulators, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    # The seed: startDate is "The first date the process will run".
    sims.config.robusta.run_seconds = 9.0
    start = "/scheduler/connector-API/process/start"
    in_two_hours = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2, seconds=1)
    body = {"name": "Later", "runOnce": "N", "runImmediately": "N", "quartzDef": "0 0 * * * ?"}
    body |= {"startDate": in_two_hours.strftime("%Y-%m-%d %H:%M:%S"), "retryCount": "1"}
    body |= {"endDate": (in_two_hours + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")}
    later = (await client.post(start, json=body, auth=ROBUSTA)).json()["robustaSpid"]
    now = (await client.post(start, json=body | {"runImmediately": "Y"}, auth=ROBUSTA)).json()

    async def status(spid: str) -> str:
        url = f"/scheduler/connector-api/process/status/{spid}"
        answer = await client.get(url, auth=ROBUSTA)
        assert answer.status_code == 200
        value: str = answer.json()["status"]
        return value

    clock.now += 2 * 3600 - 60
    assert await status(now["robustaSpid"]) == "SUCCEEDED"  # asked to run immediately
    assert await status(later) == "WAITING"
    sims.config.robusta.before_start_status = "SCHEDULED"  # read live: it has not started
    assert await status(later) == "SCHEDULED"
    clock.now += 60 + 5  # 4-5 s into its run
    assert await status(later) == "RUNNING"
    clock.now += 9
    assert await status(later) == "SUCCEEDED"


def test_robusta_simulator_zone_must_exist() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        SimulatorConfig.model_validate({"robusta": {"timezone": "Mars/Olympus"}})


async def test_tmf622_503_and_504_answer_the_seed_error_shape(
    sims: Simulators, client: httpx.AsyncClient
) -> None:
    sims.set_outcome("tmf622", "801dm00000Km9aVAAR", "503")
    scripted = await client.patch(ORDER, json=order_body(), headers=TMF)
    assert scripted.status_code == 503 and "retry-after" not in scripted.headers
    assert scripted.json() == {
        "errors": [
            {
                "code": 503,
                "message": "Service Unavailable",
                "description": "Temporary maintenance of service, try again later.",
            }
        ]
    }
    sims.inject(Fault(route="tmf622.patch", status=504, times=1))
    timeout = await client.patch(ORDER, json=order_body(), headers=TMF)
    assert timeout.status_code == 504
    assert timeout.json()["errors"][0]["code"] == 504
    assert timeout.json()["errors"][0]["message"] == "Gateway Timeout"


async def test_tmf622_success_and_seed_errors(client: httpx.AsyncClient) -> None:
    ok = await client.patch(ORDER, json=order_body("Paylink"), headers=TMF)
    assert ok.status_code == 200
    assert ok.json() == {
        "description": "Paylink Link Saved Successfully in Salesforce",
        "productOrderItem": [{"id": "", "action": "add"}],
    }
    cases = [
        (ORDER, order_body(action="remove"), TMF, 400),
        (ORDER, order_body(name="Other"), TMF, 400),
        (ORDER, order_body(), {k: v for k, v in TMF.items() if k != "X-Correlation-ID"}, 400),
        (ORDER, order_body(), TMF | {"client_secret": "nope"}, 401),
        (ORDER.replace("/PR/", "/XX/"), order_body(), TMF, 501),
        (ORDER.replace("801dm", "MISSING"), order_body(), TMF, 404),
    ]
    for url, body, headers, status in cases:
        answer = await client.patch(url, json=body, headers=headers)
        error = answer.json()["errors"][0]
        assert (answer.status_code, error["code"]) == (status, status)
    notimpl = await client.patch(ORDER.replace("/PR/", "/XX/"), json=order_body(), headers=TMF)
    assert notimpl.json()["errors"][0]["description"] == (
        "Operation PATCH /productOrder for Business Id: XX not implemented"
    )
    post = await client.post(ORDER, json=order_body(), headers=TMF)
    assert post.status_code == 405
    assert post.json()["errors"][0] == {
        "code": 405,
        "message": "APIKIT:METHOD_NOT_ALLOWED",
        "description": "HTTP Method post not allowed for : /{businessId}/productOrder",
    }


async def test_fault_503_twice_then_success_with_retry_after(
    sims: Simulators, client: httpx.AsyncClient
) -> None:
    sims.inject(Fault(route="tmf622.patch", status=503, times=2, retry_after=2))
    answers = [await client.patch(ORDER, json=order_body(), headers=TMF) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "2"
    assert answers[0].json()["errors"][0]["code"] == 503
    assert "retry-after" not in answers[2].headers
    assert [e.status for e in sims.ledger.entries("tmf622.patch")] == [503, 503, 200]


async def test_fault_latency_hang_and_http_control(
    sims: Simulators, client: httpx.AsyncClient
) -> None:
    sims.inject(Fault(route="robusta.status", hang=True, times=1))
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/scheduler/connector-api/process/status/x", auth=ROBUSTA, timeout=0.2)
    fault = {"route": "informatica.run", "status": 429, "retry_after": 0.5, "latency": 0.1}
    assert (await client.post("/_sim/faults", json=fault)).status_code == 200
    assert (await client.post("/_sim/faults", json={"route": "nope"})).status_code == 400
    loop = asyncio.get_running_loop()
    began = loop.time()
    limited = await client.post("/b2b-gw/api/v1/partner/run", json={}, auth=IICS)
    assert loop.time() - began >= 0.1
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0.5"
    assert (await client.delete("/_sim/faults")).json() == []
    ledger = (await client.get("/_sim/ledger", params={"route": "robusta.status"})).json()
    assert [entry["status"] for entry in ledger] == [0]
    assert (await client.get("/_sim/health")).json() == {"status": "ok"}
    assert all(not e.path.startswith("/_sim") for e in sims.ledger.entries())


async def test_ledger_records_the_wire(sims: Simulators, client: httpx.AsyncClient) -> None:
    await client.patch(ORDER + "?trace=1", json=order_body(), headers=TMF)
    (entry,) = sims.ledger.entries("tmf622.patch")
    assert (entry.method, entry.path, entry.query) == ("PATCH", ORDER, {"trace": "1"})
    assert entry.headers["x-correlation-id"] == "c1" and entry.headers["client_id"]
    assert entry.json == order_body() and '"PayLink"' in entry.body
    assert entry.status == 200 and entry.at > 0
    sims.reset()
    assert sims.ledger.entries() == []


async def test_pbsm_batch_run_tokens_and_codes(
    sims: Simulators, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = await pbsm_token(client)
    trigger: dict[str, Any] = {"batchName": "B2001", "batchType": "rest"}
    trigger |= {"dynamicParamList": {"batchParams": {"$FICMISDATE$": "2022-10-23"}}}
    answer = (await client.post(PBSM + "trigger", json=trigger, headers=bearer(token))).json()
    assert answer["statusCode"] == "0" and answer["status"] == "success"
    run_id = answer["batchRunId"]
    assert re.fullmatch(r"B2001_\d{4}-\d\d-\d\d_\d{13}_1", run_id)
    seen = await poll(
        client, clock, "POST", PBSM + "status", json={"batchRunId": run_id}, headers=bearer(token)
    )
    assert seen[0]["batchStatusCode"] == "1" and seen[-1]["batchStatus"] == "SUCCESSFUL"
    assert [t["taskStatus"] for t in seen[-1]["taskStatusList"]] == ["SUCCESSFUL"] * 2

    sims.expire_tokens()
    expired = await client.post(PBSM + "status", json={"batchRunId": run_id}, headers=bearer(token))
    assert expired.status_code == 401 and expired.json() == {"error": "invalid_token"}
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    fresh = await client.post(
        "/oauth2/v1/token", data=refresh, auth=("pbsm-client", "pbsm-client-secret")
    )
    assert fresh.status_code == 200 and fresh.json()["access_token"] != token["access_token"]
    headers = bearer(fresh.json())

    async def code(op: str, body: dict[str, Any], extra: dict[str, str] | None = None) -> str:
        answer = await client.post(PBSM + op, json=body, headers=extra or headers)
        assert answer.status_code == 200
        result: str = answer.json()["statusCode"]
        return result

    assert await code("trigger", {"batchName": "MISSING_X", "batchType": "rest"}) == "-3"
    assert await code("trigger", {"batchType": "rest"}) == "-4"
    no_locale = {k: v for k, v in headers.items() if k != "locale"}
    assert await code("trigger", trigger, no_locale) == "-5"
    ref = {"batchName": "B2001", "batchRunId": run_id}
    assert await code("interrupt", ref) == "-8"
    rerun = await client.post(PBSM + "rerun", json=ref, headers=headers)
    assert rerun.json()["batchRunId"] != run_id
    again = {"batchName": "B2001", "batchRunId": rerun.json()["batchRunId"]}
    assert await code("interrupt", again) == "0"
    assert await code("interrupt", again) == "-7"
    status = await client.post(PBSM + "status", json=again, headers=headers)
    assert (status.json()["batchStatusCode"], status.json()["batchStatus"]) == ("-2", "INTERRUPTED")
    assert await code("restart", again) == "0"


async def test_pbsm_token_errors_and_failed_group(
    sims: Simulators, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    form = {"grant_type": "password", "username": "pbsm-user", "password": "pbsm-password"}
    bad_client = await client.post("/oauth2/v1/token", data=form, auth=("pbsm-client", "x"))
    assert (bad_client.status_code, bad_client.json()) == (401, {"error": "invalid_client"})
    bad_user = await client.post(
        "/oauth2/v1/token",
        data=form | {"password": "x"},
        auth=("pbsm-client", "pbsm-client-secret"),
    )
    assert (bad_user.status_code, bad_user.json()) == (400, {"error": "invalid_grant"})
    assert (await client.post(PBSM + "trigger", json={}, headers=OFS)).status_code == 401

    sims.set_outcome("pbsm", "G1", "FAILED")
    members: list[dict[str, Any]] = [{"batchName": n, "batchParams": {}} for n in ("M1", "M2")]
    trigger = {"batchName": "G1", "batchType": "group", "dynamicParamList": members}
    headers = bearer(await pbsm_token(client))
    run_id = (await client.post(PBSM + "trigger", json=trigger, headers=headers)).json()[
        "batchRunId"
    ]
    seen = await poll(
        client, clock, "POST", PBSM + "status", json={"batchRunId": run_id}, headers=headers
    )
    last = seen[-1]
    assert (last["batchStatusCode"], last["batchStatus"]) == ("-1", "FAILED")
    assert [b["batchStatusCode"] for b in last["batchList"]] == ["0", "-1"]
    assert last["batchList"][0]["batchRunId"].startswith("M1_")
    with pytest.raises(ValueError):
        sims.set_outcome("pbsm", "G1", "Complete")
