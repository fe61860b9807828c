"""`flowgate dlq`: look into, replay and purge the dead-letter queue `flowgate.dead-letters`.

Dead letters come from two places. flowgate gives up on a message (`Publisher.dead_letter`):
a byte-for-byte copy with `x-flowgate-*` headers saying why, how often it was tried, which
queue and routing key it came from, and a letter id of its own. RabbitMQ dead-letters a message
itself (a quorum queue's `x-delivery-limit` exceeded, or a reject): `x-death` /
`x-first-death-*` headers instead. `DeadLetter.from_delivery` reads either into one shape.

Looking never changes a letter. Giving a message back to a quorum queue (a requeue) adds to
its `x-delivery-count` and, on RabbitMQ 3.10, puts it at the tail; RabbitMQ 4 quorum queues
even drop a message after 20 deliveries by default. So nothing here requeues. Every pass takes
each letter the queue held at the start (basic.get, held unacked, in queue order), then deals
with them one by one, in order: a letter kept is copied back (to the default exchange, routing
key `flowgate.dead-letters`: same body, content type, message id and headers, minus
`x-delivery-count`, plus a letter id and the routing key it first came with when it had none)
and acked only once the copy is confirmed; a replayed one is acked only once its re-publish is
confirmed. After a full pass the letters kept are in the queue in the order they were, each as
it was; one that dies meanwhile lands ahead of them.

A crash between a copy and its ack leaves the letter twice (RabbitMQ gives the unacked one
back by itself). Every letter has an id (`x-flowgate-letter-id`: a uuid4 from
`Publisher.dead_letter`, or, for a letter without one, derived from its content and added on
its first copy), and a pass drops a letter whose id it has already seen as a duplicate (acked,
not copied), and says how many it dropped. If a copy cannot be confirmed, the pass stops and
gives back (requeues) what it still holds: nothing is lost, but those may change place.

Replaying publishes a command as a new command: to `flowgate.commands` under the routing key it
first came with, with the id `uuid5(REPLAY_NAMESPACE, old id)` and the CloudEvents attribute
`replayof` = the old id, which the worker carries onto every event of the new run. The old id
keeps its one terminal event; replaying the same letter twice reaches the same new id, which
the idempotency store answers from the first run (the vendor is triggered once). Letters
refused as `invalid` are replayed only with --force. A poll request goes back to the poll queue
under its own command id, marked `resumed`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from flowgate_client._common import url_user
from workers._table import aligned
from workers.broker.base import Broker, Delivery, PublishNotConfirmed, TopologyError
from workers.dead_letters import KINDS, DeadLetter, NotReplayable, Replay
from workers.settings import Settings
from workers.settlement import consumed, give_back
from workers.topology import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, POLL_QUEUE

__all__ = ["DeadLetter", "Selection", "add_parser", "letters", "replay", "run"]

_PROGRESS_EVERY = 10
# `show` prints bodies up to this many bytes whole; longer ones are cut unless --full.
SHOW_LIMIT = 4096
_MIN_REASON_WIDTH = 20


# ---------------------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add `dlq` and its sub-commands to the `flowgate` parser's subparsers; `parents` carry
    the global options, so they are accepted after any sub-command too."""
    raw = argparse.RawDescriptionHelpFormatter
    dlq = subparsers.add_parser(
        "dlq",
        parents=list(parents),
        help="list, show, replay or purge dead letters",
        formatter_class=raw,
        description=(
            f"Inspect and act on the dead-letter queue {DEAD_LETTER_QUEUE}. Listing and\n"
            "showing never change, drop or reorder a letter: each is taken and put back as an\n"
            "exact copy (never requeued, which would count a delivery against it)."
        ),
        epilog=(
            "examples:\n"
            "  flowgate dlq list\n"
            "  flowgate dlq show --pos 1\n"
            "  flowgate dlq replay --kind rejected\n"
            "  flowgate dlq purge --yes"
        ),
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list",
        parents=list(parents),
        help="a table of the dead letters, oldest first",
        formatter_class=raw,
        description=(
            "A table of the dead letters, oldest first: POS (position in the queue, for\n"
            "--pos), ID (command id), TYPE, KIND (error kind, or RabbitMQ's reason), ATTEMPTS,\n"
            "DEAD AT, QUEUE (where it died) and REASON (cut to fit), then how many there are."
        ),
        epilog="example:\n  flowgate dlq list --limit 20",
    )
    listing.add_argument(
        "--limit", type=_positive, default=100, help="show at most this many (default 100)"
    )

    show = actions.add_parser(
        "show",
        parents=list(parents),
        help="headers and body of the selected dead letter(s)",
        formatter_class=raw,
        description=(
            "Print the headers and the pretty-printed body of each selected dead letter.\n"
            "Select by command id or AMQP message id (ID), or by position (--pos N, as\n"
            "`flowgate dlq list` prints it; a letter without a readable id has one too;\n"
            "--pos rather than `#N`, which a shell reads as a comment).\n"
            f"A body over {SHOW_LIMIT} bytes is cut to {SHOW_LIMIT} characters unless --full."
        ),
        epilog=(
            "examples:\n"
            "  flowgate dlq show 2f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10\n"
            "  flowgate dlq show --pos 3 --full"
        ),
    )
    _add_selectors(show)
    show.add_argument("--full", action="store_true", help="print bodies whole, however long")

    replay = actions.add_parser(
        "replay",
        parents=list(parents),
        help="re-publish dead letters as new commands, then drop them",
        formatter_class=raw,
        description=(
            f"Re-publish each selected dead letter to {COMMANDS_EXCHANGE} under the routing key\n"
            "it first came with, as a new command: a new id derived from the old one (the\n"
            "same on every replay, so replaying a letter twice triggers the vendor once) and\n"
            "the CloudEvents attribute `replayof` = the old id, carried onto every event of\n"
            f"the new run. A poll request goes back to {POLL_QUEUE} with its own command id.\n"
            "A letter is removed only once its re-publish is confirmed; the others stay, in\n"
            "order. Letters refused as `invalid` are skipped unless --force.\n"
            "Select with IDs (command or AMQP message ids), --pos, --kind (also narrows IDs\n"
            "and --pos), or --all."
        ),
        epilog=(
            "examples:\n"
            "  flowgate dlq replay 2f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10\n"
            "  flowgate dlq replay --pos 1 --pos 4\n"
            "  flowgate dlq replay --kind exhausted\n"
            "  flowgate dlq replay --all --force"
        ),
    )
    _add_selectors(replay)
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument(
        "--kind",
        metavar="KIND",
        help=f"only dead letters of this error kind: {', '.join(KINDS)}",
    )
    replay.add_argument(
        "--force", action="store_true", help="replay letters refused as `invalid` too"
    )

    purge = actions.add_parser(
        "purge",
        parents=list(parents),
        help="drop every dead letter (needs --yes)",
        formatter_class=raw,
        description="Drop every dead letter. Without --yes, only says how many would go.",
        epilog="example:\n  flowgate dlq purge --yes",
    )
    purge.add_argument("--yes", action="store_true", help="really drop them")


def _add_selectors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="command id, or AMQP message id (as `flowgate dlq show` prints it)",
    )
    parser.add_argument(
        "--pos",
        dest="positions",
        type=_positive,
        action="append",
        default=[],
        metavar="N",
        help="position in the queue, 1 = oldest, as `flowgate dlq list` prints it (repeatable)",
    )


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


@dataclass(frozen=True)
class Selection:
    """The letters `show` or `replay` acts on: by command or message id, by position (1 =
    oldest), of one error kind (narrowing ids and positions), or all. `force` replays letters
    refused as `invalid` too."""

    ids: tuple[str, ...] = ()
    positions: tuple[int, ...] = ()
    kind: str | None = None
    all: bool = False
    force: bool = False


def _selection(args: argparse.Namespace) -> Selection:
    """The selection on the command line; only `replay` has --kind, --all and --force, and
    `list` and `purge` select nothing."""
    action: str = args.dlq_command
    if action == "show":
        return Selection(tuple(args.ids), tuple(args.positions))
    if action == "replay":
        return Selection(tuple(args.ids), tuple(args.positions), args.kind, args.all, args.force)
    return Selection()


async def run(
    args: argparse.Namespace,
    settings: Settings,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run `flowgate dlq <action>`; the exit status (0 ok, 1 refused or failed, 2 bad usage)."""
    from workers.app import make_broker

    out = out or sys.stdout
    err = err or sys.stderr
    action: str = args.dlq_command
    # Checked before connecting too, so bad usage needs no broker.
    problem = _usage_problem(action, _selection(args))
    if problem:
        print(f"flowgate dlq {action}: {problem}", file=err)
        return 2
    broker = make_broker(settings)
    user = url_user(settings.amqp_url.get_secret_value())
    await broker.connect()
    try:
        return await run_on(broker, args, out=out, err=err, user=user)
    finally:
        await broker.close()


async def run_on(
    broker: Broker,
    args: argparse.Namespace,
    *,
    out: TextIO,
    err: TextIO,
    user: str | None = None,
) -> int:
    """`run`, on a connected broker; replays are sent as `user` when one is given."""
    action: str = args.dlq_command
    if action == "purge":
        length = await _length(broker, action, err)
        return 1 if length is None else await _purge(broker, length, args.yes, out, err)
    selection = _selection(args)

    async def act(letters: list[_Letter]) -> int:
        if action == "list":
            return await _list(broker, letters, args.limit, out)
        if action == "show":
            return await _show(broker, letters, selection, args.full, out, err)
        if action == "replay":
            return await _replay(broker, letters, selection, user, out, err)
        raise AssertionError(action)

    return await _on_letters(broker, action, selection, act, err)


async def _length(broker: Broker, action: str, err: TextIO) -> int | None:
    """How many letters the DLQ holds; None, said on `err`, when there is no DLQ."""
    try:
        return await broker.queue_length(DEAD_LETTER_QUEUE)
    except TopologyError:
        print(
            f"flowgate dlq {action}: queue {DEAD_LETTER_QUEUE} does not exist on this "
            "RabbitMQ vhost; run `flowgate declare` (or check --amqp-url)",
            file=err,
        )
        return None


async def _on_letters(
    broker: Broker,
    action: str,
    selection: Selection,
    act: Callable[[list[_Letter]], Awaitable[int]],
    err: TextIO,
) -> int:
    """Check the usage, take every letter and `act` on them; what is left held afterwards
    (a pass that stopped) is given back. The exit status."""
    problem = _usage_problem(action, selection)
    if problem:
        print(f"flowgate dlq {action}: {problem}", file=err)
        return 2
    length = await _length(broker, action, err)
    if length is None:
        return 1
    taken = await _take(broker, length)
    try:
        return await act(_read(taken))
    except PublishNotConfirmed as exc:
        print(
            f"flowgate dlq {action}: stopped: a letter could not be copied back ({exc}); "
            "the ones not yet dealt with were given back to the queue (requeued), so they "
            "may have changed place",
            file=err,
        )
        return 1
    finally:
        await _give_back_unsettled(taken)


async def letters(broker: Broker) -> list[tuple[int, DeadLetter]]:
    """Every dead letter with its position (1 = oldest), as `flowgate dlq list` sees them: one
    pass over the queue, each letter copied back, duplicates dropped (the operator page)."""
    length = await broker.queue_length(DEAD_LETTER_QUEUE)
    taken = await _take(broker, length)
    try:
        read = _read(taken)
        await _pass(broker, read)
    finally:
        await _give_back_unsettled(taken)
    return [(t.position, t.letter) for t in read if t.position is not None]


async def replay(broker: Broker, ids: Sequence[str], *, user: str | None) -> tuple[bool, str]:
    """`flowgate dlq replay ID...` on a connected broker, sent as `user`: whether every letter
    was replayed, and what the command would have printed (the operator page shows it)."""
    selection = Selection(ids=tuple(ids))
    out, err = io.StringIO(), io.StringIO()

    async def act(letters: list[_Letter]) -> int:
        return await _replay(broker, letters, selection, user, out, err)

    status = await _on_letters(broker, "replay", selection, act, err)
    return status == 0, (err.getvalue() + out.getvalue()).strip()


def _usage_problem(action: str, selection: Selection) -> str | None:
    picked = selection.ids or selection.positions
    if action == "show" and not picked:
        return "say which letter: a command id or AMQP message id, or --pos N"
    if action != "replay":
        return None
    if selection.kind is not None and selection.kind not in KINDS:
        return f"unknown kind {selection.kind!r}; kinds: {', '.join(KINDS)}"
    if selection.all and picked:
        return "give ids or --pos, or --all, not both"
    if not (selection.all or picked or selection.kind):
        return "say what to replay: ids, --pos N, --kind KIND, or --all (see `flowgate dlq list`)"
    return None


# ------------------------------------------------------------------------------ one pass


@dataclass
class _Letter:
    """A letter taken from the queue: its position among the letters of this pass, or None
    when it duplicates one seen before it (same letter id)."""

    delivery: Delivery
    letter: DeadLetter
    position: int | None

    @property
    def label(self) -> str:
        if self.letter.command_id:
            return self.letter.command_id
        if self.letter.message_id:
            return f"<no id> (message id {self.letter.message_id}, #{self.position})"
        return f"<no id> (#{self.position})"


@dataclass
class _Pass:
    replayed: list[tuple[_Letter, Replay]] = field(default_factory=list)
    duplicates: int = 0
    # The first replay that was not confirmed, and why; none is tried after it.
    stopped: tuple[_Letter, str] | None = None


async def _take(broker: Broker, count: int) -> list[Delivery]:
    """Up to `count` messages from the head of the DLQ, held unacked, in queue order.

    Bounded by the length seen at the start, so neither a copy put back nor a message that
    dies while we work (both join the tail) is taken in the same pass.
    """
    taken: list[Delivery] = []
    while len(taken) < count:
        delivery = await broker.get(DEAD_LETTER_QUEUE)
        if delivery is None:
            break
        taken.append(delivery)
    return taken


def _read(taken: Iterable[Delivery]) -> list[_Letter]:
    seen: set[str] = set()
    letters: list[_Letter] = []
    for delivery in taken:
        letter = DeadLetter.from_delivery(delivery)
        if letter.letter_id in seen:
            letters.append(_Letter(delivery, letter, None))
            continue
        seen.add(letter.letter_id)
        letters.append(_Letter(delivery, letter, len(seen)))
    return letters


async def _pass(
    broker: Broker, letters: Sequence[_Letter], replays: Mapping[int, Replay] | None = None
) -> _Pass:
    """Deal with every taken letter, in queue order: a duplicate is acked, a letter to replay
    (`replays`, by index) is re-published then acked, every other one is copied back then
    acked. A replay that is not confirmed stops the replaying: it and the rest are kept.

    A copy that is not confirmed raises `PublishNotConfirmed`; the caller gives back what is
    still held."""
    result = _Pass()
    replays = replays or {}
    for index, taken in enumerate(letters):
        if taken.position is None:
            # Its twin came first and is already copied or replayed, confirmed.
            await consumed(taken.delivery)
            result.duplicates += 1
            continue
        replay = replays.get(index)
        if replay is not None and result.stopped is None:
            try:
                await broker.publish(replay.exchange, replay.routing_key, replay.message)
            except PublishNotConfirmed as exc:
                result.stopped = (taken, str(exc))
            else:
                await consumed(taken.delivery)
                result.replayed.append((taken, replay))
                continue
        await broker.publish("", DEAD_LETTER_QUEUE, taken.letter.copy())
        await consumed(taken.delivery)
    return result


async def _give_back_unsettled(taken: Iterable[Delivery]) -> None:
    """After a pass that did not finish: requeue, in order, what is still held. Only here is
    a letter requeued: better a delivery counted and a place changed than a letter held."""
    for delivery in taken:
        if delivery.settled or delivery.lost:
            continue
        # A channel that closes meanwhile hands the rest back by itself.
        with contextlib.suppress(Exception):
            await give_back(delivery)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _duplicates_line(count: int) -> str | None:
    if not count:
        return None
    return (
        f"dropped {_plural(count, 'duplicate')} (a letter twice in the queue, left by an "
        "interrupted pass)"
    )


# ---------------------------------------------------------------------------------- list

_COLUMNS = ("POS", "ID", "TYPE", "KIND", "ATTEMPTS", "DEAD AT", "QUEUE", "REASON")


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(taken: _Letter) -> list[str]:
    letter = taken.letter
    return [
        str(taken.position),
        letter.command_id or "<no id>",
        letter.command_type or "-",
        letter.error_kind,
        "-" if letter.attempts is None else str(letter.attempts),
        _when(letter.dead_at),
        letter.source_queue or "-",
        " ".join(letter.reason.split()) or "-",
    ]


def _table(rows: list[list[str]], width: int) -> list[str]:
    """Aligned columns under a header; the last one (the reason) cut to fit `width`."""
    return aligned(_COLUMNS, rows, width, min_last=_MIN_REASON_WIDTH)


async def _list(broker: Broker, letters: list[_Letter], limit: int, out: TextIO) -> int:
    done = await _pass(broker, letters)
    kept = [t for t in letters if t.position is not None]
    shown = kept[:limit]
    width = shutil.get_terminal_size((120, 24)).columns
    for row in _table([_row(t) for t in shown], width) if shown else []:
        print(row, file=out)
    if len(kept) > len(shown):
        print(f"{len(kept)} dead letters (first {len(shown)} shown; see --limit)", file=out)
    else:
        print(_plural(len(kept), "dead letter"), file=out)
    if line := _duplicates_line(done.duplicates):
        print(line, file=out)
    return 0


# ---------------------------------------------------------------------------------- show


def _matches(taken: _Letter, selection: Selection) -> bool:
    letter = taken.letter
    if taken.position in selection.positions:
        return True
    return any(i in (letter.command_id, letter.message_id) for i in selection.ids)


def _unmatched(letters: list[_Letter], selection: Selection, action: str) -> list[str]:
    """One line for each id or position that selected nothing."""
    kept = [t for t in letters if t.position is not None]
    found = {i for t in kept for i in (t.letter.command_id, t.letter.message_id) if i}
    problems = [
        f"flowgate dlq {action}: no dead letter with command id or message id {i!r}"
        for i in dict.fromkeys(selection.ids)
        if i not in found
    ]
    problems.extend(
        f"flowgate dlq {action}: no dead letter at position {p}; there "
        f"{'is' if len(kept) == 1 else 'are'} {len(kept)}"
        for p in dict.fromkeys(selection.positions)
        if p > len(kept)
    )
    return problems


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False, sort_keys=False)
    except (ValueError, RecursionError):
        return body.decode("utf-8", errors="replace")


def _body_text(body: bytes, full: bool) -> tuple[str, str | None]:
    """The body as printed, and the note saying what was cut (None when nothing was)."""
    text = _pretty(body)
    if full or len(body) <= SHOW_LIMIT or len(text) <= SHOW_LIMIT:
        return text, None
    cut = len(text) - SHOW_LIMIT
    return text[:SHOW_LIMIT], (
        f"[body cut: {cut} of its {len(text)} characters ({len(body)} bytes) not shown; "
        "--full shows all]"
    )


async def _show(
    broker: Broker,
    letters: list[_Letter],
    selection: Selection,
    full: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    done = await _pass(broker, letters)
    found = [t for t in letters if t.position is not None and _matches(t, selection)]
    for n, taken in enumerate(found, 1):
        letter = taken.letter
        if len(found) > 1:
            print(f"--- dead letter {n}/{len(found)}", file=out)
        print(f"position: {taken.position}", file=out)
        print(f"command id: {letter.command_id or '<no id>'}", file=out)
        print(f"routing key: {letter.routing_key or '<unknown>'}", file=out)
        print(f"content type: {letter.content_type}", file=out)
        print(f"message id: {letter.message_id}", file=out)
        print("headers:", file=out)
        for key, value in sorted(letter.headers.items()):
            print(f"  {key}: {json.dumps(value, default=str, ensure_ascii=False)}", file=out)
        print("body:", file=out)
        text, note = _body_text(letter.body, full)
        print(text, file=out)
        if note:
            print(note, file=out)
    if line := _duplicates_line(done.duplicates):
        print(line, file=err)
    problems = _unmatched(letters, selection, "show")
    for problem in problems:
        print(f"{problem}; `flowgate dlq list` shows them", file=err)
    return 1 if problems or not found else 0


# -------------------------------------------------------------------------------- replay


def _selected(taken: _Letter, selection: Selection) -> bool:
    if taken.position is None:
        return False
    if selection.kind and taken.letter.error_kind != selection.kind:
        return False
    if selection.all or not (selection.ids or selection.positions):
        return True  # --all, or --kind alone
    return _matches(taken, selection)


async def _replay(
    broker: Broker,
    letters: list[_Letter],
    selection: Selection,
    user: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Replay the selected letters, each re-published as `user` when one is given."""
    chosen = [(i, t) for i, t in enumerate(letters) if _selected(t, selection)]
    replays: dict[int, Replay] = {}
    skipped = 0
    for index, taken in chosen:
        letter = taken.letter
        try:
            replay = letter.replay()
        except NotReplayable as exc:
            print(f"skipped {taken.label}: {exc}; left in the DLQ", file=err)
            skipped += 1
            continue
        if letter.error_kind == "invalid" and not selection.force:
            print(
                f"skipped {taken.label}: it was refused as invalid, and as it is it would be "
                "refused again; left in the DLQ (--force replays it anyway)",
                file=err,
            )
            skipped += 1
            continue
        if user is not None:
            # Sent by the operator, as RabbitMQ requires of user_id: list the operator in a
            # connection's allowed_publishers to replay its commands.
            replay = dataclasses.replace(
                replay, message=dataclasses.replace(replay.message, user_id=user)
            )
        replays[index] = replay
    done = await _pass(broker, letters, replays)
    total = len(replays)
    for n, (taken, replay) in enumerate(done.replayed, 1):
        letter = taken.letter
        what = (
            f"as {replay.command_id}"
            if replay.command_id != letter.command_id
            else "(poll request, same command id)"
        )
        print(
            f"replayed {taken.label} ({letter.command_type or 'unknown type'}) {what} to "
            f"{replay.exchange} {replay.routing_key}",
            file=out,
        )
        if total > _PROGRESS_EVERY and (n % _PROGRESS_EVERY == 0 or n == total):
            print(f"replayed {n}/{total}", file=out, flush=True)
    if done.stopped is not None:
        taken, why = done.stopped
        left = total - len(done.replayed)
        print(
            f"flowgate dlq replay: stopped: {taken.label} was not confirmed ({why}); it and "
            f"the {left - 1} after it stay in the DLQ",
            file=err,
        )
    problems = _unmatched(letters, selection, "replay")
    for problem in problems:
        print(problem, file=err)
    if line := _duplicates_line(done.duplicates):
        print(line, file=out)
    kept = sum(1 for t in letters if t.position is not None) - len(done.replayed)
    print(
        f"replayed {len(done.replayed)} of {len(chosen)} selected; {kept} left in the DLQ",
        file=out,
    )
    failed = skipped or done.stopped is not None or problems
    return 1 if failed else 0


# --------------------------------------------------------------------------------- purge


async def _purge(broker: Broker, length: int, yes: bool, out: TextIO, err: TextIO) -> int:
    if not yes:
        print(
            f"flowgate dlq purge: refusing; this would drop {_plural(length, 'dead letter')} "
            "for good. Re-run with --yes to drop them (or `flowgate dlq replay --all` to "
            "retry them)",
            file=err,
        )
        return 1
    dropped = await broker.purge(DEAD_LETTER_QUEUE)
    print(f"purged {_plural(dropped, 'dead letter')}", file=out)
    return 0
