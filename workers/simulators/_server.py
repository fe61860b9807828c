"""Serving ``Simulators`` over a real socket with uvicorn.

Tests need the simulators on a real port (flowgate's HTTP clients, timeouts and connection
handling are part of what is tested) but inside the test's own event loop, without uvicorn
taking over SIGINT/SIGTERM (``workers._asgi.serving``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn

from workers._asgi import config, serving

from ._app import Simulators

__all__ = ["RunningSimulators", "run_forever", "serve"]


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


@contextlib.asynccontextmanager
async def serve(
    sims: Simulators, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulators]:
    """Run the simulators in the current event loop for the duration of the block."""
    sims.stopping = False

    def stopping() -> None:
        sims.stopping = True

    async with serving(sims.app, host, port, on_stop=stopping) as bound_port:
        yield RunningSimulators(sims, host, bound_port)


def run_forever(sims: Simulators, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve until SIGINT/SIGTERM (``flowgate simulate``); blocks, prints nothing itself."""
    uvicorn.Server(config(sims.app, host, port)).run()
