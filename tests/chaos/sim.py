"""The vendor simulators as a process the chaos harness controls (like `flowgate simulate`,
plus a seed for the probabilistic faults and the PBSM token lifetime).

    python -m tests.chaos.sim --port 8799 --run-seconds 0.5 --seed 7
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workers.simulators import SimulatorConfig, Simulators, run_forever


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--run-seconds", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expires-in", type=int, default=3600, help="PBSM token lifetime (s)")
    parser.add_argument(
        "--history", type=Path, help="JSON {run id: final statusCode} of ended PBSM runs"
    )
    parser.add_argument("--productlive-limit", type=int, default=50, help="requests per window")
    parser.add_argument("--productlive-window", type=float, default=60.0, help="seconds")
    args = parser.parse_args()
    config = SimulatorConfig(seed=args.seed)
    for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
        vendor.run_seconds = args.run_seconds
    config.productlive.run_seconds = args.run_seconds
    config.productlive.rate_limit = args.productlive_limit
    config.productlive.rate_window = args.productlive_window
    config.pbsm.expires_in = args.expires_in
    if args.history is not None:
        config.pbsm.history = json.loads(args.history.read_text())
    print(f"chaos simulators: serving on http://{args.host}:{args.port}", flush=True)
    run_forever(Simulators(config), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
