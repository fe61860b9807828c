"""The vendor HTTP client keeps no cookies: each call carries its own credentials."""

from __future__ import annotations

import httpx

from workers.registry import VendorHttpClient


async def test_a_cookie_a_vendor_sets_is_not_sent_back() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, json={})

    async with VendorHttpClient(transport=httpx.MockTransport(answer)) as client:
        first = await client.get("http://vendor.test/a")
        await client.get("http://vendor.test/b")
    assert first.cookies.get("session") == "abc", "the answer itself still shows the cookie"
    assert seen == [None, None]
    assert len(client.cookies.jar) == 0


async def test_a_plain_httpx_client_would_have_sent_it() -> None:
    # The control: this is the behaviour VendorHttpClient switches off.
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        await client.get("http://vendor.test/a")
        await client.get("http://vendor.test/b")
    assert seen == [None, "session=abc"]
