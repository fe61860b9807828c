"""`python -m bench.sims`: one vendor simulator process with a set latency and run length.

`flowgate simulate` has no latency flag and serves every vendor from one event loop, which
would make the simulator the bottleneck of every contender alike; the harness starts one of
these per vendor instead (same `workers.simulators` code), plus `GET /_bench/calls`: requests
per route since the last `POST /_sim/reset`. Product-Live's account limit is raised to
`PRODUCTLIVE_RATE_LIMIT` in each, and in flowgate's settings by `Sims.env`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.procs import Proc
from bench.workload import PRODUCTLIVE_RATE_LIMIT, VENDORS, Profile
from workers.simulators import VENDORS as SIMULATED
from workers.simulators import SimulatorConfig, Simulators, run_forever

__all__ = ["Sims", "build", "main"]

SIM_PORT = 8790  # vendors on 8790, 8791, ... in `VENDORS` order
PY = sys.executable


def build(vendor: str, latency: float, run_seconds: float) -> Simulators:
    config = SimulatorConfig()
    config.productlive.rate_limit = PRODUCTLIVE_RATE_LIMIT
    for name in SIMULATED:
        section = getattr(config, name)
        section.latency = latency
        if name == vendor:
            section.run_seconds = run_seconds
    sims = Simulators(config)

    async def calls(request: Request) -> Response:
        return JSONResponse(dict(Counter(e.route for e in sims.ledger.entries())))

    sims.app.router.routes.append(Route("/_bench/calls", calls, methods=["GET"]))
    return sims


class Sims:
    """One `bench.sims` process per vendor, so no single simulator loop is the bottleneck."""

    def __init__(self, profile: Profile, logs: Path) -> None:
        self.profile = profile
        self.urls = {v: f"http://127.0.0.1:{SIM_PORT + i}" for i, v in enumerate(VENDORS)}
        self.procs = [
            Proc(f"sim-{vendor}", [PY, "-m", "bench.sims", "--vendor", vendor, "--port",
                 url.rsplit(":", 1)[1], "--latency", str(profile.latency), "--run-seconds",
                 str(profile.run_seconds.get(vendor, 0.0))], {}, logs / "sims.log")
            for vendor, url in self.urls.items()
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        """flowgate's settings for these simulators (the limit and Celery read the base URLs
        too): each vendor's default connection, and the account limit the simulators allow."""
        env = {f"FLOWGATE_{v.upper()}__DEFAULT__BASE_URL": u for v, u in self.urls.items()}
        env["FLOWGATE_PRODUCTLIVE__DEFAULT__RATE_LIMIT__REQUESTS"] = str(PRODUCTLIVE_RATE_LIMIT)
        return env

    async def start(self, env: dict[str, str]) -> None:
        for proc in self.procs:
            proc.env = env
            await proc.start()
        async with httpx.AsyncClient() as http:
            for url in self.urls.values():
                for _ in range(200):
                    try:
                        (await http.get(url + "/_sim/health")).raise_for_status()
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)

    async def reset(self) -> None:
        async with httpx.AsyncClient() as http:
            for url in self.urls.values():
                await http.post(url + "/_sim/reset")

    async def calls(self) -> int:
        """Vendor calls since the last reset (PBSM token calls left out)."""
        total = 0
        async with httpx.AsyncClient(timeout=60) as http:
            for url in self.urls.values():
                counts = (await http.get(url + "/_bench/calls")).json()
                total += sum(n for route, n in counts.items() if route != "pbsm.token")
        return total

    async def stop(self) -> None:
        for proc in self.procs:
            await proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sims")
    parser.add_argument("--vendor", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--run-seconds", type=float, default=0.6)
    args = parser.parse_args()
    sims = build(args.vendor, args.latency, args.run_seconds)
    print(f"bench.sims {args.vendor} on {args.port}", flush=True)
    run_forever(sims, port=args.port)


if __name__ == "__main__":
    main()
