"""HTTP client of the b2bsoft-ux TMF622 productOrder API (seed 003).

The injected `httpx.AsyncClient` is shared by every connection: URLs and credentials travel per
request. Error messages carry the call, the HTTP status and the vendor's own error text, never
our headers (they hold `client_secret`).

Answers are classified by `workers.vendors._http.error_for`, except one rule that is this
vendor's own: the b2bsoft-ux document says of 503 "If no Retry-After is given, the client
SHOULD handle the response as it would for a 500 response". So a 503 with a `Retry-After`
header is retried (`VendorUnavailable`, honouring it; a value that cannot be read leaves the
delay to the retry policy), and a 503 without one is final, as a 500 is (`VendorRejected`).
A 504 stays an unknown outcome (`VendorUnavailable` with `maybe_sent`): a gateway that timed out
waiting for the backend cannot say whether the backend added the link.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import ValidationError

from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors._http import call, error_for, json_or_none
from workers.vendors.tmf622.config import Tmf622Connection
from workers.vendors.tmf622.models import ProductOrderAnswer, ProductOrderErrors, ProductOrderPatch

__all__ = ["Tmf622Client"]

WHAT = "TMF622 productOrder PATCH"
_UNAVAILABLE = 503


class Tmf622Client:
    def __init__(self, http: httpx.AsyncClient, connection: Tmf622Connection) -> None:
        self._http = http
        self._connection = connection

    @property
    def connection(self) -> Tmf622Connection:
        return self._connection

    def url(self, business_id: str, order_id: str) -> str:
        base = self._connection.base_url.rstrip("/")
        return (
            f"{base}/b2bsoft-ux/v1/{quote(business_id, safe='')}"
            f"/productOrder/{quote(order_id, safe='')}"
        )

    async def patch_product_order(
        self,
        *,
        business_id: str,
        order_id: str,
        body: ProductOrderPatch,
        correlation_id: str,
    ) -> tuple[int, ProductOrderAnswer]:
        """PATCH the order; returns the HTTP status and the answer of a 2xx.

        Raises `VendorRejected` (400, 401, 403, 404, 405, 500, 501, 503 without `Retry-After`,
        any other non-2xx) or `VendorUnavailable` (429, 502, 503 with `Retry-After`, 504,
        timeouts, connection errors; `retry_after` from `Retry-After`; `maybe_sent` for 502,
        504 and read timeouts).
        """
        connection = self._connection
        request = self._http.build_request(
            "PATCH",
            self.url(business_id, order_id),
            headers={
                "client_id": connection.client_id,
                "client_secret": connection.client_secret.get_secret_value(),
                "X-Correlation-ID": correlation_id,
                "Content-Type": "application/json",
            },
            json=body.wire(),
            timeout=connection.timeout,
        )
        response = await call(self._http, request, what=WHAT)
        if not response.is_success:
            raise _error(response)
        payload = json_or_none(response)
        try:
            answer = ProductOrderAnswer.model_validate(payload if isinstance(payload, dict) else {})
        except ValidationError:
            # The status code says the link was saved; an odd body does not undo that.
            answer = ProductOrderAnswer()
        return response.status_code, answer


def _error(response: httpx.Response) -> VendorRejected | VendorUnavailable:
    payload = json_or_none(response)
    code: str | None = None
    text = ""
    if isinstance(payload, dict):
        try:
            errors = ProductOrderErrors.model_validate(payload).errors
        except ValidationError:
            errors = []
        if errors:
            first = errors[0]
            code = first.code
            text = ": ".join(part for part in (first.message, first.description) if part)
    if response.status_code == _UNAVAILABLE and "retry-after" not in response.headers:
        # The b2bsoft-ux document: without Retry-After, handle a 503 as a 500 (final).
        reason = "HTTP 503 without Retry-After, handled as a 500 (final) as the b2bsoft-ux "
        reason += "document says"
        return VendorRejected(
            f"{WHAT}: {reason}{': ' + text if text else ''}",
            http_status=response.status_code,
            vendor_code=code,
        )
    return error_for(response, what=WHAT, vendor_code=code, message=text)
