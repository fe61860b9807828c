"""`Bound`, a registration's handler on one connection: a status call reaches the vendor only
for a command the poller follows."""

from __future__ import annotations

import httpx
import pytest

from workers.errors import FlowgateError
from workers.registry import Registry
from workers.settings import Settings


def _unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, request=request)


async def test_only_a_followed_commands_handler_takes_a_status_call() -> None:
    calls: list[httpx.Request] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return _unavailable(request)

    registry = Registry(
        Settings(),
        http_factory=lambda _: httpx.AsyncClient(transport=httpx.MockTransport(vendor)),
    )
    try:
        paylink = registry.handler("add-paylink", "default")
        with pytest.raises(TypeError, match="add-paylink is not followed"):
            await paylink.status({"id": "1"}, cursor={})
        assert calls == []
        process = registry.handler("start-process", "default")
        with pytest.raises(FlowgateError):  # the vendor's 503, so it was asked
            await process.status({"robusta_spid": "1"}, cursor={})
        assert len(calls) == 1
    finally:
        await registry.aclose()
