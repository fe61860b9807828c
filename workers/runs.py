"""`flowgate runs`: every run flowgate follows, where each stands, and the ones that are stuck.

Read from the idempotency store, which every worker and poller share: the trigger enters a run
in the store's index of runs in flight and its outcome takes it out, and the poller records a
run's state each time its status changes or it is announced stuck. Nothing is recorded for a
status call that saw no change (that would cost a store call per poll), so the number of
status calls and the next one are as of the last change; this module projects them to now
with the poll schedule recorded with them (`project`), and marks projected values with `~`.
A call that failed and was retried shifts the real schedule a little; the projection ignores
that.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from workers._table import aligned
from workers.commands import COMMANDS
from workers.idempotency import (
    HISTORY,
    IdempotencyStore,
    RunEvent,
    RunState,
    RunView,
    StoreUnavailable,
)
from workers.poller.request import next_poll_delay
from workers.settings import Settings

__all__ = ["Projection", "add_parser", "as_json", "project", "run", "run_on"]

_COLUMNS = (
    "COMMAND ID",
    "TYPE",
    "CONNECTION",
    "STATUS",
    "STATUS SINCE",
    "NEXT POLL",
    "POLLS",
    "STUCK",
    "VENDOR REF",
)
_MIN_REF_WIDTH = 20
# A projection walks the schedule one call at a time; a run followed for days at the shortest
# delays is still far below this.
_MAX_STEPS = 1_000_000


# ---------------------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add `runs` and its sub-commands to the `flowgate` parser's subparsers; `parents` carry
    the global options, so they are accepted after any sub-command too."""
    raw = argparse.RawDescriptionHelpFormatter
    runs = subparsers.add_parser(
        "runs",
        parents=list(parents),
        help="the runs flowgate follows: in flight, stuck, one run's history",
        formatter_class=raw,
        description=(
            "The runs flowgate follows, from the idempotency store every worker and poller\n"
            "shares (Redis, idempotency.redis_url): each with its vendor reference, its last\n"
            "vendor status and since when, the next status call, the status calls so far and\n"
            "whether it is stuck (its status unchanged for longer than its connection's\n"
            "poll.stuck_after). Only reads."
        ),
        epilog=(
            "examples:\n"
            "  flowgate runs list\n"
            "  flowgate runs list --stuck\n"
            "  flowgate runs show 2f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10"
        ),
    )
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list",
        parents=list(parents),
        help="a table of the runs in flight, oldest first",
        formatter_class=raw,
        description=(
            "A table of the runs in flight, oldest trigger first: COMMAND ID, TYPE,\n"
            "CONNECTION, STATUS (the vendor's last status), STATUS SINCE (how long it has\n"
            "been so), NEXT POLL (when the next status call is due), POLLS (status calls so\n"
            "far), STUCK, and VENDOR REF (cut to fit; `flowgate runs show` has it whole),\n"
            "then how many there are. The poller records a run only when its status\n"
            "changes, so NEXT POLL and POLLS are projected from then on the connection's\n"
            "poll schedule, marked ~. With --json, one JSON object per run and line."
        ),
        epilog=(
            "examples:\n"
            "  flowgate runs list --type trigger-batch --connection prod\n"
            "  flowgate runs list --stuck --json"
        ),
    )
    listing.add_argument(
        "--type",
        dest="command_type",
        choices=sorted(t for t, r in COMMANDS.items() if r.model.followed),
        metavar="TYPE",
        help="only runs of this command type",
    )
    listing.add_argument("--connection", help="only runs on this connection (its name)")
    listing.add_argument("--stuck", action="store_true", help="only the runs that are stuck")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")

    show = actions.add_parser(
        "show",
        parents=list(parents),
        help="one run: where it stands and its events",
        formatter_class=raw,
        description=(
            "One run, in flight or finished (for idempotency.retention): what the table\n"
            f"says, whole, with its deadline and its last {HISTORY} events (kind, status,\n"
            "when; `stuck` on the progress event that announced it)."
        ),
        epilog=(
            "examples:\n"
            "  flowgate runs show 2f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10\n"
            "  flowgate runs show 2f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10 --json"
        ),
    )
    show.add_argument("command_id", metavar="ID", help="the command id")
    show.add_argument("--json", action="store_true", help="one JSON object")


async def run(
    args: argparse.Namespace,
    settings: Settings,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run `flowgate runs <action>`; the exit status (0 ok, 1 not found or store unreachable)."""
    from workers.app import make_store

    out = out or sys.stdout
    err = err or sys.stderr
    action: str = args.runs_command
    config = settings.idempotency
    if config.store == "memory":
        print(
            f"flowgate runs {action}: idempotency.store is memory, which only the process "
            "holding it can read; runs are shared through Redis (idempotency.store = redis)",
            file=err,
        )
        return 1
    store = make_store(settings)
    try:
        return await run_on(store, args, out=out, err=err)
    except StoreUnavailable as exc:
        where = _redis_shown(config.redis_url.get_secret_value())
        print(
            f"flowgate runs {action}: cannot read the idempotency store at {where} ({exc}); "
            "check idempotency.redis_url",
            file=err,
        )
        return 1
    finally:
        await store.aclose()


async def run_on(
    store: IdempotencyStore, args: argparse.Namespace, *, out: TextIO, err: TextIO
) -> int:
    """`run`, on a store."""
    now = datetime.now(UTC).timestamp()
    if args.runs_command == "list":
        views = await store.runs(
            command_type=args.command_type,
            connection=args.connection,
            stuck=True if args.stuck else None,
        )
        if args.json:
            for view in views:
                print(json.dumps(as_json(view, now), separators=(",", ":")), file=out)
            return 0
        width = shutil.get_terminal_size((120, 24)).columns
        for line in _table([_row(v, now) for v in views], width) if views else []:
            print(line, file=out)
        print(_count(views, args), file=out)
        return 0
    if args.runs_command == "show":
        found = await store.run(args.command_id)
        if found is None:
            print(
                f"flowgate runs show: no run with command id {args.command_id!r} (never "
                "followed, a command answered at once, or forgotten after "
                "idempotency.retention); `flowgate runs list` shows the runs in flight",
                file=err,
            )
            return 1
        if args.json:
            print(json.dumps(as_json(found, now), indent=2, ensure_ascii=False), file=out)
        else:
            for line in _details(found, now):
                print(line, file=out)
        return 0
    raise AssertionError(args.runs_command)


# --------------------------------------------------------------------------- projection


@dataclass(frozen=True)
class Projection:
    """Status calls made and the next one due, as of a moment; `estimated` when projected
    past the last recorded change."""

    polls: int
    next_poll_at: float | None
    estimated: bool


def project(state: RunState, now: float) -> Projection:
    """Where the poll schedule recorded with `state` stands at `now`: each call due by then
    counted as made (an unchanged status records nothing), the next one after them, never
    past the deadline."""
    polls, due = state.polls, state.next_poll_at
    if due is None or state.schedule is None or due > now:
        return Projection(polls, due, False)
    first, factor, maximum = state.schedule
    steps = 0
    while due <= now and steps < _MAX_STEPS:
        if state.deadline is not None and due >= state.deadline:
            break  # the call at the deadline gives the run up: none after it
        polls += 1
        due += next_poll_delay(polls, first=first, factor=factor, maximum=maximum)
        if state.deadline is not None:
            due = min(due, state.deadline)
        steps += 1
    return Projection(polls, due, True)


# ------------------------------------------------------------------------------- output


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _span(seconds: float) -> str:
    """A duration in the two largest units: 42s, 4m12s, 3h04m, 2d03h."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _ref(view: RunView) -> str:
    # Sorted: the same text whichever store kept it (Redis keeps it as sorted JSON).
    return ", ".join(f"{k}={v}" for k, v in sorted(view.vendor_ref.items())) or "-"


def _next(projection: Projection, now: float) -> str:
    if projection.next_poll_at is None:
        return "-"
    left = projection.next_poll_at - now
    text = "due" if left < 0.5 else f"in {_span(left)}"
    return f"~{text}" if projection.estimated else text


def _polls(projection: Projection) -> str:
    return f"~{projection.polls}" if projection.estimated else str(projection.polls)


def _row(view: RunView, now: float) -> list[str]:
    state = view.state
    projection = project(state, now)
    return [
        view.command_id,
        view.command_type or "-",
        view.connection or "-",
        " ".join((state.status or "-").split()),
        f"{_span(now - state.since)} ago",
        _next(projection, now),
        _polls(projection),
        "yes" if state.stuck else "",
        _ref(view),
    ]


def _table(rows: list[list[str]], width: int) -> list[str]:
    """Aligned columns under a header; the last one (the vendor reference) cut to fit `width`."""
    return aligned(_COLUMNS, rows, width, min_last=_MIN_REF_WIDTH)


def _count(views: list[RunView], args: argparse.Namespace) -> str:
    narrowed = [
        f"type {args.command_type}" if args.command_type else "",
        f"connection {args.connection}" if args.connection else "",
    ]
    which = ", ".join(n for n in narrowed if n)
    noun = "run" if len(views) == 1 else "runs"
    line = f"{len(views)} {'stuck ' if args.stuck else ''}{noun} in flight"
    if which:
        line += f" ({which})"
    stuck = sum(1 for v in views if v.state.stuck)
    if stuck and not args.stuck:
        line += f", {stuck} stuck"
    return line


def as_json(view: RunView, now: float) -> dict[str, Any]:
    """A run as `flowgate runs --json` prints it (and the operator page reads it)."""
    state = view.state
    projection = (
        project(state, now) if view.outcome is None else Projection(state.polls, None, False)
    )
    record: dict[str, Any] = {
        "command_id": view.command_id,
        "command_type": view.command_type,
        "connection": view.connection,
        "vendor_ref": view.vendor_ref,
        "triggered_at": _iso(view.triggered_at),
        "status": state.status,
        "status_since": _iso(state.since),
        "stuck": state.stuck,
        # As of the last change the poller recorded; `estimated` projects them to now.
        "polls": state.polls,
        "next_poll_at": _iso(state.next_poll_at),
        "estimated": {"polls": projection.polls, "next_poll_at": _iso(projection.next_poll_at)},
        "deadline": _iso(state.deadline),
        "outcome": view.outcome,
    }
    if view.history:
        record["history"] = [_event_json(e) for e in view.history]
    return record


def _event_json(event: RunEvent) -> dict[str, Any]:
    raw = event.to_json()
    raw["at"] = _iso(event.at)
    return raw


def _details(view: RunView, now: float) -> list[str]:
    state = view.state

    def when(epoch: float | None) -> str:
        if epoch is None:
            return "-"
        relative = f"in {_span(epoch - now)}" if epoch > now else f"{_span(now - epoch)} ago"
        return f"{_iso(epoch)} ({relative})"

    fields = [
        ("command id", view.command_id),
        ("type", view.command_type or "-"),
        ("connection", view.connection or "-"),
        ("vendor ref", _ref(view)),
        ("triggered", when(view.triggered_at)),
        ("status", f"{state.status or '-'}, since {when(state.since)}"),
    ]
    if view.outcome is None:
        projection = project(state, now)
        polls = _polls(projection)
        if projection.estimated:
            polls += f" ({state.polls} when the status last changed)"
        fields += [
            ("stuck", "yes" if state.stuck else "no"),
            ("polls", polls),
            ("next poll", _next(projection, now)),
            ("deadline", when(state.deadline)),
            ("outcome", "none yet: in flight"),
        ]
    else:
        fields += [("polls", f"{state.polls} by the last change"), ("outcome", view.outcome)]
    lines = [f"{name:<12}{value}" for name, value in fields]
    lines.append(f"history (oldest first; the last {HISTORY} events are kept):")
    for event in view.history:
        stuck = "  (stuck)" if event.stuck else ""
        status = " ".join((event.status or "").split())
        lines.append(f"  {_iso(event.at)}  {event.kind:<9}  {status}{stuck}".rstrip())
    return lines


def _redis_shown(url: str) -> str:
    """The store's URL without its password, to name it in a message."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    # host:port as written, not parts.port: a Sentinel URL names several, comma-separated.
    hosts = parts.netloc.rpartition("@")[2] or "?"
    return f"{parts.scheme}://{hosts}{parts.path or '/'}"
