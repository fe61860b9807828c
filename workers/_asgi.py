"""Serving an ASGI app with uvicorn inside the current event loop (the simulators, the
operator page).

We bind the socket ourselves so port 0 works and a bind error surfaces as `OSError` instead of
uvicorn's `sys.exit`, and uvicorn leaves the process's SIGINT/SIGTERM handlers alone: the
process that embeds the server decides when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import uvicorn

__all__ = ["bind", "config", "serving"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio: NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def serving(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_stop: Callable[[], None] | None = None,
) -> AsyncIterator[int]:
    """Serve `app` for the duration of the block; yields the bound port. `on_stop` runs as
    the server is told to stop (to release requests that would hold the shutdown up)."""
    sock = bind(host, port)
    bound_port: int = sock.getsockname()[1]
    server = _QuietServer(config(app, host, bound_port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # raises the startup error
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.01)
        yield bound_port
    finally:
        if on_stop is not None:
            on_stop()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT)
        except TimeoutError:
            server.force_exit = True
            await task
        finally:
            sock.close()
