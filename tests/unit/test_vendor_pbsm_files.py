"""Oracle PBSM reports, object migrations and PAR file APIs: the exact requests (headers, paths,
queries, bodies) each chapter of the document lists, the answers mapped to outcomes, the
file rules checked before any call, `token_url`, and PAR URLs kept out of every message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from contracts.commands import (
    ExportObjects,
    GenerateReport,
    ImportObjects,
    ListFiles,
    RequestDownloadUrl,
    RequestUploadUrl,
)
from workers.errors import UnknownOutcome, VendorRejected, VendorUnavailable
from workers.settings import Settings
from workers.vendors.pbsm import (
    ExportObjectsHandler,
    GenerateReportHandler,
    ImportObjectsHandler,
    ListFilesHandler,
    PbsmClient,
    PbsmConnection,
    RequestDownloadUrlHandler,
    RequestUploadUrlHandler,
    TokenManager,
)

BASE = "https://pbsm.test"
TOKEN_URL = "https://iam.test/oauth2/v1/token"
PAR = "https://objectstorage.test/p/s3cretParT0ken/n/ns/b/bucket/o/default/2023-01-31/x/y"
AUTH = {"authorization": "Bearer access-1"}
USER = {"ofs_remote_user": "batchuser", "ofs_workspace_id": "WS001", "locale": "en-US"}
Answer = Callable[[httpx.Request], httpx.Response]


class Fake:
    """The token endpoint plus one scripted answer per path; records every API call."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.answers: dict[str, Any] = answers or {}
        self.calls: list[httpx.Request] = []
        self.tokens = 0
        self.revoked = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.tokens += 1
            self.revoked = False
            body = {"access_token": f"access-{self.tokens}", "expires_in": 3600}
            return httpx.Response(200, json=body | {"refresh_token": "r"})
        self.calls.append(request)
        if self.revoked:
            return httpx.Response(401)
        answer = self.answers[request.url.path]
        if callable(answer):
            result: httpx.Response = answer(request)
            return result
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def client(fake: Fake, **settings: Any) -> PbsmClient:
    connection = PbsmConnection(base_url=BASE, token_url=TOKEN_URL, timeout=5.0, **settings)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return PbsmClient(http, connection, TokenManager(http, connection))


def headers_of(request: httpx.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def check_headers(
    request: httpx.Request, expected: dict[str, str], absent: tuple[str, ...]
) -> None:
    got = headers_of(request)
    for name, value in (expected | AUTH).items():
        assert got.get(name.lower()) == value, (name, got)
    for name in absent:
        assert name not in got, name


# --- token_url ---------------------------------------------------------------------------


def test_token_url_is_required_for_a_pbsm_that_is_not_the_local_simulator() -> None:
    with pytest.raises(ValidationError, match="token_url is required") as info:
        PbsmConnection(base_url="https://pbsm.example.com")
    assert "https://<iam_tenant>/oauth2/v1/token" in str(info.value)
    with pytest.raises(ValidationError, match="token_url is required") as info:
        Settings(pbsm={"prod": {"base_url": "http://simulators:8700"}})
    assert "pbsm.prod" in str(info.value)
    given = PbsmConnection(base_url="https://pbsm.example.com", token_url=TOKEN_URL)
    assert given.token_endpoint == TOKEN_URL
    for local in ("http://127.0.0.1:8700", "http://localhost:9000/", "http://[::1]:8700"):
        connection = PbsmConnection(base_url=local)
        assert connection.token_endpoint == local.rstrip("/") + "/oauth2/v1/token"
    assert PbsmConnection().token_endpoint == "http://127.0.0.1:8700/oauth2/v1/token"


# --- Generate Report API and its status API ------------------------------------------------

REPORT_HEADERS = USER | {"ofs_service_id": "PBSMCS", "content-type": "application/json"}


async def test_generate_report_sends_chapter_8s_headers_and_body() -> None:
    fake = Fake(
        {"/aai-dmi-service/vw/v1/repgen": {"status": "PENDING", "requestInstanceId": "100"}}
    )
    command = GenerateReport(
        report_code="RPT1",
        report_type="CSV",
        filter_criteria="T.CREATED_BY = 'DMIUSER1'",
        placeholder_filter="T.CURRENCY = PLACEHOLDER1",
    )
    triggered = await GenerateReportHandler(client(fake, app_id="APP9")).trigger(
        command, command_id="c"
    )
    assert triggered.vendor_ref == {"report_code": "RPT1", "report_instance_id": "100"}
    assert triggered.status == "PENDING" and triggered.report is None
    (call,) = fake.calls
    assert (call.method, str(call.url)) == ("POST", f"{BASE}/aai-dmi-service/vw/v1/repgen")
    extra = {"reportcode": "RPT1", "reportType": "CSV", "appid": "APP9", "reportDefType": "V"}
    check_headers(call, REPORT_HEADERS | extra, absent=("ofs_tenant_id",))
    assert json.loads(call.content) == {
        "filterCriteria": "T.CREATED_BY = 'DMIUSER1'",
        "placeholderFilter": "T.CURRENCY = PLACEHOLDER1",
    }
    # No filter: both members, empty, as the document's sample without a filter.
    await GenerateReportHandler(client(fake)).trigger(
        GenerateReport(report_code="RPT1", app_id="OWN"), command_id="c"
    )
    assert json.loads(fake.calls[1].content) == {"filterCriteria": "", "placeholderFilter": ""}
    assert fake.calls[1].headers["appid"] == "OWN"


async def test_report_status_names_the_report_by_headers() -> None:
    answer = {"status": "RUNNING", "requestInstanceId": "100"}
    fake = Fake({"/aai-dmi-service/vw/v1/repgenstatus": answer})
    ref = {"report_code": "RPT1", "report_instance_id": "100"}
    report = await GenerateReportHandler(client(fake)).status(ref, cursor={})
    assert (report.state, report.status) == ("running", "RUNNING")
    (call,) = fake.calls
    assert (call.method, call.url.path) == ("POST", "/aai-dmi-service/vw/v1/repgenstatus")
    expected = REPORT_HEADERS | {"reportcode": "RPT1", "reportInstanceID": "100"}
    check_headers(call, expected, absent=("ofs_tenant_id", "appid", "reporttype"))
    assert json.loads(call.content) == {}


REPORT_ANSWERS: list[tuple[dict[str, Any], str, str]] = [
    ({"status": "PENDING", "requestInstanceId": "100"}, "running", "PENDING"),
    ({"status": "RUNNING", "requestInstanceId": "100"}, "running", "RUNNING"),
    ({"status": "FAIL", "reportInstanceId": "100"}, "failed", "FAIL"),
    ({"status": "FAILED", "reportInstanceId": "100"}, "failed", "FAILED"),
    (
        {"status": "COMPLETE", "reportInstanceId": "100", "downloadLink": PAR},
        "succeeded",
        "COMPLETE",
    ),
    (
        {"requestInstanceId": "183", "downloadLink": PAR, "status": "COMPLETED"},
        "succeeded",
        "COMPLETED",
    ),
    # The field list's spellings.
    (
        {"status": "COMPLETE", "requestInstanceid": "100", "downloadlink": PAR},
        "succeeded",
        "COMPLETE",
    ),
    ({"status": "COMPLETE", "requestInstanceId": "100"}, "failed", "COMPLETE"),  # no link
    ({"status": "QUEUED", "requestInstanceId": "100"}, "failed", "QUEUED"),
]


@pytest.mark.parametrize(("answer", "state", "status"), REPORT_ANSWERS)
async def test_report_statuses_both_spellings(
    answer: dict[str, Any], state: str, status: str
) -> None:
    fake = Fake({"/aai-dmi-service/vw/v1/repgenstatus": answer})
    ref = {"report_code": "RPT1", "report_instance_id": "100"}
    report = await GenerateReportHandler(client(fake)).status(ref, cursor={})
    assert (report.state, report.status) == (state, status)
    if state == "succeeded":
        assert report.result["url"] == PAR and report.result["expires_at"].endswith("Z")
    else:
        assert "url" not in report.result
        assert PAR not in str(report) and "s3cretParT0ken" not in str(report.message)


async def test_an_unknown_report_status_may_be_read_as_running() -> None:
    fake = Fake({"/aai-dmi-service/vw/v1/repgenstatus": {"status": "QUEUED"}})
    ref = {"report_code": "RPT1", "report_instance_id": "100"}
    handler = GenerateReportHandler(client(fake, unknown_status="running"))
    assert (await handler.status(ref, cursor={})).state == "running"


async def test_a_report_answer_without_an_instance_id_cannot_be_followed() -> None:
    fake = Fake({"/aai-dmi-service/vw/v1/repgen": {"status": "PENDING"}})
    with pytest.raises(UnknownOutcome, match="no requestInstanceId"):
        await GenerateReportHandler(client(fake)).trigger(
            GenerateReport(report_code="RPT1"), command_id="c"
        )


@pytest.mark.parametrize("value", ["", "two words", "new\nline", "é"])
def test_report_header_values_are_checked_before_sending(value: str) -> None:
    with pytest.raises(ValidationError):
        GenerateReport(report_code=value)


# --- Invoke Export/Import API, Get Export/Import Status API ---------------------------------

MIGRATION_HEADERS = USER | {"ofs_tenant_id": "TENANT1", "content-type": "application/json"}


def migration(code: str, status: str, message: str, http_status: int = 200) -> httpx.Response:
    body = {"errorMessage": message, "statusCode": code, "status": status}
    return httpx.Response(http_status, json=body)


async def test_export_and_import_requests_and_the_seeds_status_paths() -> None:
    fake = Fake(
        {
            "/public/migrate/export/M&1": migration("TRIGGERED_SUCCESS", "SUCCESS", "ok"),
            "/public/migrate/import/M&1": migration("TRIGGERED_SUCCESS", "SUCCESS", "ok"),
            "/Public/status/export/M&1": migration("SUCCESS", "SUCCESS", "fetched"),
            "/public/status/import/M&1": migration("SUCCESS", "SUCCESS", "fetched"),
        }
    )
    pbsm = client(fake)
    for handler, direction in (
        (ExportObjectsHandler(pbsm), "export"),
        (ImportObjectsHandler(pbsm), "import"),
    ):
        model = ExportObjects if direction == "export" else ImportObjects
        triggered = await handler.trigger(model(code="M&1"), command_id="c")
        assert triggered.vendor_ref == {"migration_code": "M&1", "direction": direction}
        assert triggered.report is None
        report = await handler.status(triggered.vendor_ref, cursor={})
        assert (report.state, report.status, report.vendor_code) == (
            "succeeded",
            "SUCCESS",
            "SUCCESS",
        )
    paths = [(c.method, c.url.raw_path.decode()) for c in fake.calls]
    assert paths == [
        ("POST", "/public/migrate/export/M%261"),
        ("GET", "/Public/status/export/M%261"),
        ("POST", "/public/migrate/import/M%261"),
        ("GET", "/public/status/import/M%261"),
    ]
    for call in fake.calls:
        check_headers(call, MIGRATION_HEADERS, absent=("ofs_service_id",))
    assert [c.content for c in fake.calls] == [b"{}", b"", b"{}", b""]


async def test_the_status_paths_are_connection_settings() -> None:
    fake = Fake({"/public/status/export/M1": migration("SUCCESS", "SUCCESS", "fetched")})
    pbsm = client(fake, export_status_path="/public/status/export/{code}")
    ref = {"migration_code": "M1", "direction": "export"}
    assert (await ExportObjectsHandler(pbsm).status(ref, cursor={})).state == "succeeded"
    with pytest.raises(ValidationError, match="holds"):
        PbsmConnection(import_status_path="/public/status/import")


TRIGGERS: list[tuple[httpx.Response, dict[str, str], str | None]] = [
    # (answer, settings, the outcome: "followed", "succeeded" or the VendorRejected code)
    (migration("TRIGGERED_SUCCESS", "SUCCESS", "Object Migration Triggered"), {}, "followed"),
    (migration("EXPORT_INPROGRESS", "INPROGRESS", "Export in progress", 400), {}, "followed"),
    (
        migration("EXPORT_INPROGRESS", "INPROGRESS", "Export in progress", 400),
        {"migration_in_progress": "reject"},
        "EXPORT_INPROGRESS",
    ),
    (
        migration("EXPORT_ALREADY_COMPLETE", "FAILED", "Export already completed", 400),
        {},
        "EXPORT_ALREADY_COMPLETE",
    ),
    (
        migration("EXPORT_ALREADY_COMPLETE", "FAILED", "Export already completed", 400),
        {"migration_already_complete": "succeed"},
        "succeeded",
    ),
    (migration("INVALID_INPUT", "FAILED", "Code does not exist", 400), {}, "INVALID_INPUT"),
    (migration("INTERNAL_ERROR", "FAILED", "Internal Server Error", 500), {}, "INTERNAL_ERROR"),
]


@pytest.mark.parametrize(("answer", "settings", "outcome"), TRIGGERS)
async def test_export_answers_map_to_outcomes(
    answer: httpx.Response, settings: dict[str, str], outcome: str
) -> None:
    fake = Fake({"/public/migrate/export/M1": answer})
    handler = ExportObjectsHandler(client(fake, **settings))
    if outcome in ("followed", "succeeded"):
        triggered = await handler.trigger(ExportObjects(code="M1"), command_id="c")
        if outcome == "followed":
            assert triggered.report is None
        else:
            assert triggered.report is not None and triggered.report.state == "succeeded"
        return
    with pytest.raises(VendorRejected) as info:
        await handler.trigger(ExportObjects(code="M1"), command_id="c")
    assert info.value.vendor_code == outcome
    assert info.value.http_status == answer.status_code
    assert json.loads(answer.content)["errorMessage"] in info.value.message


@pytest.mark.parametrize("status", [503, 502])
async def test_a_passing_migration_error_is_retried_not_read_as_an_answer(status: int) -> None:
    fake = Fake({"/public/migrate/import/M1": migration("X", "FAILED", "busy", status)})
    with pytest.raises(VendorUnavailable) as info:
        await ImportObjectsHandler(client(fake)).trigger(ImportObjects(code="M1"), command_id="c")
    assert info.value.maybe_sent == (status == 502)


@pytest.mark.parametrize(
    ("status", "state"),
    [("INPROGRESS", "running"), ("SUCCESS", "succeeded"), ("FAILED", "failed"), ("ODD", "failed")],
)
async def test_migration_status_mapping(status: str, state: str) -> None:
    fake = Fake({"/public/status/import/M1": migration(f"IMPORT_{status}", status, "text")})
    ref = {"migration_code": "M1", "direction": "import"}
    report = await ImportObjectsHandler(client(fake)).status(ref, cursor={})
    assert (report.state, report.status) == (state, status)
    assert report.result == {
        "errorMessage": "text",
        "statusCode": f"IMPORT_{status}",
        "status": status,
    }


async def test_migration_status_invalid_input_is_rejected() -> None:
    answer = migration("INVALID_INPUT", "FAILED", "Code does not exist", 400)
    fake = Fake({"/Public/status/export/M1": answer})
    ref = {"migration_code": "M1", "direction": "export"}
    with pytest.raises(VendorRejected) as info:
        await ExportObjectsHandler(client(fake)).status(ref, cursor={})
    assert (info.value.vendor_code, info.value.status) == ("INVALID_INPUT", "FAILED")


@pytest.mark.parametrize("code", ["", "a/b", "a b", "a?b", "a#b", "a%2F"])
def test_a_migration_code_must_fit_in_the_path(code: str) -> None:
    with pytest.raises(ValidationError):
        ExportObjects(code=code)


# --- PAR URLs for file operations -----------------------------------------------------------

FILE_HEADERS = USER | {"ofs_tenant_id": "TENANT1"}
UPLOADED = {
    "payload": {
        "uploadURL": PAR,
        "createUser": "user1",
        "stripeName": "default",
        "fileId": 5025,
        "createDate": "2023-01-31T09:14:16",
        "token": "",
        "status": "success",
    }
}


@pytest.mark.parametrize("shape", ["object", "list"])
async def test_upload_par_request_is_exact(shape: str) -> None:
    fake = Fake({"/TENANT1/utils-service/v1/file/uploadfile/parURL": UPLOADED})
    command = RequestUploadUrl(file_name="File.csv", file_size=7654, mime_type="text/csv")
    triggered = await RequestUploadUrlHandler(client(fake, upload_body=shape)).trigger(
        command, command_id="c"
    )
    (call,) = fake.calls
    assert call.method == "POST"
    assert str(call.url) == f"{BASE}/TENANT1/utils-service/v1/file/uploadfile/parURL?prefix="
    check_headers(call, FILE_HEADERS | {"content-type": "application/json"}, ("ofs_service_id",))
    body = {"fileName": "File.csv", "fileSize": 7654, "mimeType": "text/csv"}
    assert json.loads(call.content) == (body if shape == "object" else [body])
    assert triggered.vendor_ref == {"file_name": "File.csv", "file_id": "5025"}
    report = triggered.report
    assert report is not None and report.state == "succeeded" and report.status == "success"
    result = dict(report.result)
    assert result.pop("url") == PAR and result.pop("expires_at").endswith("Z")
    assert result == {
        "fileName": "File.csv",
        "createUser": "user1",
        "stripeName": "default",
        "fileId": "5025",
        "createDate": "2023-01-31T09:14:16",
        "status": "success",
    }


async def test_files_url_overrides_the_utils_service_root() -> None:
    fake = Fake({"/root/v2/file/uploadfile/parURL": UPLOADED})
    pbsm = client(fake, files_url="https://files.test/root/v2/")
    command = RequestUploadUrl(file_name="a.dat", file_size=2, mime_type="DAT", prefix="in")
    await RequestUploadUrlHandler(pbsm).trigger(command, command_id="c")
    assert str(fake.calls[0].url) == "https://files.test/root/v2/file/uploadfile/parURL?prefix=in"


async def test_download_par_by_name_and_by_id() -> None:
    download = {"payload": {"downloadURL": PAR + "?httpResponseContentDisposition=x"}}
    fake = Fake(
        {
            "/TENANT1/utils-service/v1/file/download": download,
            "/TENANT1/utils-service/v1/file/downloadfile/9916": download,
        }
    )
    handler = RequestDownloadUrlHandler(client(fake))
    by_name = await handler.trigger(RequestDownloadUrl(file_name="test3GB.xml"), command_id="c")
    by_id = await handler.trigger(RequestDownloadUrl(file_id=9916), command_id="c")
    first, second = fake.calls
    assert first.method == second.method == "GET"
    assert str(first.url) == (
        f"{BASE}/TENANT1/utils-service/v1/file/download?fileName=test3GB.xml&stripeName=default&prefix="
    )
    assert str(second.url) == f"{BASE}/TENANT1/utils-service/v1/file/downloadfile/9916"
    for call in fake.calls:
        check_headers(call, FILE_HEADERS, absent=("ofs_service_id", "content-type"))
        assert call.content == b""
    assert by_name.vendor_ref == {"file_name": "test3GB.xml"}
    assert by_id.vendor_ref == {"file_id": "9916"}
    for triggered in (by_name, by_id):
        assert triggered.report is not None
        assert triggered.report.result["url"] == PAR + "?httpResponseContentDisposition=x"


async def test_list_files() -> None:
    listed: dict[str, Any] = {
        "payload": [
            {
                "v_file_name": "Idcs_log3.txt",
                "n_file_id": 9916,
                "d_upload_date": "31-JAN-23 06:33:43 AM",
                "v_stripe_name": "default",
            },
        ],
        "count": 1,
    }
    fake = Fake({"/TENANT1/utils-service/v1/listfiles": listed})
    triggered = await ListFilesHandler(client(fake)).trigger(ListFiles(), command_id="c")
    (call,) = fake.calls
    assert str(call.url) == f"{BASE}/TENANT1/utils-service/v1/listfiles?stripeName=default"
    check_headers(call, FILE_HEADERS, absent=("ofs_service_id",))
    assert triggered.report is not None
    assert triggered.report.result == {
        "files": [{**listed["payload"][0], "n_file_id": "9916"}],
        "count": 1,
    }


@pytest.mark.parametrize("status", [502, 504])
async def test_a_lost_download_answer_is_safe_to_ask_again(status: int) -> None:
    fake = Fake({"/TENANT1/utils-service/v1/file/downloadfile/1": httpx.Response(status)})
    with pytest.raises(VendorUnavailable) as info:
        await RequestDownloadUrlHandler(client(fake)).trigger(
            RequestDownloadUrl(file_id=1), command_id="c"
        )
    assert not info.value.maybe_sent


async def test_a_par_url_never_reaches_an_error_message_or_a_repr() -> None:
    # An answer whose payload is not the document's (a list): refused without quoting it.
    fake = Fake({"/TENANT1/utils-service/v1/file/uploadfile/parURL": {"payload": [PAR]}})
    command = RequestUploadUrl(file_name="a.csv", file_size=10, mime_type="text/csv")
    with pytest.raises(VendorRejected) as info:
        await RequestUploadUrlHandler(client(fake)).trigger(command, command_id="c")
    assert "s3cretParT0ken" not in str(info.value) and "s3cretParT0ken" not in repr(info.value)
    # An answer without the URL.
    fake.answers["/TENANT1/utils-service/v1/file/uploadfile/parURL"] = {"payload": {"fileId": 1}}
    with pytest.raises(VendorRejected, match="no uploadURL"):
        await RequestUploadUrlHandler(client(fake)).trigger(command, command_id="c")
    # The parsed answers keep it hidden.
    from workers.vendors.pbsm.models import ParAnswer, ReportAnswer

    for answer in (
        ParAnswer.model_validate(UPLOADED),
        ReportAnswer.model_validate({"status": "COMPLETE", "downloadLink": PAR}),
        ReportAnswer.model_validate({"status": "COMPLETE", "downloadlink": PAR}),
    ):
        assert "s3cretParT0ken" not in repr(answer) and "s3cretParT0ken" not in str(answer)
        assert "s3cretParT0ken" not in str(answer.model_dump())


async def test_every_api_shares_the_connections_token_and_renews_it_once() -> None:
    fake = Fake(
        {
            "/aai-dmi-service/vw/v1/repgenstatus": {"status": "RUNNING"},
            "/Public/status/export/M1": migration("EXPORT_INPROGRESS", "INPROGRESS", "x"),
            "/TENANT1/utils-service/v1/listfiles": {"payload": [], "count": 0},
            "/TENANT1/utils-service/v1/file/downloadfile/1": {"payload": {"downloadURL": PAR}},
        }
    )
    pbsm = client(fake)
    await ListFilesHandler(pbsm).trigger(ListFiles(), command_id="c")
    assert fake.tokens == 1
    fake.revoked = True
    import asyncio

    await asyncio.gather(
        GenerateReportHandler(pbsm).status(
            {"report_code": "R", "report_instance_id": "1"}, cursor={}
        ),
        ExportObjectsHandler(pbsm).status(
            {"migration_code": "M1", "direction": "export"}, cursor={}
        ),
        ListFilesHandler(pbsm).trigger(ListFiles(), command_id="c"),
        RequestDownloadUrlHandler(pbsm).trigger(RequestDownloadUrl(file_id=1), command_id="c"),
    )
    assert fake.tokens == 2, "one renewal for every caller"
    assert all(c.headers["authorization"] == "Bearer access-2" for c in fake.calls[-4:])


# --- the file rules, before any call ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"file_name": "-a.csv"}, "start with a letter or a digit"),
        ({"file_name": ".a"}, "start with a letter or a digit"),
        ({"file_name": "a b.csv"}, "letters, digits"),
        ({"file_name": "a/b.csv"}, "letters, digits"),
        ({"file_name": "résumé.csv"}, "letters, digits"),
        ({"file_name": "a" * 256}, "at most 255"),
        ({"file_name": ""}, "empty"),
        ({"file_size": 1}, "greater than 1"),
        ({"file_size": 0}, "greater than 1"),
        ({"file_size": 10 * 2**40}, "less than"),
        ({"mime_type": "application/json"}, "Text/CSV, Text/plain, DAT"),
    ],
)
def test_upload_rules_are_checked_before_any_call(data: dict[str, Any], reason: str) -> None:
    good = {"file_name": "File.csv", "file_size": 7654, "mime_type": "text/csv"}
    with pytest.raises(ValidationError, match=reason):
        RequestUploadUrl.model_validate(good | data)


@pytest.mark.parametrize(
    "data",
    [
        {"file_name": "a" * 255},
        {"file_name": "0_a-b.c"},
        {"file_size": 2},
        {"file_size": 10 * 2**40 - 1},
        {"mime_type": "Text/CSV"},
        {"mime_type": "TEXT/PLAIN"},
        {"mime_type": "dat"},
    ],
)
def test_upload_rules_let_the_documents_values_through(data: dict[str, Any]) -> None:
    RequestUploadUrl.model_validate(
        {"file_name": "File.csv", "file_size": 7654, "mime_type": "text/csv"} | data
    )


@pytest.mark.parametrize(
    "data",
    [{}, {"file_name": "a", "file_id": 1}, {"file_id": 1, "stripe_name": "x"}, {"file_id": 0}],
)
def test_a_download_names_one_file(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RequestDownloadUrl.model_validate(data)


def test_secret_settings_stay_secret() -> None:
    connection = PbsmConnection(client_secret=SecretStr("cs-123"), par_lifetime=60)
    assert "cs-123" not in repr(connection)


# --- the new command types everywhere the table says --------------------------------------

NEW_TYPES = (
    "generate-report",
    "export-objects",
    "import-objects",
    "request-upload-url",
    "request-download-url",
    "list-files",
)


def test_the_readme_schemas_asyncapi_and_demo_include_the_new_commands() -> None:
    from pathlib import Path

    from contracts.schema import SCHEMA_DIR
    from workers.commands import COMMANDS
    from workers.demo import SAMPLE_COMMANDS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    asyncapi = json.loads((SCHEMA_DIR / "asyncapi.json").read_text())
    for command_type in NEW_TYPES:
        registration = COMMANDS[command_type]
        assert registration.vendor is not None and registration.vendor.name == "pbsm"
        assert readme.count(f"\n| `{command_type}` | Oracle PBSM |") == 1, command_type
        schema = json.loads((SCHEMA_DIR / f"command.{command_type}.json").read_text())
        assert schema["$id"].endswith(f"command.{command_type}.json")
        name = command_type.replace("-", "_")
        assert asyncapi["channels"][f"{name}_commands"]["address"] == command_type
        assert SAMPLE_COMMANDS[command_type] == registration.example
    followed = {t for t in NEW_TYPES if COMMANDS[t].followed}
    assert followed == {"generate-report", "export-objects", "import-objects"}
