"""The PBSM simulator's report, migration and file APIs over a real socket, on a clock the test
moves: the document's paths, headers and answers, the runs' progress, and PAR URLs that work
for their own object, direction and lifetime only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from workers.simulators import Fault, SimulatorConfig, Simulators, serve

RUN = 1.0
USER = {"ofs_remote_user": "U", "ofs_workspace_id": "WS001", "locale": "en-US"}
REPORT = USER | {"ofs_service_id": "S", "reportcode": "R1"}
GENERATE = REPORT | {"reportType": "CSV", "appid": "APP", "reportDefType": "V"}
MIGRATION = USER | {"ofs_tenant_id": "T1"}
FILES = USER | {"ofs_tenant_id": "T1"}
UTILS = "/T1/utils-service/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sims(clock: Clock) -> Simulators:
    config = SimulatorConfig()
    config.pbsm.run_seconds = RUN
    config.pbsm.par_seconds = 60
    return Simulators(config, clock=clock)


@pytest.fixture
async def http(sims: Simulators) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(sims) as running, httpx.AsyncClient(base_url=running.base_url) as client:
        form = {"grant_type": "password", "username": "pbsm-user", "password": "pbsm-password"}
        token = await client.post(
            "/oauth2/v1/token", data=form, auth=("pbsm-client", "pbsm-client-secret")
        )
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


async def test_a_report_runs_pending_running_then_complete_with_a_working_link(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    body = {"filterCriteria": "", "placeholderFilter": ""}
    started = await http.post("/aai-dmi-service/vw/v1/repgen", json=body, headers=GENERATE)
    assert started.json() == {"status": "PENDING", "requestInstanceId": "100"}
    status = REPORT | {"reportInstanceID": "100"}

    async def read() -> dict[str, Any]:
        answer = await http.post("/aai-dmi-service/vw/v1/repgenstatus", json={}, headers=status)
        assert answer.status_code == 200
        found: dict[str, Any] = answer.json()
        return found

    assert (await read())["status"] == "PENDING"
    clock.now += RUN / 2
    assert await read() == {"status": "RUNNING", "requestInstanceId": "100"}
    clock.now += RUN
    done = await read()
    assert done["status"] == "COMPLETE" and done["requestInstanceId"] == "100"
    assert done["downloadLink"] == (await read())["downloadLink"], "one link per report"
    async with httpx.AsyncClient() as anonymous:  # a PAR needs no other credential
        csv = await anonymous.get(done["downloadLink"])
    assert csv.status_code == 200 and csv.text.startswith("REPORT_CODE,INSTANCE\nR1,100")
    assert csv.headers["content-disposition"] == "ATTACHMENT; filename=R1_100.csv"
    wrong = REPORT | {"reportcode": "R2", "reportInstanceID": "100"}
    refused = await http.post("/aai-dmi-service/vw/v1/repgenstatus", json={}, headers=wrong)
    assert refused.status_code == 400 and refused.json()["status"] == "FAILED"


@pytest.mark.parametrize(
    ("scripted", "answered"), [("FAIL", "FAIL"), ("FAILED", "FAILED"), ("COMPLETED", "COMPLETED")]
)
async def test_a_report_ends_as_scripted_in_either_spelling(
    sims: Simulators, http: httpx.AsyncClient, clock: Clock, scripted: str, answered: str
) -> None:
    sims.set_outcome("pbsm", "R1", scripted)
    await http.post("/aai-dmi-service/vw/v1/repgen", json={}, headers=GENERATE)
    clock.now += RUN
    headers = REPORT | {"reportInstanceID": "100"}
    answer = (
        await http.post("/aai-dmi-service/vw/v1/repgenstatus", json={}, headers=headers)
    ).json()
    assert answer["status"] == answered
    if answered.startswith("FAIL"):
        assert answer == {"status": answered, "reportInstanceId": "100"}


async def test_a_report_needs_its_headers_and_a_token(http: httpx.AsyncClient) -> None:
    for header in ("reportcode", "reportType", "appid", "reportDefType", "ofs_service_id"):
        headers = {k: v for k, v in GENERATE.items() if k != header}
        answer = await http.post("/aai-dmi-service/vw/v1/repgen", json={}, headers=headers)
        assert answer.status_code == 400 and header.lower() in answer.json()["errorMessage"]
    no_token = {"Authorization": "Bearer nope"}
    answer = await http.post("/aai-dmi-service/vw/v1/repgen", json={}, headers=GENERATE | no_token)
    assert answer.status_code == 401


async def test_a_migration_per_code_and_direction(
    sims: Simulators, http: httpx.AsyncClient, clock: Clock
) -> None:
    async def trigger(direction: str, code: str) -> tuple[int, dict[str, Any]]:
        answer = await http.post(f"/public/migrate/{direction}/{code}", json={}, headers=MIGRATION)
        return answer.status_code, answer.json()

    async def status(path: str) -> tuple[int, dict[str, Any]]:
        answer = await http.get(path, headers=MIGRATION)
        return answer.status_code, answer.json()

    triggered = {"errorMessage": "Object Migration Triggered", "statusCode": "TRIGGERED_SUCCESS"}
    assert await trigger("export", "M1") == (200, triggered | {"status": "SUCCESS"})
    running = {"errorMessage": "Export in progress", "statusCode": "EXPORT_INPROGRESS"}
    assert await trigger("export", "M1") == (400, running | {"status": "INPROGRESS"})
    assert await status("/Public/status/export/M1") == (200, running | {"status": "INPROGRESS"})
    # The seed's spelling only: the import status path is lower-case, the export one is not.
    assert (await http.get("/public/status/export/M1", headers=MIGRATION)).status_code == 404
    assert (await status("/public/status/import/M1"))[0] == 400, "no import of M1 yet"
    clock.now += RUN
    fetched = {"errorMessage": "Status fetched Successfully", "statusCode": "SUCCESS"}
    assert await status("/Public/status/export/M1") == (200, fetched | {"status": "SUCCESS"})
    done = {"errorMessage": "Export already completed", "statusCode": "EXPORT_ALREADY_COMPLETE"}
    assert await trigger("export", "M1") == (400, done | {"status": "FAILED"})
    missing = {"errorMessage": "Code does not exist", "statusCode": "INVALID_INPUT"}
    assert await trigger("import", "MISSING9") == (400, missing | {"status": "FAILED"})

    sims.set_outcome("pbsm", "M2", "FAILED")
    assert (await trigger("import", "M2"))[0] == 200
    clock.now += RUN
    failed = await status("/public/status/import/M2")
    assert failed == (
        200,
        {"errorMessage": "Import failed", "statusCode": "IMPORT_FAILED", "status": "FAILED"},
    )
    assert (await trigger("import", "M2"))[0] == 200, "a failed migration may run again"
    no_tenant = {k: v for k, v in MIGRATION.items() if k != "ofs_tenant_id"}
    answer = await http.post("/public/migrate/export/M3", json={}, headers=no_tenant)
    assert answer.status_code == 400 and answer.json()["statusCode"] == "INVALID_INPUT"


async def test_upload_list_and_download_through_pars(http: httpx.AsyncClient, clock: Clock) -> None:
    listed = (
        await http.get(UTILS + "/listfiles", params={"stripeName": "default"}, headers=FILES)
    ).json()
    assert [(f["v_file_name"], f["n_file_id"]) for f in listed["payload"]] == [
        ("Idcs_log3.txt", 9916),
        ("Idcs_log4.txt", 9917),
    ]
    assert listed["count"] == 2
    body = [{"fileName": "new.csv", "fileSize": 9, "mimeType": "Text/CSV"}]  # the list sample
    asked = await http.post(
        UTILS + "/file/uploadfile/parURL", params={"prefix": ""}, json=body, headers=FILES
    )
    payload = asked.json()["payload"]
    assert payload["fileId"] == 9918 and payload["status"] == "success"
    assert set(payload) == {
        "uploadURL",
        "createUser",
        "stripeName",
        "fileId",
        "createDate",
        "token",
        "status",
    }
    upload = payload["uploadURL"]
    assert "/p/" in upload and "/o/default/" in upload
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.put(upload, content="a,b\n1,2\n")).status_code == 200
        # The PAR is for its own object only.
        assert (
            await anonymous.put(upload.replace("/o/default/", "/o/other/"), content="x")
        ).status_code == 404
    names = (await http.get(UTILS + "/listfiles", headers=FILES)).json()["payload"]
    assert names[-1]["v_file_name"] == "new.csv"
    query = {"fileName": "new.csv", "stripeName": "default", "prefix": ""}
    by_name = (await http.get(UTILS + "/file/download", params=query, headers=FILES)).json()
    by_id = (await http.get(UTILS + "/file/downloadfile/9918", headers=FILES)).json()
    async with httpx.AsyncClient() as anonymous:
        for answer in (by_name, by_id):
            url = answer["payload"]["downloadURL"]
            assert "httpResponseContentDisposition=ATTACHMENT%3B%20filename%3Dnew.csv" in url
            got = await anonymous.get(url)
            assert (got.status_code, got.text) == (200, "a,b\n1,2\n")
            assert (await anonymous.put(url, content="overwrite")).status_code == 404
        clock.now += 61  # par_seconds
        assert (await anonymous.get(by_id["payload"]["downloadURL"])).status_code == 404
    unknown = await http.get(UTILS + "/file/downloadfile/1", headers=FILES)
    assert unknown.status_code == 404 and unknown.json()["status"] == "failure"


@pytest.mark.parametrize(
    "body",
    [
        {"fileName": "-a.csv", "fileSize": 9, "mimeType": "text/csv"},
        {"fileName": "a b.csv", "fileSize": 9, "mimeType": "text/csv"},
        {"fileName": "a" * 256, "fileSize": 9, "mimeType": "text/csv"},
        {"fileName": "a.csv", "fileSize": 1, "mimeType": "text/csv"},
        {"fileName": "a.csv", "fileSize": 10 * 2**40, "mimeType": "text/csv"},
        {"fileName": "a.csv", "fileSize": 9, "mimeType": "application/pdf"},
        {"fileName": "a.csv", "fileSize": "9", "mimeType": "text/csv"},
    ],
)
async def test_the_upload_rules_of_table_3_1(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await http.post(UTILS + "/file/uploadfile/parURL", json=body, headers=FILES)
    assert answer.status_code == 400 and answer.json()["status"] == "failure"


async def test_file_apis_check_headers_tenant_and_token(http: httpx.AsyncClient) -> None:
    for header in FILES:
        headers = {k: v for k, v in FILES.items() if k != header}
        assert (await http.get(UTILS + "/listfiles", headers=headers)).status_code == 400
    other = FILES | {"ofs_tenant_id": "T2"}
    assert (await http.get(UTILS + "/listfiles", headers=other)).status_code == 400
    no_token = FILES | {"Authorization": "Bearer nope"}
    assert (await http.get(UTILS + "/listfiles", headers=no_token)).status_code == 401


async def test_faults_reach_the_new_routes(sims: Simulators, http: httpx.AsyncClient) -> None:
    sims.inject(Fault(route="pbsm.list_files", status=503, times=1, retry_after=2))
    first = await http.get(UTILS + "/listfiles", headers=FILES)
    assert (first.status_code, first.headers["retry-after"]) == (503, "2")
    assert (await http.get(UTILS + "/listfiles", headers=FILES)).status_code == 200
    assert [e.status for e in sims.ledger.entries("pbsm.list_files")] == [503, 200]
    sims.reset()
    assert sims.ledger.entries() == []
