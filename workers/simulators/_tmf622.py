"""b2bsoft-ux TMF622 AddPaymentLinkForOrderID: the productOrder PATCH, seed 003.

Synchronous: the PATCH either saves the payment link (200) or fails with one of the seed's
error bodies, copied verbatim, so flowgate's error mapping is tested against the real texts.
A scripted 503 (``set_outcome``) comes without ``Retry-After``, which the seed says is handled
as a 500; a 503 fault with ``retry_after`` carries the header.
Order ids starting with ``MISSING`` do not exist (404); a business id outside the configured
list is not implemented (501); any other method on the resource is APIKIT's 405.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from starlette.responses import Response

from ._common import ALL_METHODS, Inbound, Outcome, Vendor, VendorRoute, json_response
from ._config import Tmf622Config

__all__ = ["SEED_ERRORS", "Tmf622Sim"]

SEED_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "The request is invalid or not properly formed.",
        "Malformed request syntax, invalid request message framing, or deceptive request routing.",
    ),
    401: (
        "The user could not be authenticated for this request.",
        "The request has not been applied because it lacks valid authentication credentials for"
        " the target resource",
    ),
    403: (  # the seed gives no body for 403: ours, in the same shape
        "Forbidden",
        "The server understood the request but refuses to fulfill it.",
    ),
    404: (
        "The server could not find the requested resource.",
        "The requested operation failed because a resource associated with the request could"
        " not be found.",
    ),
    405: (
        "APIKIT:METHOD_NOT_ALLOWED",
        "HTTP Method post not allowed for : /{businessId}/productOrder",
    ),
    429: (
        "Too many requests.",
        "The client sent too many requests and server is not able to serve them all at the moment.",
    ),
    500: ("Internal Server Error", "The request failed due to an internal error."),
    501: ("Not implemented", "Operation PATCH /productOrder for Business Id: xxxx not implemented"),
    502: (  # no seed body for 502/503: ours, in the same shape
        "Bad Gateway",
        "The gateway is available but the backend service is not.",
    ),
    503: ("Service Unavailable", "Temporary maintenance of service, try again later."),
    504: (  # the seed lists no 504: ours, in the same shape
        "Gateway Timeout",
        "The gateway did not get an answer from the backend service in time.",
    ),
}
_SUCCESS = "Paylink Link Saved Successfully in Salesforce"


def seed_error(status: int, description: str | None = None) -> Response:
    """The seed's ``{"errors": [{"code", "message", "description"}]}`` for ``status``."""
    message, default = SEED_ERRORS.get(status, (str(status), str(status)))
    error = {"code": status, "message": message, "description": description or default}
    return json_response({"errors": [error]}, status)


class Tmf622Sim(Vendor):
    """Stateless apart from scripted outcomes: order id -> HTTP status to answer."""

    name = "tmf622"

    def __init__(self, config: Tmf622Config, outcomes: dict[str, Outcome]):
        self.config = config
        self._outcomes = outcomes

    @property
    def latency(self) -> float:
        return self.config.latency

    def routes(self) -> list[VendorRoute]:
        path = "/b2bsoft-ux/v1/{businessId}/productOrder"
        return [
            VendorRoute(path + "/{id}", "tmf622.patch", ALL_METHODS, self.patch),
            VendorRoute(path, "tmf622.patch", ALL_METHODS, self.patch),
        ]

    def error_response(self, status: int) -> Response:
        return seed_error(status)

    def check_outcome(self, final_status: str, file_status: str | None) -> None:
        if not final_status.isdigit() or int(final_status) not in {200, *SEED_ERRORS}:
            raise ValueError(f"tmf622 outcomes are HTTP statuses: 200, {sorted(SEED_ERRORS)}")
        if file_status is not None:
            raise ValueError("tmf622 has no file status")

    def reset(self) -> None:
        """Nothing to forget: every PATCH stands alone."""

    def patch(self, request: Inbound) -> Response:
        """``PATCH /b2bsoft-ux/v1/{businessId}/productOrder/{id}``."""
        if request.method != "PATCH":
            method = request.method.lower()
            description = f"HTTP Method {method} not allowed for : /{{businessId}}/productOrder"
            return seed_error(405, description)
        headers = request.headers
        credentials = (headers.get("client_id"), headers.get("client_secret"))
        if credentials != (self.config.client_id, self.config.client_secret):
            return seed_error(401)
        if not headers.get("x-correlation-id"):
            return seed_error(400)
        business_id = request.path_params["businessId"]
        if business_id not in self.config.business_ids:
            description = (
                f"Operation PATCH /productOrder for Business Id: {business_id} not implemented"
            )
            return seed_error(501, description)
        body = request.json
        if not isinstance(body, dict) or not self._valid(body):
            return seed_error(400)
        order_id = request.path_params.get("id", "")
        if not order_id or order_id.startswith("MISSING"):
            return seed_error(404)
        scripted = self._outcomes.get(order_id)
        if scripted is not None and scripted.final_status != "200":
            return seed_error(int(scripted.final_status))
        items = [{"id": item["id"], "action": item["action"]} for item in body["productOrderItem"]]
        return json_response({"description": _SUCCESS, "productOrderItem": items})

    def _valid(self, body: dict[str, Any]) -> bool:
        """The seed's definitions table and its two rules (action "add", name "PayLink")."""
        if "externalId" in body and not isinstance(body["externalId"], str):
            return False
        channels = body.get("channel")
        if not _objects(channels) or not all(
            isinstance(c.get("id"), str) and isinstance(c.get("name"), str) for c in channels
        ):
            return False
        account = body.get("billingAccount")
        if account is not None and not isinstance(account, dict):
            return False
        items = body.get("productOrderItem")
        if not _objects(items):
            return False
        for item in items:
            if not isinstance(item.get("id"), str) or item.get("action") != "add":
                return False
            payments = item.get("payment")
            if not _objects(payments):
                return False
            for payment in payments:
                if not isinstance(payment.get("id"), str) or not payment["id"]:
                    return False
                if payment.get("name") not in self.config.payment_names:
                    return False
        return True


def _objects(value: Any) -> TypeGuard[list[dict[str, Any]]]:
    """A non-empty JSON array of JSON objects."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
