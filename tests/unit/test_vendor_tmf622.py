"""TMF622 add-paylink: exact PATCH request, synchronous answer, each seed error status."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from contracts import RunPartner
from contracts.commands import AddPaylink
from workers.commands import COMMANDS
from workers.errors import InvalidCommand, VendorRejected, VendorUnavailable
from workers.vendors.base import FollowedHandler
from workers.vendors.tmf622 import AddPaylinkHandler, Tmf622Client, Tmf622Connection

SECRET = "s3cr3t-value"
SUCCESS = {
    "description": "Paylink Link Saved Successfully in Salesforce",
    "productOrderItem": [{"id": "", "action": "add"}],
}
SEED_ERRORS = {
    400: "The request is invalid or not properly formed.",
    401: "The user could not be authenticated for this request.",
    403: "Forbidden",
    404: "The server could not find the requested resource.",
    405: "APIKIT:METHOD_NOT_ALLOWED",
    429: "Too many requests.",
    500: "Internal Server Error",
    501: "Not implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

Handler = Callable[[httpx.Request], httpx.Response]


def connection(**overrides: object) -> Tmf622Connection:
    values: dict[str, object] = {
        "base_url": "http://vendor.test:8700/",
        "client_id": "cid",
        "client_secret": SecretStr(SECRET),
        "timeout": 7.5,
    }
    values.update(overrides)
    return Tmf622Connection.model_validate(values)


def adapter(handler: Handler, **overrides: object) -> AddPaylinkHandler:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AddPaylinkHandler(Tmf622Client(http, connection(**overrides)))


def command(**overrides: object) -> AddPaylink:
    values: dict[str, object] = {
        "business_id": "PR",
        "order_id": "801dm00000Km9aVAAR",
        "payment_link": "https://pay.example/abc",
    }
    values.update(overrides)
    return AddPaylink.model_validate(values)


def error_body(status: int) -> dict[str, object]:
    return {"errors": [{"code": status, "message": SEED_ERRORS[status], "description": "why"}]}


async def test_patch_request_is_exactly_the_seed_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=SUCCESS)

    cmd = command(external_id="00163913", billing_account_id="1234567-123445", item_id="01")
    triggered = await adapter(handler).trigger(cmd, command_id="cmd-42")

    (request,) = seen
    assert request.method == "PATCH"
    assert str(request.url) == (
        "http://vendor.test:8700/b2bsoft-ux/v1/PR/productOrder/801dm00000Km9aVAAR"
    )
    assert request.headers["client_id"] == "cid"
    assert request.headers["client_secret"] == SECRET
    assert request.headers["X-Correlation-ID"] == "cmd-42"
    assert request.headers["Content-Type"] == "application/json"
    assert request.extensions["timeout"]["read"] == 7.5
    body = json.loads(request.content)
    assert list(body) == ["externalId", "channel", "billingAccount", "productOrderItem"]
    assert body["externalId"] == "00163913"
    assert body["channel"] == [{"id": "sourceSystem", "name": "B2BSoft"}]
    assert body["billingAccount"] == {"id": "1234567-123445", "name": "billingAccountNumber"}
    assert body["productOrderItem"] == [
        {
            "id": "01",
            "action": "add",
            "payment": [{"id": "https://pay.example/abc", "name": "PayLink"}],
        }
    ]

    assert triggered.vendor_ref == {"order_id": "801dm00000Km9aVAAR", "business_id": "PR"}
    assert triggered.status == "200"
    assert triggered.report is not None
    assert triggered.report.state == "succeeded"
    assert triggered.report.status == SUCCESS["description"]
    assert triggered.report.result == SUCCESS


async def test_optional_members_are_left_out_and_names_come_from_the_connection() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=SUCCESS)

    a = adapter(handler, payment_name="Paylink", channel_name="Other")
    await a.trigger(command(), command_id="c1")
    await a.trigger(command(), command_id="c1")  # a retry keeps its correlation id
    body = json.loads(seen[0].content)
    assert set(body) == {"channel", "productOrderItem"}
    assert body["channel"] == [{"id": "sourceSystem", "name": "Other"}]
    assert body["productOrderItem"][0]["id"] == ""
    assert body["productOrderItem"][0]["payment"][0]["name"] == "Paylink"
    assert [r.headers["X-Correlation-ID"] for r in seen] == ["c1", "c1"]


async def test_tolerant_of_extra_fields_and_an_empty_success_body() -> None:
    answers = iter(
        [
            httpx.Response(200, json={**SUCCESS, "extra": {"x": 1}}),
            httpx.Response(200, content=b""),
        ]
    )
    a = adapter(lambda request: next(answers))
    first = await a.trigger(command(), command_id="c")
    assert first.report is not None and first.report.status == SUCCESS["description"]
    second = await a.trigger(command(), command_id="c")
    assert second.report is not None and second.report.state == "succeeded"
    assert second.report.status == "200"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 500, 501])
async def test_final_errors_are_rejected_with_the_vendor_code(status: int) -> None:
    a = adapter(lambda request: httpx.Response(status, json=error_body(status)))
    with pytest.raises(VendorRejected) as info:
        await a.trigger(command(), command_id="c")
    error = info.value
    assert not isinstance(error, VendorUnavailable)
    assert error.http_status == status
    assert error.vendor_code == str(status)
    assert SEED_ERRORS[status] in error.message
    assert SECRET not in str(error) and SECRET not in repr(error)


@pytest.mark.parametrize("status", [429, 502, 503])
async def test_passing_errors_are_unavailable_and_honour_retry_after(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=error_body(status), headers={"Retry-After": "17"})

    with pytest.raises(VendorUnavailable) as info:
        await adapter(handler).trigger(command(), command_id="c")
    error = info.value
    assert error.http_status == status
    assert error.retry_after == 17.0
    assert error.vendor_code == str(status)
    assert SEED_ERRORS[status] in error.message
    assert SECRET not in str(error)


async def test_503_without_retry_after_is_final_like_a_500() -> None:
    # The b2bsoft-ux document: "If no Retry-After is given, the client SHOULD handle the
    # response as it would for a 500 response."
    a = adapter(lambda request: httpx.Response(503, json=error_body(503)))
    with pytest.raises(VendorRejected) as info:
        await a.trigger(command(), command_id="c")
    error = info.value
    assert not isinstance(error, VendorUnavailable)
    assert (error.http_status, error.vendor_code) == (503, "503")
    reason = (
        "TMF622 productOrder PATCH: HTTP 503 without Retry-After, handled as a 500 (final) as "
        "the b2bsoft-ux document says"
    )
    assert error.message == reason + ": Service Unavailable: why"
    bare = adapter(lambda request: httpx.Response(503))
    with pytest.raises(VendorRejected) as info:
        await bare.trigger(command(), command_id="c")
    assert info.value.message == reason


async def test_503_with_an_unreadable_retry_after_is_still_retried() -> None:
    # A Retry-After was given: the vendor says "later"; the retry policy picks the delay.
    a = adapter(lambda request: httpx.Response(503, headers={"Retry-After": "soon"}))
    with pytest.raises(VendorUnavailable) as info:
        await a.trigger(command(), command_id="c")
    assert info.value.retry_after is None and not info.value.maybe_sent


@pytest.mark.parametrize(("status", "maybe_sent"), [(429, False), (502, True), (503, False),
                                                     (504, True)])  # fmt: skip
async def test_gateway_errors_may_have_reached_the_backend(status: int, maybe_sent: bool) -> None:
    # 502/504: the gateway cannot say whether the backend added the link (unknown outcome).
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": "1"})

    with pytest.raises(VendorUnavailable) as info:
        await adapter(handler).trigger(command(), command_id="c")
    assert info.value.maybe_sent is maybe_sent


def test_an_unknown_outcome_fails_by_default_and_retry_is_a_setting_with_its_risk() -> None:
    # The b2bsoft-ux document never says the vendor deduplicates on X-Correlation-ID.
    assert connection().unknown_outcome == "fail"
    assert connection(unknown_outcome="retry").unknown_outcome == "retry"
    described = Tmf622Connection.model_fields["unknown_outcome"].description or ""
    assert "payment link twice" in described and "never says" in described


async def test_error_without_body() -> None:
    b = adapter(lambda request: httpx.Response(403, text="<html>nope</html>"))
    with pytest.raises(VendorRejected) as rejected:
        await b.trigger(command(), command_id="c")
    assert rejected.value.message == "TMF622 productOrder PATCH: HTTP 403"


async def test_transport_errors_are_unavailable_without_secrets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(VendorUnavailable) as info:
        await adapter(handler).trigger(command(), command_id="c")
    assert SECRET not in str(info.value)


async def test_no_secret_in_reprs_and_status_is_never_called() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    conn = connection()
    a = AddPaylinkHandler(Tmf622Client(http, conn))
    for thing in (conn, a, a.client, Tmf622Client(http, conn)):
        assert SECRET not in repr(thing)
    assert not isinstance(a, FollowedHandler)
    bound = COMMANDS["add-paylink"].bind(Tmf622Client(http, conn))
    with pytest.raises(TypeError):
        await bound.status({"order_id": "x", "business_id": "PR"}, cursor={})
    with pytest.raises(InvalidCommand):
        await bound.trigger(RunPartner(partner_name="p", direction="INBOUND"), command_id="c")
