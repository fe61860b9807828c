"""PBSM reports, object migrations and PAR file URLs on real RabbitMQ against the simulator:
each command end to end, every request in the simulator's ledger compared field by field with
the Oracle document's chapter for it ("Generating PAR URL for File Operations", "Invoking
Export API", "Invoking Import API", "Get Export Status API", "Get Import Status API",
"Generate Report API", "Get Report Generation Status and PAR URL Link API"), the PAR URLs
really usable (a small file goes up and comes back), and never in a log line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import System
from workers.simulators import LedgerEntry

USER = {"ofs_remote_user": "batchuser", "ofs_workspace_id": "WS001", "locale": "en-US"}
REPORT = USER | {"ofs_service_id": "PBSMCS", "content-type": "application/json"}
MIGRATION = USER | {"ofs_tenant_id": "TENANT1", "content-type": "application/json"}
FILES = USER | {"ofs_tenant_id": "TENANT1"}
UTILS = "/TENANT1/utils-service/v1"


def calls(system: System, route: str) -> list[LedgerEntry]:
    return system.sims.ledger.entries(f"pbsm.{route}")


def check(
    entry: LedgerEntry,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    absent: tuple[str, ...] = (),
    query: dict[str, str] | None = None,
    body: Any = None,
) -> None:
    """One request as the document's chapter writes it: method, path, query, each listed
    header, a Bearer token, the body (None: no body)."""
    assert (entry.method, entry.path) == (method, path)
    assert entry.query == (query or {})
    for name, value in headers.items():
        assert entry.headers.get(name.lower()) == value, (name, entry.headers)
    for name in absent:
        assert name.lower() not in entry.headers, name
    assert entry.headers["authorization"].startswith("Bearer ")
    if body is None:
        assert entry.body == ""
    else:
        assert entry.json == body


def par_token(url: str) -> str:
    """The PAR's secret part: Object Storage's `/p/<token>/...`."""
    parts = urlsplit(url).path.split("/")
    return parts[parts.index("p") + 1]


# --- generate-report ---------------------------------------------------------------------------


async def test_generate_report_is_followed_to_its_par_link(system: System) -> None:
    data = {
        "report_code": "RPT_ACCID",
        "report_type": "CSV",
        "filter_criteria": "FSI_ACCID_HEALTH_INS_CO_CD.CREATED_BY = 'DMIUSER1'",
        "placeholder_filter": "FSI_ACCID_HEALTH_INS_CO_CD.CURRENCY = PLACEHOLDER1",
    }
    command_id = await system.publish("generate-report", data)
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.generate-report.succeeded", terminal["data"]
    kinds = system.events.kinds(command_id)
    assert kinds[0] == "accepted" and kinds[-1] == "succeeded"
    statuses = [e["data"]["status"] for e in system.events.by_command[command_id]]
    assert "RUNNING" in statuses and statuses[-1] == "COMPLETE"
    ref = terminal["data"]["vendor_ref"]
    assert ref == {"report_code": "RPT_ACCID", "report_instance_id": ref["report_instance_id"]}
    result = terminal["data"]["result"]
    assert result["requestInstanceId"] == ref["report_instance_id"]
    datetime.fromisoformat(result["expires_at"])
    # The link is a PAR URL on the simulator: the report really downloads.
    async with httpx.AsyncClient() as http:
        answer = await http.get(result["url"])
    assert answer.status_code == 200
    assert answer.text.splitlines()[1] == f"RPT_ACCID,{ref['report_instance_id']}"
    assert "attachment" in answer.headers["content-disposition"].lower()
    # Chapter 8: the report by headers, the criteria in the body.
    [generate] = calls(system, "repgen")
    extra = {"reportcode": "RPT_ACCID", "reportType": "CSV", "appid": "PBSM"}
    check(
        generate,
        "POST",
        "/aai-dmi-service/vw/v1/repgen",
        REPORT | extra | {"reportDefType": "V"},
        absent=("ofs_tenant_id",),
        body={
            "filterCriteria": data["filter_criteria"],
            "placeholderFilter": data["placeholder_filter"],
        },
    )
    # Chapter 9: reportcode and reportInstanceID headers; no body documented: `{}`.
    polls = calls(system, "repgenstatus")
    assert len(polls) >= 2
    for poll in polls:
        check(
            poll,
            "POST",
            "/aai-dmi-service/vw/v1/repgenstatus",
            REPORT | {"reportcode": "RPT_ACCID", "reportInstanceID": ref["report_instance_id"]},
            absent=("ofs_tenant_id", "appid", "reporttype"),
            body={},
        )


@pytest.mark.parametrize("word", ["FAIL", "FAILED"])
async def test_a_failed_report_fails_in_either_spelling(system: System, word: str) -> None:
    system.sims.set_outcome("pbsm", "RPT_BAD", word)
    command_id = await system.publish("generate-report", {"report_code": "RPT_BAD"})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.generate-report.failed"
    error = terminal["data"]["error"]
    assert error["kind"] == "vendor_failed" and word in error["message"]
    assert terminal["data"]["status"] == word
    assert "url" not in terminal["data"]["result"]


async def test_completed_is_read_as_complete(system: System) -> None:
    system.sims.set_outcome("pbsm", "RPT_LONG", "COMPLETED")
    command_id = await system.publish("generate-report", {"report_code": "RPT_LONG"})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.generate-report.succeeded"
    assert terminal["data"]["status"] == "COMPLETED"
    assert terminal["data"]["result"]["url"].startswith("http://127.0.0.1:")


async def test_an_unknown_report_is_rejected(system: System) -> None:
    command_id = await system.publish("generate-report", {"report_code": "MISSING_RPT"})
    terminal = await system.events.terminal(command_id)
    error = terminal["data"]["error"]
    assert (error["kind"], error["http_status"]) == ("rejected", 400)
    assert "Report does not exist" in error["message"]


# --- export-objects, import-objects --------------------------------------------------------------


@pytest.mark.parametrize(
    ("command_type", "direction", "status_path"),
    [
        ("export-objects", "export", "/Public/status/export/MIGR0001"),
        ("import-objects", "import", "/public/status/import/MIGR0001"),
    ],
)
async def test_a_migration_is_followed_to_its_end(
    system: System, command_type: str, direction: str, status_path: str
) -> None:
    command_id = await system.publish(command_type, {"code": "MIGR0001"})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == f"flowgate.{command_type}.succeeded", terminal["data"]
    assert system.events.kinds(command_id)[0] == "accepted"
    assert terminal["data"]["vendor_ref"] == {"migration_code": "MIGR0001", "direction": direction}
    assert terminal["data"]["status"] == "SUCCESS"
    assert terminal["data"]["result"] == {
        "errorMessage": "Status fetched Successfully",
        "statusCode": "SUCCESS",
        "status": "SUCCESS",
    }
    [trigger] = calls(system, direction)
    check(
        trigger,
        "POST",
        f"/public/migrate/{direction}/MIGR0001",
        MIGRATION,
        absent=("ofs_service_id",),
        body={},
    )
    polls = calls(system, f"{direction}_status")
    assert polls, "followed through the status API"
    for poll in polls:
        # The document's own spelling of each status path: /Public/... for the export.
        check(poll, "GET", status_path, MIGRATION, absent=("ofs_service_id",))


async def test_an_export_already_running_is_followed_and_one_already_done_is_rejected(
    system: System,
) -> None:
    system.sims.config.pbsm.migration_seconds = 1.5
    first = await system.publish("export-objects", {"code": "MIG_TWICE"})
    async with asyncio.timeout(10), system.events.changed:
        await system.events.changed.wait_for(lambda: "accepted" in system.events.kinds(first))
    second = await system.publish("export-objects", {"code": "MIG_TWICE"})
    for command_id in (first, second):
        terminal = await system.events.terminal(command_id)
        assert terminal["type"] == "flowgate.export-objects.succeeded"
    statuses = [(e.status, e.json) for e in calls(system, "export")]
    assert [s for s, _ in statuses] == [200, 400], "the second export met EXPORT_INPROGRESS"
    third = await system.publish("export-objects", {"code": "MIG_TWICE"})
    terminal = await system.events.terminal(third)
    error = terminal["data"]["error"]
    assert (error["kind"], error["vendor_code"], error["http_status"]) == (
        "rejected",
        "EXPORT_ALREADY_COMPLETE",
        400,
    )
    assert "Export already completed" in error["message"]
    assert "accepted" not in system.events.kinds(third)


async def test_an_unknown_migration_code_is_rejected(system: System) -> None:
    command_id = await system.publish("import-objects", {"code": "MISSING_MIG"})
    error = (await system.events.terminal(command_id))["data"]["error"]
    assert (error["kind"], error["vendor_code"]) == ("rejected", "INVALID_INPUT")
    assert "Code does not exist" in error["message"]


async def test_a_failed_migration_fails(system: System) -> None:
    system.sims.set_outcome("pbsm", "MIG_BAD", "FAILED")
    command_id = await system.publish("import-objects", {"code": "MIG_BAD"})
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.import-objects.failed"
    assert terminal["data"]["error"]["kind"] == "vendor_failed"
    assert terminal["data"]["status"] == "FAILED"


# --- request-upload-url, request-download-url, list-files -----------------------------------------


async def test_a_file_goes_up_and_comes_back_through_par_urls(system: System) -> None:
    content = "id,amount\n1,10\n"
    size = len(content.encode())
    data = {"file_name": "ledger_2026-11.csv", "file_size": size, "mime_type": "text/csv"}
    upload_id = await system.publish("request-upload-url", data)
    upload = await system.events.terminal(upload_id)
    assert upload["type"] == "flowgate.request-upload-url.succeeded", upload["data"]
    assert system.events.kinds(upload_id) == ["succeeded"], "synchronous: no accepted"
    result = upload["data"]["result"]
    file_id = upload["data"]["vendor_ref"]["file_id"]
    assert upload["data"]["vendor_ref"] == {"file_name": "ledger_2026-11.csv", "file_id": file_id}
    assert result["fileId"] == file_id and result["status"] == "success"
    datetime.fromisoformat(result["expires_at"])
    [asked] = calls(system, "upload_url")
    check(
        asked,
        "POST",
        f"{UTILS}/file/uploadfile/parURL",
        FILES | {"content-type": "application/json"},
        absent=("ofs_service_id",),
        query={"prefix": ""},
        body={"fileName": "ledger_2026-11.csv", "fileSize": size, "mimeType": "text/csv"},
    )
    async with httpx.AsyncClient() as http:
        put = await http.put(result["url"], content=content, headers={"Content-Type": "text/csv"})
        assert put.status_code == 200
        # An upload PAR does not read, and only its own object.
        assert (await http.get(result["url"])).status_code == 404

    listing_id = await system.publish("list-files", {})
    listing = (await system.events.terminal(listing_id))["data"]
    names = {f["v_file_name"]: f for f in listing["result"]["files"]}
    assert names["ledger_2026-11.csv"]["n_file_id"] == file_id
    assert listing["result"]["count"] == len(names)
    [listed] = calls(system, "list_files")
    check(listed, "GET", f"{UTILS}/listfiles", FILES, query={"stripeName": "default"})

    by_name = await system.publish("request-download-url", {"file_name": "ledger_2026-11.csv"})
    by_id = await system.publish("request-download-url", {"file_id": int(file_id)})
    urls = []
    for command_id in (by_name, by_id):
        terminal = await system.events.terminal(command_id)
        assert terminal["type"] == "flowgate.request-download-url.succeeded", terminal["data"]
        assert system.events.kinds(command_id) == ["succeeded"]
        urls.append(terminal["data"]["result"]["url"])
    async with httpx.AsyncClient() as http:
        for url in urls:
            got = await http.get(url)
            assert (got.status_code, got.text) == (200, content)
            assert "filename=ledger_2026-11.csv" in got.headers["content-disposition"]
    [named] = calls(system, "download_url")
    query = {"fileName": "ledger_2026-11.csv", "stripeName": "default", "prefix": ""}
    check(named, "GET", f"{UTILS}/file/download", FILES, query=query)
    [numbered] = calls(system, "download_url_by_id")
    check(numbered, "GET", f"{UTILS}/file/downloadfile/{file_id}", FILES)


async def test_the_examples_against_the_simulators_defaults(system: System) -> None:
    from workers.commands import COMMANDS

    for command_type in (
        "generate-report",
        "export-objects",
        "import-objects",
        "request-upload-url",
        "request-download-url",
        "list-files",
    ):
        command_id = await system.publish(command_type, COMMANDS[command_type].example)
        terminal = await system.events.terminal(command_id)
        assert terminal["type"] == f"flowgate.{command_type}.succeeded", terminal["data"]


@pytest.mark.parametrize(
    "data",
    [
        {"file_name": "-x.csv", "file_size": 10, "mime_type": "text/csv"},
        {"file_name": "a b.csv", "file_size": 10, "mime_type": "text/csv"},
        {"file_name": "a" * 256, "file_size": 10, "mime_type": "text/csv"},
        {"file_name": "a.csv", "file_size": 1, "mime_type": "text/csv"},
        {"file_name": "a.json", "file_size": 10, "mime_type": "application/json"},
    ],
)
async def test_a_file_the_rules_refuse_never_reaches_the_vendor(
    system: System, data: dict[str, Any]
) -> None:
    command_id = await system.publish("request-upload-url", data)
    terminal = await system.events.terminal(command_id)
    assert terminal["data"]["error"]["kind"] == "invalid"
    assert calls(system, "upload_url") == []


async def test_a_file_the_vendor_does_not_have_is_rejected(system: System) -> None:
    command_id = await system.publish("request-download-url", {"file_name": "nope.csv"})
    error = (await system.events.terminal(command_id))["data"]["error"]
    assert (error["kind"], error["http_status"]) == ("rejected", 404)


# --- PAR URLs never logged ------------------------------------------------------------------


def _texts(record: logging.LogRecord) -> Iterator[str]:
    yield record.getMessage()
    yield repr(record.args)
    if record.exc_info:
        yield logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        yield record.stack_info


async def test_par_urls_appear_only_in_their_commands_events_and_in_no_log_line(
    system: System, every_record: pytest.LogCaptureFixture
) -> None:
    system.sims.set_outcome("pbsm", "RPT_FAILS", "FAIL")
    asking = {
        await system.publish("generate-report", {"report_code": "RPT_LOGS"}): "url",
        await system.publish(
            "request-upload-url",
            {"file_name": "secret-check.dat", "file_size": 99, "mime_type": "DAT"},
        ): "url",
        await system.publish("request-download-url", {"file_name": "Idcs_log3.txt"}): "url",
        await system.publish("request-download-url", {"file_id": 9917}): "url",
    }
    others = [
        await system.publish("generate-report", {"report_code": "RPT_FAILS"}),
        await system.publish("request-download-url", {"file_name": "nope.csv"}),
        await system.publish("list-files", {"stripe_name": "default"}),
        await system.publish("export-objects", {"code": "MIG_LOGS"}),
    ]
    urls: dict[str, str] = {}
    for command_id in asking:
        terminal = await system.events.terminal(command_id)
        assert terminal["type"].endswith(".succeeded"), terminal["data"]
        urls[command_id] = terminal["data"]["result"]["url"]
    for command_id in others:
        await system.events.terminal(command_id)
    await asyncio.sleep(0.2)  # the settlement's own log lines
    secrets = set(urls.values()) | {par_token(url) for url in urls.values()}
    assert len(secrets) == 2 * len(urls)
    records = every_record.records
    assert len(records) > 20, "the capture sees the system's records"
    for record in records:
        for text in _texts(record):
            for secret in secrets:
                assert secret not in text, f"{record.name}: {record.levelname}: {text[:200]}"
    # In the events: only the asking command's, and only its terminal event.
    for command_id, events in system.events.by_command.items():
        for event in events:
            text = json.dumps(event)
            for owner, url in urls.items():
                if owner != command_id or event["type"].rsplit(".", 1)[-1] != "succeeded":
                    assert par_token(url) not in text, (event["type"], owner)
