"""httpx client for Informatica B2B Gateway: Run Partner and Event Status.

The injected `httpx.AsyncClient` is shared by many connections, so the URL, the Basic
credentials and the timeout are set on each request, never on the client.

Answers:
- non-2xx: `error_for(...)` — 429/502/503/504 → `VendorUnavailable` (with `retry_after`),
  any other (400, 401, 404, ...) → `VendorRejected`; the vendor's `{"error": {"code",
  "message"}}` gives the message and `vendor_code`.
- 2xx whose body is not the documented JSON (e.g. "answered 200 without an eventId") →
  `VendorRejected`: the vendor took the call, so repeating it blindly could start a second run,
  and an answer we cannot read will not become readable by retrying.
Error messages carry the call, the HTTP status and the vendor's error text, never credentials.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import ValidationError

from workers.errors import VendorRejected
from workers.vendors._http import basic_json, json_or_none
from workers.vendors.informatica.config import InformaticaConnection
from workers.vendors.informatica.models import (
    EventStatus,
    InformaticaErrorBody,
    RunPartnerRequest,
    RunPartnerResponse,
)

__all__ = ["EVENT_STATUS_PATH", "RUN_PARTNER_PATH", "InformaticaClient"]

RUN_PARTNER_PATH = "/b2b-gw/api/v1/partner/run"
EVENT_STATUS_PATH = "/b2b-gw/api/v3/event/status/{event_id}"

_MAX_MESSAGE = 500


class InformaticaClient:
    """One async method per vendor call, over a shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, connection: InformaticaConnection) -> None:
        self._http = http
        self._connection = connection

    @property
    def connection(self) -> InformaticaConnection:
        return self._connection

    async def run_partner(self, request: RunPartnerRequest) -> RunPartnerResponse:
        """`POST /b2b-gw/api/v1/partner/run`; the answer holds the task event id."""
        what = "Run Partner"
        response = await basic_json(
            self._http,
            self._connection,
            "POST",
            RUN_PARTNER_PATH,
            what=what,
            vendor_error=_vendor_error,
            body=request.body(),
        )
        data = json_or_none(response)
        if not isinstance(data, dict) or not data.get("eventId"):
            raise VendorRejected(
                f"{what}: answered {response.status_code} without an eventId",
                http_status=response.status_code,
            )
        try:
            return RunPartnerResponse.model_validate(data)
        except ValidationError:
            raise VendorRejected(
                f"{what}: answered {response.status_code} with an unreadable eventId",
                http_status=response.status_code,
            ) from None

    async def event_status(self, event_id: str) -> EventStatus:
        """`GET /b2b-gw/api/v3/event/status/{eventId}` for a task or a file event."""
        what = f"Event Status {event_id}"
        path = EVENT_STATUS_PATH.format(event_id=quote(event_id, safe=""))
        response = await basic_json(
            self._http,
            self._connection,
            "GET",
            path,
            what=what,
            vendor_error=_vendor_error,
        )
        data = json_or_none(response)
        if not isinstance(data, dict):
            raise VendorRejected(
                f"{what}: answered {response.status_code} without an event JSON object",
                http_status=response.status_code,
            )
        try:
            return EventStatus.model_validate(data)
        except ValidationError as exc:
            fields = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
            raise VendorRejected(
                f"{what}: answered {response.status_code} with an unreadable event"
                f" (fields: {', '.join(fields) or '?'})",
                http_status=response.status_code,
            ) from None


def _vendor_error(response: httpx.Response) -> tuple[str | None, str]:
    """The vendor's error code and message from `{"error": {"code", "message"}}`, if any."""
    try:
        error = InformaticaErrorBody.model_validate(json_or_none(response)).error
    except ValidationError:
        return None, ""
    return error.code, (error.message or "")[:_MAX_MESSAGE]
