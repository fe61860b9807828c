"""The health server over real sockets: both answers, and every kind of bad request answered
without hurting the server. No sleeps: each test waits on what the server says or does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from workers.health import HealthServer, Readiness
from workers.metrics import Metrics


async def ready_ok() -> tuple[bool, dict[str, object]]:
    return True, {"broker": "connected", "consumers": 5}


async def not_ready() -> tuple[bool, dict[str, object]]:
    return False, {"broker": "reconnecting"}


@asynccontextmanager
async def serving(ready: Readiness = ready_ok, **options: Any) -> AsyncIterator[HealthServer]:
    server = HealthServer(host="127.0.0.1", port=0, ready=ready, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw`, read until the server closes: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return parse(answer)


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    version, status, _reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body) or not body
    assert headers["connection"] == "close"
    return int(status), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


async def test_healthz_says_ok() -> None:
    async with serving() as server:
        status, headers, body = await exchange(server.port, get("/healthz"))
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"].startswith("text/plain")


async def test_readyz_ready_is_200_with_the_checks() -> None:
    async with serving(ready_ok) as server:
        status, headers, body = await exchange(server.port, get("/readyz?verbose=1"))
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"ready": True, "checks": {"broker": "connected", "consumers": 5}}


async def test_readyz_not_ready_is_503_saying_what() -> None:
    async with serving(not_ready) as server:
        status, _, body = await exchange(server.port, get("/readyz"))
    assert status == 503
    assert json.loads(body) == {"ready": False, "checks": {"broker": "reconnecting"}}


async def test_readiness_follows_the_callback_each_time() -> None:
    state = {"ready": False}

    async def check() -> tuple[bool, dict[str, object]]:
        return state["ready"], {}

    async with serving(check) as server:
        assert (await exchange(server.port, get("/readyz")))[0] == 503
        state["ready"] = True
        assert (await exchange(server.port, get("/readyz")))[0] == 200


async def test_a_raising_callback_is_503_without_its_message() -> None:
    async def broken() -> tuple[bool, dict[str, object]]:
        raise ConnectionError("redis://:hunter2@redis:6379/0 refused")

    async with serving(broken) as server:
        status, _, body = await exchange(server.port, get("/readyz"))
        assert status == 503
        assert json.loads(body) == {
            "ready": False,
            "error": "readiness check raised ConnectionError",
        }
        assert b"hunter2" not in body
        assert (await exchange(server.port, get("/healthz")))[0] == 200


async def test_a_hanging_callback_is_503_after_the_ready_timeout() -> None:
    async def hangs() -> tuple[bool, dict[str, object]]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with serving(hangs, ready_timeout=0.05) as server:
        status, _, body = await exchange(server.port, get("/readyz"))
    assert status == 503
    assert json.loads(body) == {"ready": False, "error": "readiness check timed out"}


async def test_details_that_are_not_json_are_shown_as_text() -> None:
    async def odd() -> tuple[bool, dict[str, object]]:
        return True, {"since": object}

    async with serving(odd) as server:
        status, _, body = await exchange(server.port, get("/readyz"))
    assert status == 200
    assert json.loads(body)["checks"] == {"since": str(object)}


async def test_head_has_headers_and_no_body() -> None:
    async with serving() as server:
        status, headers, body = await exchange(server.port, get("/readyz", "HEAD"))
    assert status == 200 and body == b""
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (get("/metrics"), 404),
        (get("/"), 404),
        (get("/healthz/../readyz"), 404),
        (get("/healthz", "POST"), 405),
        (get("/readyz", "DELETE"), 405),
        (b"hello\r\n\r\n", 400),
        (b"GET /healthz\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 400),
        (b"GET  /healthz HTTP/1.1\r\n\r\n", 400),
        (b"\x00\xff\x16\x03\x01 \xfe \x80\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", 404),
    ],
)
async def test_bad_requests_are_answered_and_the_server_goes_on(raw: bytes, status: int) -> None:
    async with serving() as server:
        answer = await exchange(server.port, raw)
        assert answer[0] == status
        assert "error" in json.loads(answer[2])
        if status == 405:
            assert answer[1]["allow"] == "GET, HEAD"
        assert (await exchange(server.port, get("/healthz")))[0] == 200


async def test_an_oversized_request_head_is_431() -> None:
    async with serving(max_request_bytes=1024) as server:
        raw = b"GET /healthz HTTP/1.1\r\nX-Junk: " + b"a" * 4096 + b"\r\n\r\n"
        assert (await exchange(server.port, raw))[0] == 431
        assert (await exchange(server.port, get("/healthz")))[0] == 200


async def test_a_client_that_never_finishes_its_request_gets_408() -> None:
    async with serving(read_timeout=0.05) as server:
        assert (await exchange(server.port, b"GET /healthz HTTP/1.1\r\n"))[0] == 408
        assert (await exchange(server.port, b""))[0] == 408


async def test_a_client_that_hangs_up_early_does_not_hurt() -> None:
    async with serving() as server:
        for raw in (b"", b"GET /hea"):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(raw)
            writer.close()
            await writer.wait_closed()
        assert (await exchange(server.port, get("/healthz")))[0] == 200


async def test_connections_beyond_the_limit_are_turned_away() -> None:
    release = asyncio.Event()
    entered = 0
    both_in = asyncio.Event()

    async def slow() -> tuple[bool, dict[str, object]]:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await release.wait()
        return True, {}

    async with serving(slow, max_connections=2, ready_timeout=30) as server:
        held = [asyncio.create_task(exchange(server.port, get("/readyz"))) for _ in range(2)]
        await both_in.wait()
        status, _, body = await exchange(server.port, get("/healthz"))
        assert status == 503
        assert json.loads(body) == {"error": "too many connections"}
        release.set()
        assert [answer[0] for answer in await asyncio.gather(*held)] == [200, 200]
        assert (await exchange(server.port, get("/healthz")))[0] == 200


async def test_stop_closes_idle_connections_and_the_port() -> None:
    server = HealthServer(host="127.0.0.1", port=0, ready=ready_ok, read_timeout=300)
    await server.start()
    port = server.port
    assert port > 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hea")  # a request half sent: its handler is waiting to read
    await writer.drain()
    await asyncio.wait_for(server.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_port_before_start_and_double_start_are_errors() -> None:
    server = HealthServer(host="127.0.0.1", port=0, ready=ready_ok)
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.start()
    try:
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.stop()


async def test_metrics_serves_the_exposition_on_the_same_port() -> None:
    metrics = Metrics()
    metrics.consumed("trigger-batch", "accepted")
    async with serving(metrics=metrics.render) as server:
        status, headers, body = await exchange(server.port, get("/metrics"))
        head_status, head_headers, head_body = await exchange(server.port, get("/metrics", "HEAD"))
        refused, _, _ = await exchange(server.port, get("/metrics", "POST"))
        missing, _, lost = await exchange(server.port, get("/metric"))
    assert status == 200 and headers["content-type"] == CONTENT_TYPE_LATEST
    assert (
        b'flowgate_commands_total{command_type="trigger-batch",error_kind="",outcome="accepted"}'
        b" 1.0" in body
    )
    assert (head_status, head_body) == (200, b"")
    assert head_headers["content-length"] == str(len(body))
    assert refused == 405
    assert missing == 404 and b"/metrics" in lost
