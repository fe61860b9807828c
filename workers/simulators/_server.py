"""Serving ``Simulators`` over a real socket with uvicorn.

Tests need the simulators on a real port (flowgate's HTTP clients, timeouts and connection
handling are part of what is tested) but inside the test's own event loop, without uvicorn
taking over SIGINT/SIGTERM. We bind the socket ourselves so port 0 works and bind errors
surface as ``OSError`` instead of uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass

import uvicorn

from ._app import Simulators

__all__ = ["RunningSimulators", "run_forever", "serve"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class RunningSimulators:
    """What ``serve`` yields: the simulators and where they listen."""

    sims: Simulators
    host: str
    port: int

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:54321``: every vendor connection's ``base_url``."""
        return f"http://{self.host}:{self.port}"


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(sims: Simulators, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        sims.app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


def _bind(host: str, port: int) -> socket.socket:
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
async def serve(
    sims: Simulators, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulators]:
    """Run the simulators in the current event loop for the duration of the block."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    server = _QuietServer(_config(sims, host, bound_port))
    sims.stopping = False
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # raises the startup error
                    raise RuntimeError("simulator server stopped during startup")
                await asyncio.sleep(0.01)
        yield RunningSimulators(sims, host, bound_port)
    finally:
        sims.stopping = True
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT)
        except TimeoutError:
            server.force_exit = True
            await task
        finally:
            sock.close()


def run_forever(sims: Simulators, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve until SIGINT/SIGTERM (``flowgate simulate``); blocks, prints nothing itself."""
    uvicorn.Server(_config(sims, host, port)).run()
