"""`scripts/soak`: the long run. Commands at a steady rate for `--minutes` (30) with the usual
faults (vendor 503/429/slow answers, token expiries, a process killed now and then, the broker
restarted once), while every flowgate process's resident memory and open file descriptors,
Redis's memory and the work queues' depth are sampled every 10 s.

It passes when the chaos verdict holds (nothing lost, doubled or conflicting) and no figure
grows after the warm-up: the median of the last five minutes is within 10 % of the median of
the five minutes after the first five (plus a small absolute slack for figures near zero).
The store keeps each command's record for `--retention` s (240 here, 7 days by default in
flowgate), so Redis is in its steady state before the first window and growth is a leak.
Writes `soak.csv` and `soak.png` (matplotlib) to `--out`, and prints one line per figure.

    scripts/soak --minutes 30 --rate 25 --out /tmp/soak
    scripts/soak --minutes 30 --rate 25 --cluster --out /tmp/soak-cluster
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.harness import ChaosConfig, run_chaos

__all__ = ["Figure", "judge", "main"]

WARM_UP = 300.0  # seconds: processes fill their pools and caches first
WINDOW = 300.0
GROWTH = 0.10
# Absolute slack: 5 MB of memory, 5 descriptors, 100 queued messages.
SLACK = {"rss_mb": 5.0, "fds": 5.0, "redis_used_mb": 5.0, "queued": 100.0}


@dataclass(frozen=True)
class Figure:
    name: str
    baseline: float
    end: float

    @property
    def limit(self) -> float:
        kind = self.name.split(".", 1)[0]
        return self.baseline * (1 + GROWTH) + SLACK.get(kind, 0.0)

    @property
    def ok(self) -> bool:
        return self.end <= self.limit


def _series(samples: Sequence[dict[str, float]]) -> dict[str, list[tuple[float, float]]]:
    names = sorted({k for row in samples for k in row if k != "t"})
    found: dict[str, list[tuple[float, float]]] = {}
    for name in names:
        found[name] = [(row["t"], row[name]) for row in samples if name in row]
    # Every process together: a killed process comes back small, so one process's figure says
    # little; the sum over all of them says whether the fleet grows.
    for kind in ("rss_mb", "fds"):
        totals: dict[float, float] = {}
        for row in samples:
            values = [v for k, v in row.items() if k.startswith(kind + ".")]
            if values:
                totals[row["t"]] = sum(values)
        found[f"{kind}.all"] = sorted(totals.items())
    return found


def judge(samples: Sequence[dict[str, float]]) -> list[Figure]:
    """The figures the verdict looks at: all processes' memory and descriptors, Redis's memory,
    the queued messages; each as (median after the warm-up, median of the last window)."""
    if not samples:
        return []
    last = max(row["t"] for row in samples)
    figures = []
    for name, points in _series(samples).items():
        if name.split(".", 1)[-1] != "all" and "." in name:
            continue  # per process: plotted, not judged
        early = [v for t, v in points if WARM_UP <= t < WARM_UP + WINDOW]
        late = [v for t, v in points if t >= last - WINDOW]
        if early and late:
            figures.append(Figure(name, statistics.median(early), statistics.median(late)))
    return figures


def _write(samples: Sequence[dict[str, float]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = sorted({k for row in samples for k in row if k != "t"})
    with open(out / "soak.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", *names])
        for row in samples:
            writer.writerow([f"{row['t']:.1f}", *(row.get(n, "") for n in names)])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = _series(samples)
    panels = [
        ("resident memory, MB", "rss_mb."),
        ("open file descriptors", "fds."),
        ("Redis used memory, MB", "redis_used_mb"),
        ("messages in the work queues", "queued"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 11), sharex=True)
    for axis, (title, prefix) in zip(axes, panels, strict=True):
        for name, points in series.items():
            if name.startswith(prefix):
                axis.plot([t / 60 for t, _ in points], [v for _, v in points], label=name)
        axis.axvspan(WARM_UP / 60, (WARM_UP + WINDOW) / 60, alpha=0.1)
        axis.set_title(title)
        axis.legend(fontsize=6, ncol=4)
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=25.0, help="commands per second")
    parser.add_argument("--kill-every", type=float, default=120.0, help="mean s between kills")
    parser.add_argument("--out", type=Path, default=Path("soak"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on scripts/cluster's three nodes (started if down), a node killed now and then "
        "instead of the broker restart",
    )
    parser.add_argument(
        "--node-kill-every", type=float, default=300.0, help="with --cluster: mean s between"
    )
    parser.add_argument(
        "--retention",
        type=float,
        default=240.0,
        help="idempotency.retention of every process, seconds (default 240). The store keeps "
        "each command's record this long by design; shorter than the warm-up, it reaches its "
        "steady state before the figures are judged, so growth there is a leak.",
    )
    args = parser.parse_args(argv)
    config = ChaosConfig(
        n=int(args.rate * args.minutes * 60),
        seed=args.seed,
        rate=args.rate,
        kill_every=args.kill_every,
        cluster=args.cluster,
        node_kill_every=args.node_kill_every,
        timeout=600.0,
        sample_every=10.0,
        retention=args.retention,
        log_dir=args.out / "logs",
    )
    result = asyncio.run(run_chaos(config))
    _write(result.samples, args.out)
    figures = judge(result.samples)
    for figure in figures:
        verdict = "ok" if figure.ok else "GROWS"
        print(
            f"soak: {figure.name} {figure.baseline:.1f} -> {figure.end:.1f} "
            f"(limit {figure.limit:.1f}) {verdict}"
        )
    print(result.summary(), flush=True)
    held = result.ok and bool(figures) and all(f.ok for f in figures)
    print(f"soak: {'PASS' if held else 'FAIL'} ({args.out / 'soak.png'})")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
