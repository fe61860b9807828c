"""HTTP client of Oracle PBSM Cloud's public APIs (seed 004): the External Scheduler Interface
(chapter 10), the Generate Report API and its status API (8, 9), the object migration export
and import APIs and their status APIs (4 to 7) and the PAR URL file APIs (3).

Scheduler calls are `POST {base_url}/SchedulerService/rest-api/v1/external/<call>`; each other
API sends exactly the headers its chapter lists. Every call carries a Bearer token from the
connection's shared `TokenManager`: a 401 drops the token, renews it (once per connection,
whoever asks first) and retries the call once; a second 401 is final. HTTP 200 with a negative
scheduler `statusCode` (Table 10-1: -3 … -8) is a `VendorRejected`.

PAR URLs come back inside `SecretStr`s and no error message is built from an answer's body
beyond the vendor's own error text: a PAR URL never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors._http import RETRIABLE_STATUSES, call, error_for, json_or_none
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.models import (
    BatchRunRequest,
    ErrorAnswer,
    FileList,
    MigrationAnswer,
    ParAnswer,
    ReportAnswer,
    ReportRequest,
    SchedulerAnswer,
    StatusAnswer,
    StatusRequest,
    TriggerRequest,
    UploadRequest,
    describe_code,
)
from workers.vendors.pbsm.tokens import TokenManager

__all__ = ["MIGRATE_PATH", "REPORT_PATH", "SCHEDULER_PATH", "Direction", "PbsmClient"]

SCHEDULER_PATH = "/SchedulerService/rest-api/v1/external"
REPORT_PATH = "/aai-dmi-service/vw/v1"
MIGRATE_PATH = "/public/migrate"
JSON = "application/json"

AnswerT = TypeVar("AnswerT", bound=SchedulerAnswer)
ModelT = TypeVar("ModelT", ReportAnswer, MigrationAnswer, ParAnswer, FileList)
Direction = Literal["export", "import"]


class PbsmClient:
    def __init__(
        self, http: httpx.AsyncClient, connection: PbsmConnection, tokens: TokenManager
    ) -> None:
        self._http = http
        self._connection = connection
        self._tokens = tokens

    @property
    def connection(self) -> PbsmConnection:
        return self._connection

    @property
    def tokens(self) -> TokenManager:
        return self._tokens

    def url(self, name: str) -> str:
        return f"{self._connection.base_url.rstrip('/')}{SCHEDULER_PATH}/{name}"

    async def trigger(self, request: TriggerRequest) -> SchedulerAnswer:
        """Execution API: trigger a batch (`rest`) or a batch group (`group`)."""
        return await self._post("trigger", request.wire(), SchedulerAnswer)

    async def status(
        self, batch_run_id: str, *, tasks: Sequence[str] | None = None
    ) -> StatusAnswer:
        """Execution Status API; `tasks` (task codes) is sent only when given."""
        body = StatusRequest(batchRunId=batch_run_id, tasks=list(tasks) if tasks else None)
        return await self._post("status", body.wire(), StatusAnswer)

    async def interrupt(self, batch: str, batch_run_id: str) -> SchedulerAnswer:
        return await self._run_call("interrupt", batch, batch_run_id)

    async def rerun(self, batch: str, batch_run_id: str) -> SchedulerAnswer:
        return await self._run_call("rerun", batch, batch_run_id)

    async def restart(self, batch: str, batch_run_id: str) -> SchedulerAnswer:
        return await self._run_call("restart", batch, batch_run_id)

    async def _run_call(self, name: str, batch: str, batch_run_id: str) -> SchedulerAnswer:
        body = BatchRunRequest(batchName=batch, batchRunId=batch_run_id)
        return await self._post(name, body.wire(), SchedulerAnswer)

    # --- Generate Report API, Get Report Generation Status and PAR URL Link API ------------

    async def generate_report(
        self,
        request: ReportRequest,
        *,
        report_code: str,
        report_type: str,
        report_def_type: str,
        app_id: str,
    ) -> ReportAnswer:
        """`POST {base_url}/aai-dmi-service/vw/v1/repgen` with chapter 8's headers."""
        headers = self._report_headers(report_code)
        headers |= {"reportType": report_type, "appid": app_id, "reportDefType": report_def_type}
        url = f"{self._base}{REPORT_PATH}/repgen"
        return await self._json("PBSM repgen", "POST", url, headers, ReportAnswer, request.wire())

    async def report_status(self, report_code: str, instance_id: str) -> ReportAnswer:
        """`POST {base_url}/aai-dmi-service/vw/v1/repgenstatus`: chapter 9 names the report by
        headers (`reportcode`, `reportInstanceID`) and gives no body: `{}` is sent."""
        headers = self._report_headers(report_code) | {"reportInstanceID": instance_id}
        url = f"{self._base}{REPORT_PATH}/repgenstatus"
        return await self._json("PBSM repgenstatus", "POST", url, headers, ReportAnswer, {})

    def _report_headers(self, report_code: str) -> dict[str, str]:
        connection = self._connection
        return {
            "ofs_remote_user": connection.remote_user,
            "ofs_service_id": connection.service_id,
            "ofs_workspace_id": connection.workspace_id,
            "locale": connection.locale,
            "reportcode": report_code,
            "Content-Type": JSON,
        }

    # --- Invoke Export/Import API, Get Export/Import Status API -----------------------------

    async def migrate(self, direction: Direction, code: str) -> tuple[int, MigrationAnswer]:
        """`POST {base_url}/public/migrate/{export|import}/{code}`; no body is documented: `{}`.

        The HTTP status and the answer, whenever the answer is the document's `{"errorMessage",
        "statusCode", "status"}`: its 400s (in progress, already complete, invalid input) are
        outcomes the caller maps. Any other failure raises, as every call's does."""
        url = f"{self._base}{MIGRATE_PATH}/{direction}/{quote(code, safe='')}"
        what = f"PBSM {direction}"
        response = await self._send(what, "POST", url, self._migration_headers(), {})
        payload = json_or_none(response)
        documented = isinstance(payload, dict) and bool(payload.get("statusCode"))
        if not response.is_success and (
            response.status_code in RETRIABLE_STATUSES or not documented
        ):
            raise _api_error(response, payload, what)
        try:
            return response.status_code, MigrationAnswer.model_validate(payload)
        except ValidationError:
            raise VendorRejected(
                f"{what}: HTTP {response.status_code}: not the answer the document describes",
                http_status=response.status_code,
            ) from None

    async def migration_status(self, direction: Direction, code: str) -> MigrationAnswer:
        """`GET {base_url}{export_status_path | import_status_path}` (the document spells the
        export one `/Public/...`; both are connection settings)."""
        connection = self._connection
        path = (
            connection.export_status_path
            if direction == "export"
            else connection.import_status_path
        )
        url = self._base + path.replace("{code}", quote(code, safe=""))
        what = f"PBSM {direction} status"
        return await self._json(what, "GET", url, self._migration_headers(), MigrationAnswer)

    def _migration_headers(self) -> dict[str, str]:
        connection = self._connection
        return {
            "ofs_tenant_id": connection.tenant_id,
            "locale": connection.locale,
            "ofs_remote_user": connection.remote_user,
            "ofs_workspace_id": connection.workspace_id,
            "Content-Type": JSON,
        }

    # --- PAR URLs for file operations -------------------------------------------------------

    async def upload_url(self, request: UploadRequest, *, prefix: str) -> ParAnswer:
        """`POST {files}/file/uploadfile/parURL?prefix=` with `{"fileName", "fileSize",
        "mimeType"}` (or a list of it, `upload_body = "list"`)."""
        body: Any = request.wire()
        if self._connection.upload_body == "list":
            body = [body]
        url = f"{self._connection.files_root}/file/uploadfile/parURL"
        headers = self._file_headers() | {"Content-Type": JSON}
        return await self._json(
            "PBSM upload PAR", "POST", url, headers, ParAnswer, body, params={"prefix": prefix}
        )

    async def download_url(self, file_name: str, *, stripe_name: str, prefix: str) -> ParAnswer:
        """`GET {files}/file/download?fileName=…&stripeName=…&prefix=`."""
        url = f"{self._connection.files_root}/file/download"
        params = {"fileName": file_name, "stripeName": stripe_name, "prefix": prefix}
        return await self._json(
            "PBSM download PAR", "GET", url, self._file_headers(), ParAnswer, params=params
        )

    async def download_url_by_id(self, file_id: int) -> ParAnswer:
        """`GET {files}/file/downloadfile/{file id}`."""
        url = f"{self._connection.files_root}/file/downloadfile/{file_id}"
        return await self._json("PBSM download PAR", "GET", url, self._file_headers(), ParAnswer)

    async def list_files(self, *, stripe_name: str) -> FileList:
        """`GET {files}/listfiles?stripeName=…`."""
        url = f"{self._connection.files_root}/listfiles"
        return await self._json(
            "PBSM listfiles",
            "GET",
            url,
            self._file_headers(),
            FileList,
            params={"stripeName": stripe_name},
        )

    def _file_headers(self) -> dict[str, str]:
        connection = self._connection
        return {
            "ofs_remote_user": connection.remote_user,
            "locale": connection.locale,
            "ofs_tenant_id": connection.tenant_id,
            "ofs_workspace_id": connection.workspace_id,
        }

    # --- the wire ---------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return self._connection.base_url.rstrip("/")

    def _scheduler_headers(self) -> dict[str, str]:
        connection = self._connection
        return {
            "ofs_tenant_id": connection.tenant_id,
            "ofs_service_id": connection.service_id,
            "ofs_workspace_id": connection.workspace_id,
            "ofs_remote_user": connection.remote_user,
            "locale": connection.locale,
            "Content-Type": JSON,
        }

    async def _send(
        self,
        what: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call with the connection's Bearer token; a 401 renews the token (one renewal
        per connection for every caller) and sends the call once more."""
        for attempt in (1, 2):
            token = await self._tokens.token()
            request = self._http.build_request(
                method,
                url,
                headers={**headers, "Authorization": f"Bearer {token}"},
                params=params,
                json=body,
                timeout=self._connection.timeout,
            )
            response = await call(self._http, request, what=what)
            if response.status_code == 401 and attempt == 1:
                self._tokens.invalidate(token)
                continue
            break
        return response

    async def _json(
        self,
        what: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        model: type[ModelT],
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> ModelT:
        """A call of the report, migration or file APIs: the answer as `model`, or the typed
        error with the vendor's `statusCode`, `errorMessage` and `status` when it gave them."""
        response = await self._send(what, method, url, headers, body, params=params)
        payload = json_or_none(response)
        if not response.is_success:
            raise _api_error(response, payload, what)
        try:
            return model.model_validate(payload)
        except ValidationError:
            # Never the validation error's text: it would quote the answer (a PAR URL).
            raise VendorRejected(
                f"{what}: HTTP {response.status_code}: not the answer the document describes",
                http_status=response.status_code,
            ) from None

    async def _post(self, name: str, body: dict[str, Any], model: type[AnswerT]) -> AnswerT:
        what = f"PBSM {name}"
        response = await self._send(what, "POST", self.url(name), self._scheduler_headers(), body)
        payload = json_or_none(response)
        if not response.is_success:
            raise _http_error(response, payload, what)
        try:
            answer = model.model_validate(payload)
        except ValidationError:
            raise VendorRejected(
                f"{what}: HTTP {response.status_code}: answer is not a PBSM JSON object",
                http_status=response.status_code,
            ) from None
        _check_status_code(answer, what, response.status_code)
        return answer


def _reason(answer: SchedulerAnswer) -> str:
    return ": ".join(part for part in (answer.details, answer.summary) if part)


def _check_status_code(answer: SchedulerAnswer, what: str, http_status: int) -> None:
    code = (answer.statusCode or "").strip()
    if not code.startswith("-"):
        return
    text = f"{what}: statusCode {code} ({describe_code(code)})"
    if reason := _reason(answer):
        text = f"{text}: {reason}"
    raise VendorRejected(text, http_status=http_status, vendor_code=code, status=answer.status)


def _http_error(
    response: httpx.Response, payload: object, what: str
) -> VendorRejected | VendorUnavailable:
    # PBSM documents no error body; use its usual answer fields when it sends them.
    code: str | None = None
    text = ""
    if isinstance(payload, dict):
        try:
            answer = SchedulerAnswer.model_validate(payload)
        except ValidationError:
            answer = SchedulerAnswer()
        code = answer.statusCode
        text = _reason(answer)
    return error_for(response, what=what, vendor_code=code, message=text)


def _api_error(
    response: httpx.Response, payload: object, what: str
) -> VendorRejected | VendorUnavailable:
    """The report, migration and file APIs' errors: the migration chapters' `{"errorMessage",
    "statusCode", "status"}` (the others document none; `message` is read too)."""
    answer = ErrorAnswer()
    if isinstance(payload, dict):
        try:
            answer = ErrorAnswer.model_validate(payload)
        except ValidationError:
            answer = ErrorAnswer()
    error = error_for(response, what=what, vendor_code=answer.statusCode, message=answer.text())
    error.status = answer.status
    return error
