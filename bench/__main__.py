"""`scripts/bench`: run every contender on each profile, print the tables, append BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from subprocess import CalledProcessError

from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from bench import polling, report, scaling
from bench.harness import (
    BASELINE_PREFIX,
    BASELINES,
    OBSERVED,
    VHOST,
    Run,
    rabbitmqctl,
    run_contender,
)
from bench.polling import best_policy
from bench.scaling import LAYOUTS, Layout
from bench.sims import Sims
from bench.sustained import search, search_table
from bench.workload import MIX, PRODUCTLIVE_RATE_LIMIT, PROFILES, Profile, poll_delay
from workers.vendors._connection import PollPolicy

# flowgate-observed is in the default set: one more flowgate-sized run per profile (~1.5 min
# on ~11), and the cost of metrics, logs and traces is only seen if it runs beside flowgate.
CONTENDERS = ("limit", "flowgate", OBSERVED, "celery-prefork", "celery-threads")
ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="commands per contender run")
    parser.add_argument("--profile", choices=("fast", "slow", "both"), default="both")
    parser.add_argument("--latency", type=float, help="vendor latency per call, seconds")
    parser.add_argument("--processes", type=int, default=2, help="processes per contender")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated")
    parser.add_argument("--celery-threads", type=int, default=64, help="threads per process")
    parser.add_argument("--cap", type=float, default=120.0, help="max seconds per run")
    parser.add_argument(
        "--paced-seconds",
        type=float,
        default=30.0,
        help="fast profile: seconds of the overhead run at half flowgate's maximum sustained "
        "rate (0: skip it and the search for that rate)",
    )
    parser.add_argument(
        "--search-seconds",
        type=float,
        default=20.0,
        help="seconds per steady rate tried in the search for the maximum sustained rate",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the contenders, interleaved (order reversed every other round); "
        "ratios are then the median of the per-round ratios",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="instead: flowgate (fast profile) with (workers, pollers) = "
        + ", ".join(f"({w},{p})" for w, p in LAYOUTS)
        + ", interleaved --repeat rounds; CPU per command by role, RabbitMQ and Redis",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        action="append",
        default=[],
        help="also run `flowgate@REV`: flowgate as committed at REV (a git worktree of it), "
        "interleaved with this checkout's, and print the A/B table (e.g. --baseline HEAD~1; "
        "repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 commands")
    parser.add_argument("--no-record", action="store_true", help="do not append BENCHMARKS.md")
    return parser


async def _attempts(
    name: str, profile: Profile, sims: Sims, args: argparse.Namespace, logs: Path, n: int,
    rate: float | None = None, flowgate: Layout | None = None,
) -> Run:  # fmt: skip
    for attempt in (1, 2, 3, 4):
        try:
            return await run_contender(
                name, profile, sims, n=n, processes=args.processes, threads=args.celery_threads,
                cap=args.cap, logs=logs, rate=rate, flowgate=flowgate,
            )  # fmt: skip
        except (
            ConnectionError,
            AMQPError,
            ChannelInvalidStateError,
            TimeoutError,
            CalledProcessError,
        ) as exc:
            # e.g. someone ran `rabbitmqctl stop_app` (the e2e tests do) mid-run
            print(f"[bench]   run broken ({exc!r}); attempt {attempt} of 4", file=sys.stderr)
            await asyncio.sleep(10)
    raise RuntimeError(f"{name}: four broken runs in a row")


async def _profile(
    profile: Profile, args: argparse.Namespace, logs: Path
) -> tuple[list[Run], list[str]]:
    runs: list[Run] = []
    searches: list[str] = []
    sims = Sims(profile, logs)
    await sims.start({})

    async def one(name: str, n: int, rate: float | None = None) -> Run:
        return await _attempts(name, profile, sims, args, logs, n, rate)

    async def contender(round_: int, name: str) -> None:
        label = f" (round {round_ + 1} of {args.repeat})" if args.repeat > 1 else ""
        print(f"[bench] {profile.name}: {name}{label} ...", file=sys.stderr, flush=True)
        run = await one(name, args.n)
        run.round = round_
        runs.append(run)
        print(f"[bench]   {run.done}/{run.n} in {run.window:.1f} s", file=sys.stderr)
        if round_ == 0 and name == "flowgate" and profile.name == "fast" and args.paced_seconds:
            await overhead_runs(run.throughput)

    async def paced(name: str, rate: float, n: int) -> Run:
        print(f"[bench] {profile.name}: {name} at {rate:.0f}/s ...", file=sys.stderr, flush=True)
        return await one(name, n, rate)

    async def overhead_runs(burst_rate: float) -> None:
        top, probes = await search(
            lambda rate, n: paced("flowgate", rate, n), burst_rate, seconds=args.search_seconds
        )
        searches.append(search_table(profile.name, burst_rate, top, probes))
        rate = top / 2
        n = max(50, int(rate * args.paced_seconds))
        flowgate = await paced("flowgate", rate, n)
        flowgate.note = f"half the maximum sustained {top:.0f}/s"
        runs.append(flowgate)
        if "limit" in names:
            # The same stream through the limit: the floor this machine sets for any pipeline.
            runs.append(await paced("limit", rate, n))

    names = args.only.split(",")
    try:
        for round_ in range(args.repeat):
            # Reversed every other round, so no contender always runs first or last.
            for name in names if round_ % 2 == 0 else names[::-1]:
                await contender(round_, name)
    finally:
        await sims.stop()
    return runs, searches


async def _scaling(
    profile: Profile, args: argparse.Namespace, logs: Path
) -> list[tuple[Layout, Run]]:
    runs: list[tuple[Layout, Run]] = []
    sims = Sims(profile, logs)
    await sims.start({})
    try:
        for round_ in range(args.repeat):
            label = f" (round {round_ + 1} of {args.repeat})" if args.repeat > 1 else ""
            # Reversed every other round, as the contenders are.
            for layout in LAYOUTS if round_ % 2 == 0 else LAYOUTS[::-1]:
                print(f"[bench] scaling: {layout} (workers, pollers){label} ...", file=sys.stderr)
                run = await _attempts(
                    "flowgate", profile, sims, args, logs, args.n, flowgate=layout
                )
                run.round = round_
                runs.append((layout, run))
                print(f"[bench]   {run.done}/{run.n} in {run.window:.1f} s", file=sys.stderr)
    finally:
        await sims.stop()
    return runs


def _scaling_notes(args: argparse.Namespace, profile: Profile) -> str:
    return "\n".join(
        [
            f"- {profile.describe()}; N = {args.n} commands published at once per layout",
            "- `flowgate` as in the contender runs (WARNING logs, no health port, no tracing);"
            " each layout starts its processes afresh on a fresh vhost and the same Redis.",
            "- CPU = utime + stime over the window; workers and pollers are summed over their"
            " processes. RabbitMQ = the beam.smp listening on 5672, Redis = the redis-server"
            " on the store's port: both shared with anything else using them meanwhile.",
            "- total = workers + pollers + RabbitMQ + Redis; total ÷ 1 + 1 = that total over"
            " the 1 worker + 1 poller total of the same round, the median over rounds.",
        ]
    )


def _notes(args: argparse.Namespace, profiles: list[Profile]) -> str:
    schedule = ", ".join(f"{poll_delay(i):.3g}" for i in range(5))
    lines = [f"- {p.describe()}; N = {args.n} commands published at once" for p in profiles]
    lines += [
        f"- Commands: the {len(MIX)} types {', '.join(MIX)} in turn (demo sample data). Every"
        " contender follows flowgate's default poll schedule (waits"
        f" {schedule}, ... s after the trigger and each status call). Product-Live's account"
        f" limit is {PRODUCTLIVE_RATE_LIMIT:,} requests a minute here, in its simulator and in"
        " flowgate's settings (50 in production): flowgate still asks its Redis limiter before"
        " each Product-Live call, the limit and Celery do not.",
        f"- Fairness: {args.processes} processes each. flowgate = {max(1, args.processes - 1)}"
        " `flowgate worker` + 1 `flowgate poller`; limit = that many `bench.limit` loops; Celery"
        " prefork = one worker with that many children (+ its main process); Celery threads ="
        f" that many workers x {args.celery_threads} threads. CPU s/1k counts every process of"
        " the contender (children included), measured from first publish to last terminal event.",
        "- Time = publish to terminal event on `flowgate.events`. Overhead = time minus the"
        " vendor's own time (latency x sequential calls + run + scheduled poll waits, from"
        " `bench/workload.py:ideal`). A capped run counts unfinished commands as 'never'.",
        "- Simulators (one process per vendor), RabbitMQ and the bench's publisher/collector"
        " share the same cores as the contender.",
        "- RabbitMQ CPU = the beam.smp listening on 5672; Redis CPU = the redis-server on the"
        " store's port (flowgate's idempotency store and run index; the limit and Celery do not"
        " use it). Both count anything else using them during the window.",
    ]
    if OBSERVED in args.only.split(","):
        lines.append(
            f"- {OBSERVED}: the same processes as flowgate, configured as in production: JSON log"
            " lines at INFO (to the process log file), a health port each with `/metrics`"
            " scraped every second through the window, and tracing on (every trace) exported"
            " over OTLP/HTTP to a sink in the bench process that answers 200 and keeps nothing."
            " flowgate logs at WARNING (no line per command), serves no port and traces nothing;"
            " both keep the run index (the store always does)."
        )
    return "\n".join(lines)


def main() -> int:
    args = _parser().parse_args()
    if args.quick:
        args.n, args.cap, args.search_seconds = 200, 60.0, 8.0
        # At most 10 s: `--paced-seconds 0` still skips the search
        args.paced_seconds = min(args.paced_seconds, 10.0)
    names = ["fast", "slow"] if args.profile == "both" else [args.profile]
    if args.scaling:
        names = ["fast"]  # --scaling ignores --profile and --only
    profiles = [PROFILES[p] for p in names]
    if args.latency is not None:
        profiles = [Profile(p.name, args.latency, p.run_seconds) for p in profiles]
    unknown = set(args.only.split(",")) - set(CONTENDERS)
    if unknown:
        print(f"scripts/bench: unknown contenders {sorted(unknown)}", file=sys.stderr)
        return 2
    baselines = []
    for rev in args.baseline:
        try:
            baselines.append(_baseline_worktree(rev))
        except CalledProcessError as exc:
            print(f"scripts/bench: --baseline {rev}: {exc.stderr.strip()}", file=sys.stderr)
            return 2
    if baselines:
        # Right after flowgate, so they alternate with it as closely as the rounds allow.
        only = args.only.split(",")
        at = only.index("flowgate") + 1 if "flowgate" in only else len(only)
        args.only = ",".join([*only[:at], *baselines, *only[at:]])
    started = time.monotonic()
    load = Path("/proc/loadavg").read_text().split()[0]
    logs = Path(tempfile.mkdtemp(prefix="flowgate-bench-"))
    print(f"[bench] process logs in {logs}", file=sys.stderr)
    runs: list[Run] = []
    searches: list[str] = []
    scaled: list[tuple[Layout, Run]] = []

    async def every_profile() -> None:
        main_task = asyncio.current_task()
        assert main_task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: contenders, sims, vhost
            asyncio.get_running_loop().add_signal_handler(sig, main_task.cancel)
        if args.scaling:
            scaled.extend(await _scaling(profiles[0], args, logs))
            return
        for profile in profiles:
            profile_runs, profile_searches = await _profile(profile, args, logs)
            runs.extend(profile_runs)
            searches.extend(profile_searches)

    try:
        asyncio.run(every_profile())
    except asyncio.CancelledError:
        print("[bench] stopped", file=sys.stderr)
        return 130
    finally:
        rabbitmqctl("delete_vhost", VHOST, check=False)
    timing = (
        f"Total bench time: {time.monotonic() - started:.0f} s; 1-min load average at the start"
        f" {load}, at the end {Path('/proc/loadavg').read_text().split()[0]}."
    )
    if args.scaling:
        body = "\n\n".join([scaling.table(scaled), _scaling_notes(args, profiles[0]), timing])
    else:
        body = _body(args, profiles, runs, searches, timing)
    print(body)
    if not args.no_record:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        command = "scripts/bench " + shlex.join(sys.argv[1:])
        report.record(ROOT / "BENCHMARKS.md", when, command.strip(), body)
    return 0


def _baseline_worktree(rev: str) -> str:
    """A detached worktree of `rev` (made once per commit, kept for the next run) and the
    contender name that runs from it."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--verify", f"{rev}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    path = Path(tempfile.gettempdir()) / f"flowgate-baseline-{commit[:12]}"
    if not (path / "workers").is_dir():
        subprocess.run(
            [*git, "worktree", "add", "--detach", "--force", str(path), commit],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    name = f"{BASELINE_PREFIX}{commit[:12]}"
    BASELINES[name] = path
    print(f"[bench] {name}: {rev} in {path}", file=sys.stderr)
    return name


def _body(
    args: argparse.Namespace, profiles: list[Profile], runs: list[Run], searches: list[str],
    timing: str,
) -> str:  # fmt: skip
    proposal = best_policy() if not polling.meets(PollPolicy()) else None
    sections = [
        report.results_table(runs),
        report.observed_table(runs),
        *(report.baseline_table(runs, name) for name in BASELINES),
        _notes(args, profiles),
        *searches,
        "Targets:\n\n" + report.targets_table(report.targets(runs)),
        "Poll efficiency (simulated time, default PollPolicy vs a fixed 5 s poller):\n\n"
        + report.poll_table(),
        f"A policy meeting every poll target: `{proposal}`:\n\n" + report.poll_table(proposal)
        if proposal
        else "",
        timing,
    ]
    return "\n\n".join(section for section in sections if section)


if __name__ == "__main__":
    sys.exit(main())
