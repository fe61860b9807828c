"""Liveness and readiness over HTTP, for container health checks and orchestrators.

A worker or poller talks AMQP and Redis, not HTTP, so nothing outside the process can tell
whether it is alive, or connected and consuming. `HealthServer` answers on its own small port:

    GET /healthz   200 "ok" while the event loop runs (it answers at all)
    GET /readyz    200 and a JSON body when the readiness callback says ready, else 503 and
                   the same JSON body saying what is not ready
    GET /metrics   the Prometheus exposition, when given a `metrics` callback (the body and
                   its content type, `workers.metrics.Metrics.render`)

It sits on asyncio streams rather than an HTTP framework: it serves three fixed answers, so
it adds no dependency (the exposition is rendered by the caller's callback) and costs nothing
per message. Anything else is answered 400, 404, 405, 408
or 431; the request head is bounded in size and in time, the readiness callback in time, and
open connections in number (beyond it, 503). Every answer closes the connection.

    server = HealthServer(host="0.0.0.0", port=8081, ready=check)
    await server.start()
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

__all__ = ["HealthServer", "Readiness"]

log = logging.getLogger("flowgate.health")

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]
"""Says whether the process is ready, and a small JSON-able mapping of what it checked."""

Exposition = Callable[[], tuple[bytes, str]]
"""The metrics page: its body and its content type."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
_PATHS = ("/healthz", "/readyz")
_METRICS = "/metrics"


class HealthServer:
    """`GET /healthz` and `GET /readyz` on `host:port` (port 0 picks a free one, see `port`)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ready: Readiness,
        metrics: Exposition | None = None,
        read_timeout: float = 5.0,
        ready_timeout: float = 5.0,
        max_request_bytes: int = 8192,
        max_connections: int = 64,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._ready = ready
        self._metrics = metrics
        self._read_timeout = read_timeout
        self._ready_timeout = ready_timeout
        self._max_request_bytes = max_request_bytes
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port (of the first socket, when `host` resolves to several)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("HealthServer is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("HealthServer is already started")
        self._server = await asyncio.start_server(
            self._handle, self._host, self._requested_port, limit=self._max_request_bytes
        )
        log.info("health checks on http://%s:%d/healthz and /readyz", self._host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop open connections; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        self._stopping = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            if len(self._handlers) > self._max_connections:
                await self._answer(writer, 503, {"error": "too many connections"})
            else:
                await self._serve(reader, writer)
            await self._linger(reader, writer)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by `stop`: end quietly (asyncio 3.11 logs a cancelled callback task).
        except Exception:  # never let one connection disturb the process
            log.debug("health request failed", exc_info=True)
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Close after the client has read the answer: closing a socket with unread input
        resets the connection, and the reset can destroy the answer before it is read."""
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(min(self._read_timeout, 1.0)):
                left = 16 * self._max_request_bytes
                while left > 0 and (chunk := await reader.read(min(left, 4096))):
                    left -= len(chunk)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._read_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            await self._answer(writer, 408, {"error": "request not received in time"})
            return
        except asyncio.LimitOverrunError:
            await self._answer(writer, 431, {"error": "request head too large"})
            return
        except asyncio.IncompleteReadError:
            return  # the client went away before finishing its request
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            await self._answer(writer, 400, {"error": "not an HTTP/1.x request line"})
            return
        method = parts[0].decode("ascii", "replace")
        path = urlsplit(parts[1].decode("ascii", "replace")).path
        served = (*_PATHS, _METRICS) if self._metrics is not None else _PATHS
        if path not in served:
            await self._answer(writer, 404, {"error": f"not found; try {', '.join(served)}"})
            return
        if method not in ("GET", "HEAD"):
            await self._answer(writer, 405, {"error": "only GET and HEAD"}, allow="GET, HEAD")
            return
        head_only = method == "HEAD"
        if path == "/healthz":
            await self._answer(writer, 200, "ok\n", head_only=head_only)
            return
        if path == _METRICS and self._metrics is not None:
            # Rendered here, in the loop: a few hundred series take well under a millisecond.
            payload, content_type = self._metrics()
            await self._answer(writer, 200, payload, head_only=head_only, content_type=content_type)
            return
        ready, body = await self._readiness()
        await self._answer(writer, 200 if ready else 503, body, head_only=head_only)

    async def _readiness(self) -> tuple[bool, dict[str, object]]:
        try:
            async with asyncio.timeout(self._ready_timeout):
                ready, checks = await self._ready()
        except TimeoutError:
            return False, {"ready": False, "error": "readiness check timed out"}
        except Exception as exc:
            # The type only: a message may carry a URL with credentials in it.
            log.warning("readiness check failed: %s", type(exc).__name__)
            return False, {"ready": False, "error": f"readiness check raised {type(exc).__name__}"}
        return bool(ready), {"ready": bool(ready), "checks": checks}

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: str | bytes | dict[str, object],
        *,
        head_only: bool = False,
        allow: str | None = None,
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, bytes):
            payload, content_type = body, content_type or "application/octet-stream"
        elif isinstance(body, str):
            payload, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            payload = (json.dumps(body, default=str, sort_keys=True) + "\n").encode()
            content_type = "application/json"
        lines = [
            f"HTTP/1.1 {status} {_REASONS[status]}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
            "Cache-Control: no-store",
            "Connection: close",
        ]
        if allow is not None:
            lines.append(f"Allow: {allow}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        if not head_only:
            writer.write(payload)
        async with asyncio.timeout(self._read_timeout):
            await writer.drain()
