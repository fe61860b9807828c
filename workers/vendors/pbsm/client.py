"""HTTP client of the Oracle PBSM External Scheduler Interface (seed 004, chapter 10).

Every call is `POST {base_url}/SchedulerService/rest-api/v1/external/<call>` with the `ofs_*`
headers and a Bearer token from the connection's shared `TokenManager`. A 401 drops the token,
renews it (once per connection, whoever asks first) and retries the call once; a second 401 is
final. HTTP 200 with a negative `statusCode` (Table 10-1: -3 … -8) is a `VendorRejected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors._http import call, error_for, json_or_none
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.models import (
    BatchRunRequest,
    SchedulerAnswer,
    StatusAnswer,
    StatusRequest,
    TriggerRequest,
    describe_code,
)
from workers.vendors.pbsm.tokens import TokenManager

__all__ = ["SCHEDULER_PATH", "PbsmClient"]

SCHEDULER_PATH = "/SchedulerService/rest-api/v1/external"

AnswerT = TypeVar("AnswerT", bound=SchedulerAnswer)


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

    def _headers(self, token: str) -> dict[str, str]:
        connection = self._connection
        return {
            "ofs_tenant_id": connection.tenant_id,
            "ofs_service_id": connection.service_id,
            "ofs_workspace_id": connection.workspace_id,
            "ofs_remote_user": connection.remote_user,
            "locale": connection.locale,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        }

    async def _post(self, name: str, body: dict[str, Any], model: type[AnswerT]) -> AnswerT:
        what = f"PBSM {name}"
        url = self.url(name)
        for attempt in (1, 2):
            token = await self._tokens.token()
            request = self._http.build_request(
                "POST",
                url,
                headers=self._headers(token),
                json=body,
                timeout=self._connection.timeout,
            )
            response = await call(self._http, request, what=what)
            if response.status_code == 401 and attempt == 1:
                self._tokens.invalidate(token)
                continue
            break
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
