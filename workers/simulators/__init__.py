"""Vendor simulators: Informatica, Robusta, TMF622 and PBSM as one real HTTP server.

flowgate's clients are tested against these over a socket, exactly as they talk to the real
vendors (``docs/vendors.md``), with faults, latency and scripted outcomes on demand.

    sims = Simulators(SimulatorConfig())
    sims.inject(Fault(route="pbsm.status", status=503, times=2, retry_after=1))
    async with serve(sims) as running:
        ...  # point connections at running.base_url; inspect sims.ledger.entries("pbsm.status")
"""

from __future__ import annotations

from ._app import VENDORS, Simulators
from ._config import (
    InformaticaConfig,
    PbsmConfig,
    ProductLiveConfig,
    RobustaConfig,
    SimulatorConfig,
    Tmf622Config,
)
from ._faults import ROUTES, Fault
from ._ledger import Ledger, LedgerEntry
from ._server import RunningSimulators, run_forever, serve

__all__ = [
    "ROUTES",
    "VENDORS",
    "Fault",
    "InformaticaConfig",
    "Ledger",
    "LedgerEntry",
    "PbsmConfig",
    "ProductLiveConfig",
    "RobustaConfig",
    "RunningSimulators",
    "SimulatorConfig",
    "Simulators",
    "Tmf622Config",
    "run_forever",
    "serve",
]
