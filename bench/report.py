"""The result tables (Markdown, printed and appended to BENCHMARKS.md) and the target checks."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import OBSERVED, Run
from bench.polling import lag_allowed, poll_rows, worst_case
from workers.vendors._connection import PollPolicy

__all__ = ["machine", "observed_table", "poll_table", "record", "results_table", "targets"]


def pct(values: Sequence[float], n: int, q: float) -> float:
    """The q-quantile over n commands; commands with no terminal event count as infinite."""
    ordered = sorted(values) + [math.inf] * (n - len(values))
    return ordered[max(0, math.ceil(q * n) - 1)] if ordered else math.nan


def _s(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.2f} s"


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value * 1000:.0f} ms"


def _rss(run: Run) -> str:
    peaks: dict[str, float] = {}
    for role, mb in run.rss:
        peaks[role] = max(peaks.get(role, 0.0), mb)
    return ", ".join(f"{role} {mb:.0f}" for role, mb in peaks.items())


def results_table(runs: list[Run]) -> str:
    head = "| profile | contender | processes | done/N | cmd/s | p50 | p99 | overhead p50 "
    head += "| overhead p99 | vendor calls/cmd | CPU s/1k cmd | RabbitMQ CPU s/1k "
    head += "| Redis CPU s/1k | peak RSS MB |"
    lines = [head, "|" + "---|" * 14]
    for r in runs:
        per_k = 1000 / r.done if r.done else math.nan
        name = r.name + (f" @ {r.rate:.0f}/s" if r.rate else "")
        name += f" #{r.round + 1}" if any(x.round for x in runs) else ""
        done = f"{r.done}/{r.n}" + (" (capped)" if r.capped else "")
        calls = r.calls / r.done if r.done else math.nan
        cpu = f"{r.cpu * per_k:.1f}"
        if len(r.cpu_roles) > 1:
            cpu += " (" + ", ".join(f"{k} {v * per_k:.1f}" for k, v in r.cpu_roles.items()) + ")"
        lines.append(
            f"| {r.profile} | {name} | {r.layout} | {done} | {r.throughput:.1f} "
            f"| {_s(pct(r.e2e, r.n, 0.5))} | {_s(pct(r.e2e, r.n, 0.99))} "
            f"| {_ms(pct(r.overhead, r.n, 0.5))} | {_ms(pct(r.overhead, r.n, 0.99))} "
            f"| {calls:.2f} | {cpu} | {r.broker_cpu * per_k:.1f} | {r.redis_cpu * per_k:.1f} "
            f"| {_rss(r)} |"
        )
    return "\n".join(lines)


def poll_table(policy: PollPolicy | None = None) -> str:
    policy = policy or PollPolicy()
    lines = [
        "| run | flowgate calls | lag at T | worst lag T±10% | allowed (0.2 T + 1 s) "
        "| fixed 5 s calls | fixed 5 s worst lag |",
        "|" + "---|" * 7,
    ]
    for row in poll_rows(policy):
        lines.append(
            f"| {row.run:g} s | {row.calls} | {row.lag:.1f} s | {row.worst:.1f} s "
            f"| {lag_allowed(row.run):.1f} s | {row.fixed_calls} | {row.fixed_worst:.1f} s |"
        )
    at, ratio = worst_case(policy)
    lines.append(f"\nWorst run 1 s to 1 h: ends at {at:.0f} s, lag = {ratio:.2f} x allowed.")
    return "\n".join(lines)


def _find(runs: list[Run], profile: str, name: str) -> dict[int, Run]:
    """The unpaced runs of one contender on one profile, by round."""
    return {r.round: r for r in runs if r.profile == profile and r.name == name and not r.rate}


def _ratio(flowgate: dict[int, Run], other: dict[int, Run], name: str) -> tuple[float, str]:
    """flowgate ÷ other, the median over the rounds both ran, and how it was measured."""
    rounds = sorted(k for k in flowgate if k in other and other[k].throughput > 0)
    ratios = [flowgate[k].throughput / other[k].throughput for k in rounds]
    if len(rounds) == 1:
        f, o = flowgate[rounds[0]], other[rounds[0]]
        measured = f"{f.throughput:.1f} / {o.throughput:.1f} = {ratios[0]:.2f} x"
    else:
        measured = (
            f"median {statistics.median(ratios):.2f} x over {len(rounds)} rounds "
            f"({', '.join(f'{r:.2f}' for r in ratios)})"
        )
    capped = [other[k] for k in rounds if other[k].capped]
    if capped:
        measured += f" ({name} capped: {capped[0].done}/{capped[0].n} done)"
    return statistics.median(ratios), measured


def _per_k(run: Run, cpu: float) -> float:
    return cpu * 1000 / run.done if run.done else math.nan


def _per_k_calls(run: Run, cpu: float) -> float:
    return cpu * 1000 / run.calls if run.calls else math.nan


# Under a burst the poller polls late, and a late poll finds more runs ended: the vendor calls
# a command costs vary from round to round (2.1 to 2.6 in one run), and the poller's CPU with
# them. CPU per vendor call sets that variation aside; calls per command shows it.
_MEASURES: tuple[tuple[str, Callable[[Run], float], str], ...] = (
    ("cmd/s", lambda r: r.throughput, ".1f"),
    ("vendor calls/cmd", lambda r: r.calls / r.done if r.done else math.nan, ".2f"),
    ("CPU s/1k cmd, every process", lambda r: _per_k(r, r.cpu), ".2f"),
    ("CPU s/1k vendor calls, every process", lambda r: _per_k_calls(r, r.cpu), ".2f"),
    ("... worker(s)", lambda r: _per_k(r, r.cpu_roles.get("worker", 0.0)), ".2f"),
    ("... poller(s)", lambda r: _per_k(r, r.cpu_roles.get("poller", 0.0)), ".2f"),
    ("RabbitMQ CPU s/1k cmd", lambda r: _per_k(r, r.broker_cpu), ".2f"),
    ("Redis CPU s/1k cmd", lambda r: _per_k(r, r.redis_cpu), ".2f"),
)


def _pair_lines(
    runs: list[Run], profile: str, a: str, b: str
) -> tuple[list[str], list[int], dict[int, Run]]:
    """One row per measure: `a`'s and `b`'s medians and b ÷ a (median of the per-round
    ratios, each round's in brackets); the rounds both ran, and `b`'s runs by round."""
    off, on = _find(runs, profile, a), _find(runs, profile, b)
    rounds = sorted(k for k in off if k in on and off[k].done and on[k].done)
    lines = []
    for label, measure, spec in _MEASURES if rounds else ():
        ratios = [measure(on[k]) / measure(off[k]) for k in rounds if measure(off[k])]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        if len(ratios) > 1:
            ratio += " (" + ", ".join(f"{x:.2f}" for x in ratios) + ")"
        before = statistics.median(measure(off[k]) for k in rounds)
        after = statistics.median(measure(on[k]) for k in rounds)
        lines.append(f"| {profile} | {label} | {before:{spec}} | {after:{spec}} | {ratio} |")
    return lines, rounds, on


def baseline_table(runs: list[Run], baseline: str) -> str:
    """`flowgate` (this checkout) beside `baseline` (`flowgate@REV`), per profile: the A/B of
    the changes since REV ("" when they did not both run)."""
    lines = []
    for profile in ("fast", "slow"):
        lines += _pair_lines(runs, profile, baseline, "flowgate")[0]
    if not lines:
        return ""
    return "\n".join(
        [
            f"A/B: `{baseline}` (as committed there) vs `flowgate` (this checkout), interleaved;"
            " ratio = this ÷ that, the median of the per-round ratios:\n",
            f"| profile | measure | {baseline} | flowgate | flowgate ÷ {baseline} |",
            "|" + "---|" * 5,
            *lines,
        ]
    )


def observed_table(runs: list[Run]) -> str:
    """flowgate-observed beside flowgate, per profile: what the JSON log lines, the /metrics
    scrapes and the exported traces cost (medians over the rounds both ran; "" if none)."""
    lines = []
    for profile in ("fast", "slow"):
        rows, rounds, on = _pair_lines(runs, profile, "flowgate", OBSERVED)
        if not rounds:
            continue
        lines += rows
        window = sum(on[k].window for k in rounds)
        scrapes = sum(on[k].scrapes for k in rounds)
        failed = sum(on[k].scrape_failures for k in rounds)
        exports = sum(on[k].trace_exports for k in rounds)
        kb = sum(on[k].trace_bytes for k in rounds) / 1024
        spans = sum(on[k].trace_spans for k in rounds)
        per_command = spans / sum(on[k].done for k in rounds)
        lines.append(
            f"| {profile} | /metrics scrapes (failed); OTLP exports | | {scrapes} ({failed}) in "
            f"{window:.0f} s; {exports} exports, {kb:.0f} KiB, {spans} spans "
            f"({per_command:.1f} a command) | |"
        )
    if not lines:
        return ""
    rounds_note = (
        "; ratios: median of the per-round ratios" if len({r.round for r in runs}) > 1 else ""
    )
    return "\n".join(
        [
            f"What observability costs: `flowgate` (WARNING logs, no health port, no tracing) vs "
            f"`{OBSERVED}` (JSON logs at INFO, /metrics scraped every second per process, "
            f"every trace exported over OTLP/HTTP){rounds_note}:\n",
            f"| profile | measure | flowgate | {OBSERVED} | observed ÷ flowgate |",
            "|" + "---|" * 5,
            *lines,
        ]
    )


def _cpu_per_k(run: Run) -> float:
    """CPU seconds per 1,000 commands of the contender's processes, RabbitMQ and Redis."""
    return _per_k(run, run.cpu + run.broker_cpu + run.redis_cpu)


def _cpu_ratio(flowgate: dict[int, Run], limit: dict[int, Run]) -> tuple[float, str] | None:
    """flowgate's CPU per command over the limit's, the median over the rounds both ran, and
    how it was measured; None when they did not both run."""
    rounds = sorted(k for k in flowgate if k in limit and flowgate[k].done and limit[k].done)
    if not rounds:
        return None
    ratios = [_cpu_per_k(flowgate[k]) / _cpu_per_k(limit[k]) for k in rounds]
    f = statistics.median(_cpu_per_k(flowgate[k]) for k in rounds)
    lim = statistics.median(_cpu_per_k(limit[k]) for k in rounds)
    each = f" ({', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    measured = f"{f:.1f} vs {lim:.1f} s/1k: median {statistics.median(ratios):.2f} x{each}"
    return statistics.median(ratios), measured


def targets(runs: list[Run]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target the runs can answer."""
    out: list[tuple[str, str, bool]] = []
    for profile in ("fast", "slow"):
        flowgate = _find(runs, profile, "flowgate")
        if not flowgate:
            continue
        limit = _find(runs, profile, "limit")
        cpu = _cpu_ratio(flowgate, limit)
        if cpu is not None:
            out.append((f"{profile}: CPU per command, RabbitMQ and Redis included, ≤ 1.3 x limit",
                        cpu[1], cpu[0] <= 1.3))  # fmt: skip
        # "≥ 5 x Celery threads" is retired: on two cores it is bounded by the limit's own.
        wanted = [("limit", 0.8, "≥ 0.8 x limit")]
        if profile == "slow":
            wanted += [("celery-prefork", 50.0, "≥ 50 x Celery prefork")]
        for name, factor, text in wanted:
            other = _find(runs, profile, name)
            if any(k in other and other[k].throughput > 0 for k in flowgate):
                ratio, measured = _ratio(flowgate, other, name)
                out.append((f"{profile}: flowgate throughput {text}", measured, ratio >= factor))
    rows = {row.run: row for row in poll_rows()}
    at, ratio = worst_case()
    out.append(("poll lag ≤ 0.2 T + 1 s, T = 1 s … 1 h", f"worst {ratio:.2f} x at {at:.0f} s",
                ratio <= 1.0))  # fmt: skip
    out.append(("≤ 15 status calls for a 1-min run", str(rows[60.0].calls), rows[60.0].calls <= 15))
    out.append(("≤ 40 status calls for a 1-h run", str(rows[3600.0].calls), rows[3600].calls <= 40))
    for r in runs:
        if r.name == "flowgate" and r.rate:
            p99 = pct(r.overhead, r.n, 0.99)
            floor = [
                x for x in runs if x.name == "limit" and x.rate == r.rate and x.profile == r.profile
            ]
            if not floor:
                out.append((f"{r.profile}: overhead p99 ≤ 50 ms at {r.rate:.0f}/s ({r.note})",
                            _ms(p99), p99 <= 0.05))  # fmt: skip
                continue
            base = pct(floor[0].overhead, floor[0].n, 0.99)
            out.append((f"{r.profile}: overhead p99 ≤ 1.5 x the limit's, same stream, at "
                         f"{r.rate:.0f}/s ({r.note}; 50 ms: stretch)",
                         f"{_ms(p99)} vs {_ms(base)} = {p99 / base:.2f} x" if base else _ms(p99),
                         p99 <= 1.5 * base))  # fmt: skip
            same = {0: r}, {0: floor[0]}
            paced = _cpu_ratio(*same)
            if paced is not None:
                out.append((f"{r.profile}: CPU per command at {r.rate:.0f}/s, RabbitMQ and Redis "
                            "included, ≤ 1.3 x limit", paced[1], paced[0] <= 1.3))  # fmt: skip
    for role in ("worker", "poller"):
        peaks = [mb for r in runs if r.name == "flowgate" for who, mb in r.rss if who == role]
        if peaks:
            out.append((f"peak RSS ≤ 100 MB per {role} process (≥ 1,000 in flight)",
                        f"{max(peaks):.0f} MB", max(peaks) <= 100))  # fmt: skip
    return out


def targets_table(checks: list[tuple[str, str, bool]]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**NO**'} |" for t, m, ok in checks]
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    kib = int(Path("/proc/meminfo").read_text().split()[1])
    rabbit = subprocess.run(
        ["rabbitmqctl", "-q", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({model}), {kib / 1024 / 1024:.1f} GiB RAM, "
        f"Python {platform.python_version()}, RabbitMQ {rabbit or '?'}, {platform.system()}"
    )


def record(path: Path, when: str, command: str, body: str) -> None:
    header = f"\n## {when}\n\nMachine: {machine()}  \nCommand: `{command}`\n\n"
    with path.open("a") as out:
        if path.stat().st_size == 0:
            out.write("# Benchmarks\n\nAppended by `scripts/bench` (see `bench/`), newest last.\n")
        out.write(header + body + "\n")
