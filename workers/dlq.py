"""`flowgate dlq`: look into, replay and purge the dead-letter queue `flowgate.dead-letters`.

Dead letters come from two places. flowgate gives up on a message (`Publisher.dead_letter`):
a byte-for-byte copy with `x-flowgate-*` headers saying why, how often it was tried and which
queue it came from. RabbitMQ dead-letters a message itself (a quorum queue's
`x-delivery-limit` exceeded, or a reject): `x-death` / `x-first-death-*` headers instead.
`DeadLetter.from_delivery` reads either into one shape.

Nothing here loses or reorders a dead letter it does not mean to touch: every message in the
queue (as many as it held at the start) is taken with basic.get and held unacked, then all are
given back in the order they were taken. A quorum queue (RabbitMQ 3.10) puts a requeued message
at its tail, so only a full turn leaves the order as it was; one that dies while we work lands
ahead of the ones given back. A replayed one is acked only once its re-publish is confirmed.
If the process dies half-way, RabbitMQ gives every unacked message back by itself.

Replaying keeps the command id. A `failed` outcome recorded in the idempotency store would be
repeated to it, so replay first asks the store to forget it (`forget_outcome`), and skips (and
keeps) a dead letter whose command is recorded as `succeeded` or `cancelled`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from workers.broker.base import Broker, Delivery, PublishNotConfirmed, TopologyError
from workers.dead_letters import DeadLetter
from workers.settings import Settings
from workers.settlement import consumed, give_back
from workers.topology import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, POLL_QUEUE

if TYPE_CHECKING:
    from workers.idempotency import IdempotencyStore

__all__ = ["DeadLetter", "add_parser", "run"]

_PROGRESS_EVERY = 10
_SETTLE_SECONDS = 5.0


# ---------------------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """Add `dlq` and its sub-commands to the `flowgate` parser's subparsers."""
    dlq = subparsers.add_parser(
        "dlq",
        help="list, show, replay or purge dead letters",
        description=(
            f"Inspect and act on the dead-letter queue {DEAD_LETTER_QUEUE}. Listing and showing "
            "never remove or reorder anything: messages are taken and given back."
        ),
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list",
        help="one line per dead letter: id, type, kind, attempts, when, queue, reason",
        description="One line per dead letter, oldest first, then how many there are.",
    )
    listing.add_argument(
        "--limit", type=_positive, default=100, help="show at most this many (default 100)"
    )

    show = actions.add_parser(
        "show",
        help="headers and body of the dead letter(s) with a command id",
        description="Print the headers and the pretty-printed body of each dead letter with ID.",
    )
    show.add_argument("id", metavar="ID", help="command id (as `flowgate dlq list` prints it)")

    replay = actions.add_parser(
        "replay",
        help="re-publish dead letters as they were first sent, then drop them",
        description=(
            "Re-publish each selected dead letter's original body, content type and ce-*/trace "
            f"headers to {COMMANDS_EXCHANGE} (routing key = its command type; poll requests go "
            f"back to {POLL_QUEUE}), keeping its command id. A dead letter is removed only once "
            "its re-publish is confirmed; the others stay, in order. Select with IDs, --kind, "
            "or --all."
        ),
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="command ids to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument(
        "--kind",
        help="only dead letters of this error kind (e.g. rejected, or RabbitMQ's delivery_limit)",
    )

    purge = actions.add_parser(
        "purge",
        help="drop every dead letter (needs --yes)",
        description="Drop every dead letter. Without --yes, only says how many would go.",
    )
    purge.add_argument("--yes", action="store_true", help="really drop them")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


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
    if action == "replay":
        problem = _replay_usage_problem(args)
        if problem:
            print(f"flowgate dlq replay: {problem}", file=err)
            return 2
    broker = make_broker(settings)
    await broker.connect()
    try:
        try:
            length = await broker.queue_length(DEAD_LETTER_QUEUE)
        except TopologyError:
            print(
                f"flowgate dlq {action}: queue {DEAD_LETTER_QUEUE} does not exist on this "
                "RabbitMQ vhost; run `flowgate declare` (or check --amqp-url)",
                file=err,
            )
            return 1
        if action == "list":
            return await _list(broker, length, args.limit, out)
        if action == "show":
            return await _show(broker, length, args.id, out, err)
        if action == "replay":
            return await _replay(broker, length, args, settings, out, err)
        if action == "purge":
            return await _purge(broker, length, args.yes, out, err)
        raise AssertionError(action)
    finally:
        await broker.close()


def _replay_usage_problem(args: argparse.Namespace) -> str | None:
    if args.all and args.ids:
        return "give command ids or --all, not both"
    if not (args.all or args.ids or args.kind):
        return "say what to replay: command ids, --kind KIND, or --all (see `flowgate dlq list`)"
    return None


async def _take(broker: Broker, count: int) -> list[Delivery]:
    """Up to `count` messages from the head of the DLQ, held unacked, in queue order.

    Bounded by the length seen at the start, so a message that dies again while we work (it
    joins the tail) is never taken twice.
    """
    taken: list[Delivery] = []
    while len(taken) < count:
        delivery = await broker.get(DEAD_LETTER_QUEUE)
        if delivery is None:
            break
        taken.append(delivery)
    return taken


async def _give_back(broker: Broker, deliveries: Iterable[Delivery]) -> None:
    """Requeue, in order, and return once RabbitMQ counts them as ready again.

    basic.nack has no reply and a quorum queue applies returns a moment later, so without the
    wait a `queue_length` (or a second `flowgate dlq list`) right after could miss some.
    """
    returned = list(deliveries)
    if not returned:
        return
    ready = await broker.queue_length(DEAD_LETTER_QUEUE)
    for delivery in returned:
        await give_back(delivery)
    expected = ready + len(returned)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_SETTLE_SECONDS):
            # No event to wait on: RabbitMQ only tells by being asked.
            while await broker.queue_length(DEAD_LETTER_QUEUE) < expected:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


async def _list(broker: Broker, length: int, limit: int, out: TextIO) -> int:
    # Everything is taken, not just `limit`: RabbitMQ 3.10 quorum queues requeue at the tail,
    # so giving back only the head would rotate the queue. A full turn leaves it as it was.
    taken = await _take(broker, length)
    try:
        for delivery in taken[:limit]:
            print(DeadLetter.from_delivery(delivery).summary(), file=out)
    finally:
        await _give_back(broker, taken)
    shown = min(len(taken), limit)
    if len(taken) > shown:
        print(f"{len(taken)} dead letters (first {shown} shown; see --limit)", file=out)
    else:
        print(f"{len(taken)} dead letter{'' if len(taken) == 1 else 's'}", file=out)
    return 0


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False, sort_keys=False)
    except (ValueError, RecursionError):
        return body.decode("utf-8", errors="replace")


async def _show(broker: Broker, length: int, command_id: str, out: TextIO, err: TextIO) -> int:
    taken = await _take(broker, length)
    try:
        found = [d for d in map(DeadLetter.from_delivery, taken) if d.command_id == command_id]
        for n, letter in enumerate(found, 1):
            if len(found) > 1:
                print(f"--- dead letter {n}/{len(found)}", file=out)
            print(f"routing key: {letter.routing_key}", file=out)
            print(f"content type: {letter.content_type}", file=out)
            print(f"message id: {letter.message_id}", file=out)
            print("headers:", file=out)
            for key, value in sorted(letter.headers.items()):
                print(f"  {key}: {json.dumps(value, default=str, ensure_ascii=False)}", file=out)
            print("body:", file=out)
            print(_pretty(letter.body), file=out)
    finally:
        await _give_back(broker, taken)
    if not found:
        print(
            f"flowgate dlq show: no dead letter with command id {command_id!r} among {length}; "
            "`flowgate dlq list` shows the ids",
            file=err,
        )
        return 1
    return 0


def _selected(letter: DeadLetter, args: argparse.Namespace) -> bool:
    if args.kind and letter.error_kind != args.kind:
        return False
    return not args.ids or letter.command_id in args.ids


def _open_store(settings: Settings) -> IdempotencyStore | None:
    """The shared idempotency store; None for `memory` (it lives in each worker process)."""
    if settings.idempotency.store == "memory":
        return None
    from workers.app import make_store

    return make_store(settings)


async def _clear_for_replay(store: IdempotencyStore | None, letter: DeadLetter) -> str | None:
    """Make sure a replay is not answered from the idempotency store; why not, if it cannot.

    A recorded `failed` outcome would only be repeated to a replay with the same id, so it is
    dropped first (the store's `forget_outcome`); a `succeeded` or `cancelled` one stands.
    """
    if store is None or letter.command_id is None:
        return None
    recorded = await store.outcome(letter.command_id)
    if recorded is None:
        return None
    kind = recorded.get("kind")
    if kind != "failed":
        return f"it already ended {kind} (recorded in the idempotency store)"
    await store.forget_outcome(letter.command_id)
    return None


async def _replay(
    broker: Broker,
    length: int,
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    err: TextIO,
) -> int:
    store = _open_store(settings)
    try:
        return await _replay_with(broker, store, length, args, out, err)
    finally:
        if store is not None:
            await store.aclose()


async def _replay_with(
    broker: Broker,
    store: IdempotencyStore | None,
    length: int,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    taken = await _take(broker, length)
    acked: set[int] = set()  # indexes into `taken`; everything else is given back, in order
    chosen: list[tuple[int, DeadLetter, tuple[str, str]]] = []
    seen_ids: set[str] = set()
    failed = done = 0
    try:
        for index, delivery in enumerate(taken):
            letter = DeadLetter.from_delivery(delivery)
            if not _selected(letter, args):
                continue
            if letter.command_id:
                seen_ids.add(letter.command_id)
            try:
                target = letter.replay_target()
            except ValueError as exc:
                print(f"skipped {letter.command_id or '<no id>'}: {exc}; left in the DLQ", file=err)
                failed += 1
                continue
            chosen.append((index, letter, target))
        total = len(chosen)
        for n, (index, letter, (exchange, routing_key)) in enumerate(chosen, 1):
            why_not = await _clear_for_replay(store, letter)
            if why_not is not None:
                print(f"skipped {letter.command_id}: {why_not}; left in the DLQ", file=err)
                failed += 1
                continue
            try:
                await broker.publish(exchange, routing_key, letter.replay_message())
            except PublishNotConfirmed as exc:
                print(
                    f"flowgate dlq replay: stopped: {letter.command_id} was not confirmed "
                    f"({exc}); it and the {total - n} after it stay in the DLQ",
                    file=err,
                )
                failed += total - n + 1
                break
            await consumed(taken[index])
            acked.add(index)
            done += 1
            print(
                f"replayed {letter.command_id} ({letter.command_type}) to "
                f"{exchange or '(default exchange)'} {routing_key}",
                file=out,
            )
            if total > _PROGRESS_EVERY and (done % _PROGRESS_EVERY == 0 or done == total):
                print(f"replayed {done}/{total}", file=out, flush=True)
    finally:
        await _give_back(broker, (d for i, d in enumerate(taken) if i not in acked))
    missing = [i for i in dict.fromkeys(args.ids) if i not in seen_ids]
    for command_id in missing:
        print(f"flowgate dlq replay: no dead letter with command id {command_id!r}", file=err)
    print(f"replayed {done} of {total} selected; {length - done} left in the DLQ", file=out)
    return 1 if failed or missing else 0


async def _purge(broker: Broker, length: int, yes: bool, out: TextIO, err: TextIO) -> int:
    if not yes:
        print(
            f"flowgate dlq purge: refusing; this would drop {length} dead "
            f"letter{'' if length == 1 else 's'} for good. Re-run with --yes to drop them "
            "(or `flowgate dlq replay --all` to retry them)",
            file=err,
        )
        return 1
    dropped = await broker.purge(DEAD_LETTER_QUEUE)
    print(f"purged {dropped} dead letter{'' if dropped == 1 else 's'}", file=out)
    return 0
