"""The maximum sustained rate: the fastest steady arrival rate a contender keeps up with.

A burst of N commands drains faster than the same commands arriving one by one can be served:
in a burst one socket read carries hundreds of frames and every loop turn serves many messages,
so flowgate spends ~3.5 CPU s per 1,000 commands draining a burst and ~6.5 at a steady 140/s
(the limit: ~2.5 and ~3.9). Half the burst rate is therefore close to the most a steady stream
can get, not half of it. The overhead target asks for half of the maximum *sustained* rate, so
the bench finds that rate: commands published at a steady rate for `seconds`, rising by `step`
from `start` x the burst rate. A rate is sustained when every command finishes and the pipeline
overhead (time minus the vendor's own, so the four command types compare) does not grow during
the run: the median over the last quarter of commands, by publish time, is at most 1.5 x the
first quarter's + 50 ms. A stream the pipeline cannot keep up with queues, and its overhead
grows steadily. The maximum sustained rate is the highest rate sustained
before the first one that is not.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.harness import Run

__all__ = ["Probe", "search", "search_table"]

GROWTH, SLACK = 1.5, 0.05


@dataclass
class Probe:
    rate: float
    run: Run

    @property
    def early(self) -> float:
        return _median_of(self.run.overhead[: max(1, len(self.run.overhead) // 4)])

    @property
    def late(self) -> float:
        return _median_of(self.run.overhead[-max(1, len(self.run.overhead) // 4) :])

    @property
    def sustained(self) -> bool:
        complete = self.run.done == self.run.n and not self.run.capped
        return complete and self.late <= GROWTH * self.early + SLACK


def _median_of(values: list[float]) -> float:
    return statistics.median(values) if values else float("inf")


async def search(
    paced: Callable[[float, int], Awaitable[Run]],
    burst_rate: float,
    *,
    seconds: float,
    start: float = 0.4,
    step: float = 1.2,
) -> tuple[float, list[Probe]]:
    """(maximum sustained rate, every probe). `paced(rate, n)` runs n commands at `rate`/s.
    If even the first rate is not sustained, it is returned all the same (the table says so)."""
    probes: list[Probe] = []
    rate = max(1.0, burst_rate * start)
    while rate <= burst_rate * 1.05:
        probe = Probe(rate, await paced(rate, max(50, int(rate * seconds))))
        probes.append(probe)
        if not probe.sustained:
            break
        rate *= step
    passed = [p.rate for p in probes if p.sustained]
    return (max(passed) if passed else probes[0].rate), probes


def search_table(profile: str, burst_rate: float, top: float, probes: list[Probe]) -> str:
    lines = [
        f"Maximum sustained rate, {profile} profile (burst drained at {burst_rate:.0f}/s; "
        f"steady arrivals, each rate for {probes[0].run.n / probes[0].rate:.0f} s):\n",
        "| rate | done/N | overhead p50, first quarter | overhead p50, last quarter | CPU s/1k cmd "
        "| RabbitMQ CPU s/1k | Redis CPU s/1k | sustained |",
        "|" + "---|" * 8,
    ]
    for p in probes:
        per_k = 1000 / p.run.done if p.run.done else float("nan")
        lines.append(
            f"| {p.rate:.0f}/s | {p.run.done}/{p.run.n} | {p.early * 1000:.0f} ms "
            f"| {p.late * 1000:.0f} ms "
            f"| {p.run.cpu * per_k:.1f} | {p.run.broker_cpu * per_k:.1f} "
            f"| {p.run.redis_cpu * per_k:.1f} "
            f"| {'yes' if p.sustained else 'no'} |"
        )
    lines.append(f"\nMaximum sustained rate: {top:.0f}/s; the overhead run goes at half of it.")
    return "\n".join(lines)
