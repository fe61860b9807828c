"""A stand-in OTLP/HTTP traces endpoint for `flowgate-observed`: answers every export, counts
the requests, their bytes and (decoded only when asked, after the run) their spans.

The exporter must reach something that says 200, or it retries with backoff and the run would
measure its retries instead of the spans. A real collector would cost this machine's cores
more than the processes under test; this one only reads the body. It speaks just enough
HTTP/1.1 for the exporter (`requests`: keep-alive, a Content-Length body, no chunking).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip

__all__ = ["OtlpSink"]

# An empty ExportTraceServiceResponse: nothing rejected.
_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class OtlpSink:
    """`POST /v1/traces` on 127.0.0.1 (a free port unless given)."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.requests = 0
        self.bytes = 0
        self.rejected = 0  # anything but a POST to /v1/traces with a length
        # ~1.5 KB a command, kept to count spans after the run; gzipped if the exporter was
        # told to (OTEL_EXPORTER_OTLP_COMPRESSION)
        self._bodies: list[tuple[bool, bytes]] = []

    def spans(self) -> int:
        """Spans received: short of the commands' spans, the processes dropped some (their
        exporter's queue was full) and the run understates what tracing costs."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        count = 0
        for gzipped, body in self._bodies:
            request = ExportTraceServiceRequest.FromString(
                gzip.decompress(body) if gzipped else body
            )
            count += sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
        return count

    @property
    def endpoint(self) -> str:
        """Known before `start` when the port was given (the processes' settings need it)."""
        port = self._port
        if self._server is not None:
            port = self._server.sockets[0].getsockname()[1]
        assert port, "a sink on a free port has no endpoint before start"
        return f"http://127.0.0.1:{port}/v1/traces"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.rejected += 1  # cut off mid-request, or a head over the reader's 64 KiB
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed between requests
        lines = head.decode("latin-1").split("\r\n")
        method, path, *_ = [*lines[0].split(" "), "", ""]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        length = headers.get("content-length", "")
        if method != "POST" or path != "/v1/traces" or not length.isdigit():
            self.rejected += 1
            writer.write(_BAD)
            await writer.drain()
            return False
        gzipped = headers.get("content-encoding", "").lower() == "gzip"
        self._bodies.append((gzipped, await reader.readexactly(int(length))))
        self.requests += 1
        self.bytes += int(length)
        writer.write(_OK)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"
