"""`scripts/bench --scaling`: does a command cost more CPU as flowgate processes are added?

The same burst through `flowgate` (fast profile) with each layout of workers and pollers, on
the same RabbitMQ and Redis, the layouts interleaved round by round. This machine has two
cores, so throughput cannot grow past two processes; CPU per command can still show a cost
that grows with processes (more consumers for RabbitMQ to feed, more connections for Redis,
idle processes' own upkeep). The table gives CPU s per 1,000 commands for the workers and the
pollers (summed over processes), RabbitMQ and Redis, their total, and that total's ratio to
the 1 worker + 1 poller layout of the same round (median over rounds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.harness import Run

__all__ = ["BASE", "LAYOUTS", "Layout", "Row", "rows", "table", "total"]

Layout = tuple[int, int]  # (workers, pollers)
LAYOUTS: tuple[Layout, ...] = ((1, 1), (2, 1), (4, 1), (1, 2), (2, 2))
BASE: Layout = (1, 1)


@dataclass
class Row:
    """One layout, each figure the median over the rounds it ran."""

    layout: Layout
    description: str  # as the harness says it: "2 workers + 1 poller"
    done: int  # summed over rounds
    n: int
    capped: bool
    throughput: float
    calls: float  # vendor calls per command: late polls make fewer, on-time polls more
    workers: float  # CPU s per 1,000 commands, all worker processes together
    pollers: float
    rabbitmq: float
    redis: float
    total: float
    ratios: list[float]  # total ÷ the base layout's total, per round both ran

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else math.nan


def _per_k(run: Run, cpu: float) -> float:
    return cpu * 1000 / run.done if run.done else math.nan


def total(run: Run) -> float:
    """CPU s per 1,000 commands: every process of the contender, RabbitMQ and Redis."""
    return _per_k(run, run.cpu + run.broker_cpu + run.redis_cpu)


def _median(runs: Sequence[Run], value: Callable[[Run], float]) -> float:
    values = [value(r) for r in runs if r.done]
    return statistics.median(values) if values else math.nan


def rows(runs: Sequence[tuple[Layout, Run]]) -> list[Row]:
    """A row per layout, in LAYOUTS order (then any other layout, as first run)."""
    by_layout: dict[Layout, dict[int, Run]] = {}
    for layout, run in runs:
        by_layout.setdefault(layout, {})[run.round] = run
    base = by_layout.get(BASE, {})
    order = [x for x in LAYOUTS if x in by_layout] + [x for x in by_layout if x not in LAYOUTS]
    out = []
    for layout in order:
        rounds = by_layout[layout]
        done = list(rounds.values())
        ratios = [
            total(run) / total(base[k])
            for k, run in sorted(rounds.items())
            if k in base and run.done and base[k].done
        ]
        out.append(
            Row(
                layout=layout,
                description=done[0].layout,
                done=sum(r.done for r in done),
                n=sum(r.n for r in done),
                capped=any(r.capped for r in done),
                throughput=_median(done, lambda r: r.throughput),
                calls=_median(done, lambda r: r.calls / r.done if r.done else math.nan),
                workers=_median(done, lambda r: _per_k(r, r.cpu_roles.get("worker", 0.0))),
                pollers=_median(done, lambda r: _per_k(r, r.cpu_roles.get("poller", 0.0))),
                rabbitmq=_median(done, lambda r: _per_k(r, r.broker_cpu)),
                redis=_median(done, lambda r: _per_k(r, r.redis_cpu)),
                total=_median(done, total),
                ratios=ratios,
            )
        )
    return out


def table(runs: Sequence[tuple[Layout, Run]]) -> str:
    rounds = len({run.round for _, run in runs})
    median = f", median of {rounds} rounds" if rounds > 1 else ""
    lines = [
        f"CPU per command as processes are added (fast profile{median}; CPU s per 1,000 "
        "commands, measured from first publish to last terminal event):\n",
        "| layout | done/N | cmd/s | vendor calls/cmd | workers | pollers | RabbitMQ | Redis "
        "| total | total ÷ 1 + 1 |",
        "|" + "---|" * 10,
    ]
    for row in rows(runs):
        ratio = f"{row.ratio:.2f}"
        if len(row.ratios) > 1:
            ratio += " (" + ", ".join(f"{r:.2f}" for r in row.ratios) + ")"
        lines.append(
            f"| {row.description} | {row.done}/{row.n}{' (capped)' * row.capped} "
            f"| {row.throughput:.1f} | {row.calls:.2f} | {row.workers:.2f} | {row.pollers:.2f} "
            f"| {row.rabbitmq:.2f} | {row.redis:.2f} | {row.total:.2f} | {ratio} |"
        )
    return "\n".join(lines)
