"""The workload: the command mix, the two profiles, the poll schedule, and the ideal timeline.

Every contender follows flowgate's own poll schedule (the default `PollPolicy`: wait
`first_delay` after the trigger, then `next_poll_delay(0)`, `next_poll_delay(1)`, ... — the
poller's exact sequence), so they make the same vendor calls. `ideal` replays the simulators'
rules with zero pipeline cost: the vendor's own time (call latencies + the run + the scheduled
waits). Pipeline overhead is the measured time minus that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.demo import SAMPLE_COMMANDS
from workers.poller.request import next_poll_delay
from workers.vendors._connection import PollPolicy

__all__ = [
    "MIX",
    "PRODUCTLIVE_RATE_LIMIT",
    "PROFILES",
    "VENDORS",
    "Profile",
    "commands",
    "ideal",
    "poll_delay",
]

# One followed command type of each vendor, plus PBSM's report API and a rerun of an ended
# batch run. Left out: `cancel-run` (it needs a run in flight to name; see BENCHMARKS.md),
# commands that act once on a fixed object (interrupt-batch, export/import-objects: the same
# sample again is refused once the first is done) and those that make no new kind of call
# (invite-partners runs a job as run-job does; restart-batch calls as rerun-batch does; the
# PAR file commands are one synchronous call, as add-paylink is).
MIX = (
    "add-paylink",
    "run-partner",
    "start-process",
    "trigger-batch",
    "run-job",
    "generate-report",
    "rerun-batch",
)
VENDOR = {
    "add-paylink": "tmf622",
    "run-partner": "informatica",
    "start-process": "robusta",
    "trigger-batch": "pbsm",
    "run-job": "productlive",
    "generate-report": "pbsm",
    "rerun-batch": "pbsm",
}
VENDORS = tuple(dict.fromkeys(VENDOR.values()))  # one simulator process each
# Product-Live requests per minute the bench's account may make, in the simulator and in
# flowgate's settings alike: at the documented 50 a minute every contender would measure the
# account's limit, not its own throughput (a 5,000-command run makes ~2,000 such calls).
PRODUCTLIVE_RATE_LIMIT = 1_000_000
_POLICY = PollPolicy()
_INFA_FILES = 2  # the simulator's default file events per partner run


def poll_delay(polls: int, policy: PollPolicy = _POLICY) -> float:
    """Seconds to wait before the next status call, after `polls` status calls so far
    (the poller's schedule: first_delay, then first_delay x factor**polls, capped)."""
    first, factor, top = policy.first_delay, policy.factor, policy.max_delay
    return next_poll_delay(polls, first=first, factor=factor, maximum=top)


@dataclass(frozen=True)
class Profile:
    """Vendor latency per call, and how long each vendor's runs take (TMF622 is synchronous)."""

    name: str
    latency: float
    run_seconds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        runs = ", ".join(f"{v} {s:g}s" for v, s in sorted(self.run_seconds.items()))
        return f"{self.name}: vendor latency {self.latency * 1000:g} ms/call, runs {runs}"


# Run lengths sit between two status calls of the schedule, so a small pipeline delay never
# changes how many polls a run needs: fast = 1 (Robusta), 2 (PBSM, Product-Live), 3 polls;
# slow = 2, 3 (Product-Live), 4 and 5 polls. A PBSM report runs as long as a PBSM batch.
PROFILES = {
    "fast": Profile(
        "fast", 0.05, {"robusta": 0.5, "pbsm": 1.5, "productlive": 1.5, "informatica": 2.7}
    ),
    "slow": Profile(
        "slow", 0.5, {"robusta": 2.0, "pbsm": 6.0, "productlive": 4.0, "informatica": 9.0}
    ),
}


def commands(n: int) -> list[tuple[str, dict[str, Any]]]:
    """`n` commands, the `MIX` types in turn, with the demo's sample data."""
    return [(MIX[i % len(MIX)], SAMPLE_COMMANDS[MIX[i % len(MIX)]]) for i in range(n)]


def ideal(command_type: str, profile: Profile) -> tuple[float, int, int]:
    """(seconds from trigger to final answer, vendor calls, status polls) with zero overhead.

    The simulator sleeps `latency` before it evaluates a request, and a run's clock starts when
    its trigger is evaluated. A Robusta process, a PBSM batch run (triggered or rerun), a PBSM
    report and a Product-Live job execution are final at the first status call evaluated
    `run_seconds` or more after their start: one call per poll. An Informatica run's task
    event is final at 2/3 of the run, its file events at the end, and flowgate asks the file
    events in the same poll round.
    """
    lat = profile.latency
    if VENDOR[command_type] == "tmf622":
        return lat, 1, 0
    run = profile.run_seconds[VENDOR[command_type]]
    now = start = lat
    calls, polls, files_pending = 1, 0, -1
    while True:
        now += poll_delay(polls) + lat
        polls += 1
        if VENDOR[command_type] != "informatica":
            calls += 1
            if now - start >= run:
                return now, calls, polls
            continue
        if files_pending < 0:
            calls += 1
            if now - start < run * 2 / 3:
                continue
            files_pending = _INFA_FILES
            now += lat
        calls += files_pending
        if now - start >= run:
            return now, calls, polls
