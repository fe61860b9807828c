"""httpx client for the Robusta scheduler connector API: process start and process status.

The injected `httpx.AsyncClient` is shared by many connections, so the URL, the Basic
credentials and the timeout are set on each request, never on the client. The two paths differ
in case (`connector-API` to start, `connector-api` for status), exactly as in the seed.

Answers:
- non-2xx: `error_for(...)` — 429/502/503/504 → `VendorUnavailable` (with `retry_after`),
  any other (400, 401, 404, ...) → `VendorRejected`, with the vendor's `{"message"}`.
- 2xx whose body is not the documented JSON (e.g. "answered 200 without a robustaSpid") →
  `VendorRejected`: the vendor took the call, so repeating it blindly could start a second
  process, and an answer we cannot read will not become readable by retrying.
Error messages carry the call, the HTTP status and the vendor's error text, never credentials.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import ValidationError

from workers.errors import VendorRejected
from workers.vendors._http import basic_json, json_or_none
from workers.vendors.robusta.config import RobustaConnection
from workers.vendors.robusta.models import (
    ProcessStatusResponse,
    RobustaErrorBody,
    StartProcessRequest,
    StartProcessResponse,
)

__all__ = ["PROCESS_START_PATH", "PROCESS_STATUS_PATH", "RobustaClient"]

PROCESS_START_PATH = "/scheduler/connector-API/process/start"
PROCESS_STATUS_PATH = "/scheduler/connector-api/process/status/{robusta_spid}"

_MAX_MESSAGE = 500


class RobustaClient:
    """One async method per vendor call, over a shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, connection: RobustaConnection) -> None:
        self._http = http
        self._connection = connection

    @property
    def connection(self) -> RobustaConnection:
        return self._connection

    async def start_process(self, request: StartProcessRequest) -> StartProcessResponse:
        """`POST /scheduler/connector-API/process/start`; the answer holds the robustaSpid."""
        what = "Process start"
        response = await basic_json(
            self._http,
            self._connection,
            "POST",
            PROCESS_START_PATH,
            what=what,
            vendor_error=_vendor_error,
            body=request.body(),
        )
        data = json_or_none(response)
        if not isinstance(data, dict) or not data.get("robustaSpid"):
            raise VendorRejected(
                f"{what}: answered {response.status_code} without a robustaSpid",
                http_status=response.status_code,
            )
        try:
            return StartProcessResponse.model_validate(data)
        except ValidationError:
            raise VendorRejected(
                f"{what}: answered {response.status_code} with an unreadable robustaSpid",
                http_status=response.status_code,
            ) from None

    async def process_status(self, robusta_spid: str) -> ProcessStatusResponse:
        """`GET /scheduler/connector-api/process/status/{robustaSpid}`."""
        what = f"Process status {robusta_spid}"
        path = PROCESS_STATUS_PATH.format(robusta_spid=quote(robusta_spid, safe=""))
        response = await basic_json(
            self._http,
            self._connection,
            "GET",
            path,
            what=what,
            vendor_error=_vendor_error,
        )
        data = json_or_none(response)
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise VendorRejected(
                f"{what}: answered {response.status_code} without a status",
                http_status=response.status_code,
            )
        try:
            return ProcessStatusResponse.model_validate(data)
        except ValidationError:
            raise VendorRejected(
                f"{what}: answered {response.status_code} with an unreadable status",
                http_status=response.status_code,
            ) from None


def _vendor_error(response: httpx.Response) -> tuple[str | None, str]:
    """The vendor's `{"message"}` of an error answer, if any (Robusta sends no code)."""
    try:
        body = RobustaErrorBody.model_validate(json_or_none(response))
    except ValidationError:
        return None, ""
    return None, (body.message or "")[:_MAX_MESSAGE]
