"""Poll efficiency: status calls and lag for runs of 1 s to 1 h, flowgate vs a fixed 5 s poller.

Pure computation over the poller's schedule (`bench.workload.poll_delay`, i.e. flowgate's
`next_poll_delay` with the default `PollPolicy`), in simulated time: a run that ends T seconds
after its trigger is seen final by the first status call at or after T; lag = that call's time
minus T. Pipeline costs are left out here (they are measured as overhead in the main table).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from bench.workload import poll_delay
from workers.vendors._connection import PollPolicy

__all__ = ["RUNS", "PollRow", "best_policy", "poll_rows", "worst_case"]

RUNS = (1.0, 10.0, 60.0, 600.0, 3600.0)
HORIZON = 3600.0
FIXED = 5.0


def lag_allowed(run: float) -> float:
    return 0.2 * run + 1.0


def _times(policy: PollPolicy, horizon: float) -> list[float]:
    times, now, polls = [], 0.0, 0
    while now < horizon * 1.5 + 10:
        now += poll_delay(polls, policy)
        polls += 1
        times.append(now)
    return times


def _seen(times: list[float], run: float) -> tuple[int, float]:
    """(status calls made, lag) for a run ending at `run`."""
    for index, at in enumerate(times):
        if at >= run:
            return index + 1, at - run
    raise ValueError("schedule too short")


def _worst_near(times: list[float], run: float) -> float:
    """The worst lag for runs within ±10% of `run` (a run rarely ends exactly on a grid)."""
    low, high = run * 0.9, run * 1.1
    candidates = [low + (high - low) * i / 200 for i in range(201)]
    candidates += [t + 1e-6 for t in times if low <= t < high]
    return max(_seen(times, c)[1] for c in candidates)


@dataclass(frozen=True)
class PollRow:
    run: float
    calls: int
    lag: float
    worst: float
    fixed_calls: int
    fixed_lag: float
    fixed_worst: float

    @property
    def ok(self) -> bool:
        return self.worst <= lag_allowed(self.run)


def poll_rows(policy: PollPolicy | None = None) -> list[PollRow]:
    times = _times(policy or PollPolicy(), HORIZON)
    fixed = [FIXED * (i + 1) for i in range(int(HORIZON * 1.5 / FIXED) + 2)]
    return [
        PollRow(
            run,
            *_seen(times, run),
            _worst_near(times, run),
            *_seen(fixed, run),
            _worst_near(fixed, run),
        )
        for run in RUNS
    ]


def worst_case(policy: PollPolicy | None = None) -> tuple[float, float]:
    """(run length, lag ÷ allowed lag) where the ratio is worst over runs of 1 s to 1 h.

    The worst runs end just after a status call, so those instants plus a 1 s grid are checked.
    """
    times = _times(policy or PollPolicy(), HORIZON)
    candidates = [float(t) for t in range(1, int(HORIZON) + 1)]
    candidates += [t + 1e-6 for t in times if 1.0 <= t < HORIZON]
    worst = max(candidates, key=lambda run: _seen(times, run)[1] / lag_allowed(run))
    return worst, _seen(times, worst)[1] / lag_allowed(worst)


def meets(policy: PollPolicy) -> bool:
    times = _times(policy, HORIZON)
    return (
        worst_case(policy)[1] <= 1.0
        and _seen(times, 60.0)[0] <= 15
        and _seen(times, 3600.0)[0] <= 40
    )


def best_policy() -> PollPolicy | None:
    """The policy (on a coarse grid) meeting every poll target with the fewest calls at 1 h."""
    found: list[tuple[int, int, PollPolicy]] = []
    grid = itertools.product((0.5, 1.0, 2.0), (1.15, 1.2, 1.25), (300.0, 600.0, 720.0))
    for first, factor, top in grid:
        policy = PollPolicy(first_delay=first, factor=factor, max_delay=top)
        if meets(policy):
            times = _times(policy, HORIZON)
            found.append((_seen(times, 3600.0)[0], _seen(times, 60.0)[0], policy))
    return min(found, key=lambda f: (f[0], f[1]))[2] if found else None
