"""``Simulators``: the four vendors behind one Starlette app, plus the ``/_sim/`` control API.

Every vendor request goes through one pipeline: read the body, let an injected fault fire,
add latency, answer (the vendor handler or the fault's error), record it in the ledger. The
same operations are offered in-process (methods) and over HTTP (``/_sim/...``) so a test can
steer a simulator running in another process (``flowgate simulate``) too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._common import Clock, Inbound, Outcome, Vendor, VendorRoute, retry_after_header
from ._config import SimulatorConfig
from ._faults import Fault, Faults
from ._informatica import InformaticaSim
from ._ledger import Ledger, LedgerEntry
from ._pbsm import PbsmSim
from ._productlive import ProductLiveSim
from ._robusta import RobustaSim
from ._tmf622 import Tmf622Sim

__all__ = ["VENDORS", "Simulators"]

VENDORS = ("informatica", "pbsm", "productlive", "robusta", "tmf622")
_HANG_POLL = 0.05

Endpoint = Callable[[Request], Awaitable[Response]]


class Simulators:
    """Configuration, ledger, faults, scripted outcomes and runs of all four vendors.

    ``clock`` (monotonic seconds) drives run progress and token expiry; tests may pass a
    fake one. ``stopping`` releases hanging requests so the server can shut down.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Clock = time.monotonic):
        self.config = config or SimulatorConfig()
        self.ledger = Ledger()
        self.faults = Faults(self.config.seed)
        self.stopping = False
        self._outcomes: dict[str, dict[str, Outcome]] = {name: {} for name in VENDORS}
        cfg, out = self.config, self._outcomes
        self.pbsm = PbsmSim(cfg.pbsm, out["pbsm"], clock)
        self.vendors: dict[str, Vendor] = {
            "informatica": InformaticaSim(cfg.informatica, out["informatica"], clock),
            "pbsm": self.pbsm,
            "productlive": ProductLiveSim(cfg.productlive, out["productlive"], clock),
            "robusta": RobustaSim(cfg.robusta, out["robusta"], clock),
            "tmf622": Tmf622Sim(cfg.tmf622, out["tmf622"]),
        }
        routes = [
            Route(r.path, self._endpoint(vendor, r), methods=r.methods, name=r.name)
            for vendor in self.vendors.values()
            for r in vendor.routes()
        ]
        self.app = Starlette(routes=routes + self._control_routes())

    # --- in-process control -----------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Make ``fault.route`` misbehave (see ``Fault``)."""
        self.faults.inject(fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.faults.clear()

    def set_outcome(
        self, vendor: str, key: str, final_status: str, *, file_status: str | None = None
    ) -> None:
        """Script how runs of ``key`` (partner, process, batch name, TMF622 order id) end."""
        if vendor not in self.vendors:
            raise ValueError(f"unknown vendor {vendor!r}; known: {', '.join(VENDORS)}")
        self.vendors[vendor].check_outcome(final_status, file_status)
        self._outcomes[vendor][key] = Outcome(final_status, file_status)

    def expire_tokens(self) -> None:
        """Invalidate every PBSM access token issued so far (refresh tokens stay valid)."""
        self.pbsm.tokens.expire_all()

    def reset(self) -> None:
        """Back to a fresh state: no entries, faults, outcomes, runs or tokens."""
        self.ledger.clear()
        self.faults.clear()
        for outcomes in self._outcomes.values():
            outcomes.clear()
        for vendor in self.vendors.values():
            vendor.reset()

    # --- the request pipeline ---------------------------------------------------------

    def _endpoint(self, vendor: Vendor, route: VendorRoute) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            at = time.time()
            text = (await request.body()).decode("utf-8", errors="replace")
            try:
                parsed: Any = json.loads(text) if text else None
            except ValueError:
                parsed = None
            headers: dict[str, str] = {}
            for name, value in request.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            path = request.url.path
            params = {k: str(v) for k, v in request.path_params.items()}

            def record(status: int) -> None:
                query = dict(request.query_params)
                entry = LedgerEntry(
                    route.name, request.method, path, query, headers, text, parsed, status, at
                )
                self.ledger.record(entry)

            fault = self.faults.fire(route.name)
            if fault is not None and fault.hang:
                record(0)
                # polls: it must notice both the client leaving and the server stopping
                while not self.stopping and not await request.is_disconnected():  # noqa: ASYNC110
                    await asyncio.sleep(_HANG_POLL)
                return Response(status_code=503)  # nobody reads it: client gone or server down
            delay = vendor.latency + (fault.latency if fault is not None else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None and fault.status is not None:
                response = vendor.error_response(fault.status)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = retry_after_header(fault.retry_after)
            else:
                query = dict(request.query_params)
                response = route.handler(
                    Inbound(request.method, path, params, headers, text, parsed, query)
                )
            record(response.status_code)
            return response

        return endpoint

    # --- HTTP control API (never recorded) ----------------------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            Route("/_sim/health", self._health, methods=["GET"]),
            Route("/_sim/ledger", self._ledger, methods=["GET"]),
            Route("/_sim/faults", self._faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sim/outcomes", self._set_outcome, methods=["POST"]),
            Route("/_sim/expire-tokens", self._expire_tokens, methods=["POST"]),
            Route("/_sim/reset", self._reset, methods=["POST"]),
        ]

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _ledger(self, request: Request) -> Response:
        route = request.query_params.get("route") or None
        return JSONResponse([entry.to_dict() for entry in self.ledger.entries(route)])

    async def _faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.inject(Fault.model_validate_json(await request.body()))
            except ValidationError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        elif request.method == "DELETE":
            self.clear_faults()
        return JSONResponse([fault.model_dump() for fault in self.faults.active()])

    async def _set_outcome(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            self.set_outcome(
                str(body["vendor"]),
                str(body["key"]),
                str(body["final_status"]),
                file_status=body.get("file_status"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse({"status": "ok"})

    async def _expire_tokens(self, request: Request) -> Response:
        self.expire_tokens()
        return JSONResponse({"status": "ok"})

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"status": "ok"})
