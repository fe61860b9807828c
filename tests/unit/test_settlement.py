"""Every command id gets exactly one terminal event, whatever raises: the settler's promises,
on the in-memory broker with the simulators.

Each test here reproduces a defect of the shape before `workers.settlement`: the run went
round its queue until the quorum delivery limit dead-lettered it, with no event at all.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from contracts import TERMINAL_KINDS, EventKind, encode_command, event_id
from tests.conftest import Events, fast_settings
from tests.quiet import QuietBroker
from workers.app import Flowgate
from workers.broker.base import Binding, OutgoingMessage, PublishNotConfirmed, Queue, Topology
from workers.commands import COMMANDS
from workers.dead_letters import DeadLetter
from workers.errors import Throttled, VendorUnavailable
from workers.idempotency import Claim, MemoryStore, RunState, StoreUnavailable
from workers.settings import Settings
from workers.settlement import consumed
from workers.simulators import RunningSimulators, SimulatorConfig, Simulators, serve
from workers.topology import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    POLL_QUEUE,
    build_topology,
)
from workers.vendors.robusta import StartProcessHandler
from workers.vendors.tmf622 import AddPaylinkHandler

WATCH = "test.settlement.events"
SECRET = "s3cr3t-in-an-exception"


@dataclass
class Harness:
    broker: QuietBroker
    store: MemoryStore
    sims: RunningSimulators
    events: Events
    apps: list[Flowgate]

    def settings(self, **connections: dict[str, Any]) -> Settings:
        """Test settings; `robusta={"old": {}}` adds a robusta connection named `old`."""
        return fast_settings(
            "amqp://unused/",
            self.sims.base_url,
            connections={vendor: dict(named) for vendor, named in connections.items()},
        )

    async def start(
        self, settings: Settings, *, worker: bool = True, poller: bool = True
    ) -> Flowgate:
        app = Flowgate(settings, self.broker, store=self.store)
        self.apps.append(app)
        if worker:
            await app.start_worker(COMMANDS)
        if poller:
            await app.start_poller()
        return app

    async def publish(
        self,
        command_type: str,
        *,
        body: bytes | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        **kwargs: Any,
    ) -> str:
        command_id = str(uuid.uuid4())
        if body is None:
            body, content_type = encode_command(
                command_type, COMMANDS[command_type].example, command_id=command_id, **kwargs
            )
        message = OutgoingMessage(body=body, content_type=content_type, message_id=message_id)
        await self.broker.publish(COMMANDS_EXCHANGE, command_type, message)
        return command_id

    async def dead_letters(self) -> list[DeadLetter]:
        letters = []
        while (delivery := await self.broker.get(DEAD_LETTER_QUEUE)) is not None:
            letters.append(DeadLetter.from_delivery(delivery))
            await consumed(delivery)
        return letters

    def terminal(self, command_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events.by_command.get(command_id, [])
            if EventKind(e["type"].rsplit(".", 1)[-1]) in TERMINAL_KINDS
        ]


@asynccontextmanager
async def harness(run_seconds: float = 0.3) -> AsyncIterator[Harness]:
    config = SimulatorConfig()
    for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
        vendor.run_seconds = run_seconds
    async with serve(Simulators(config)) as sims:
        broker = QuietBroker()
        h = Harness(broker, MemoryStore(), sims, Events(), [])
        await broker.declare(build_topology(COMMANDS))
        await _watch(h)
        try:
            yield h
        finally:
            for app in h.apps:
                await app.stop()


async def _watch(h: Harness) -> None:
    await h.broker.declare(
        Topology(queues=(Queue(WATCH),), bindings=(Binding(EVENTS_EXCHANGE, WATCH, "#"),))
    )
    await h.broker.consume(WATCH, h.events.on_delivery, prefetch=256)


async def _accepted(h: Harness, command_id: str) -> dict[str, Any]:
    async with asyncio.timeout(10), h.events.changed:
        await h.events.changed.wait_for(lambda: "accepted" in h.events.kinds(command_id))
    return h.events.by_command[command_id][0]


async def _only_terminal(h: Harness, command_id: str) -> dict[str, Any]:
    """The terminal event; after the queues are quiet, still the only one."""
    event = await h.events.terminal(command_id, timeout=15)
    await _quiet(h)
    assert len(h.terminal(command_id)) == 1, h.events.kinds(command_id)
    return event


async def _quiet(h: Harness) -> None:
    """Wait until nothing more can happen (no handler running, nothing left to move on)."""
    await h.broker.until_at_rest()


async def test_a_run_whose_connection_was_removed_ends_failed_internal_once() -> None:
    """A connection renamed or removed while its runs are followed: the poller cannot follow
    them, and says so once, with the vendor reference, instead of spinning the poll request
    through its delivery limit."""
    async with harness(run_seconds=30) as h:
        await h.start(h.settings(robusta={"old": {}}), poller=False)
        command_id = await h.publish("start-process", connection="old")
        accepted = await _accepted(h, command_id)
        # The poller runs with settings where `old` is gone.
        await h.start(h.settings(), worker=False)
        event = await _only_terminal(h, command_id)
        assert event["type"] == "flowgate.start-process.failed"
        error = event["data"]["error"]
        assert error["kind"] == "internal"
        assert "no robusta connection named 'old'" in error["message"]
        assert "may still be going" in error["message"]
        assert event["data"]["vendor_ref"] == accepted["data"]["vendor_ref"]
        letters = await h.dead_letters()
        assert [(d.command_id, d.error_kind) for d in letters] == [(command_id, "internal")]
        assert "no robusta connection named 'old'" in letters[0].reason


async def test_a_bug_while_a_run_is_followed_ends_failed_internal_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: StartProcessHandler, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"a bug that quotes {SECRET}")

    async with harness() as h:
        await h.start(h.settings())
        monkeypatch.setattr(StartProcessHandler, "status", broken)
        command_id = await h.publish("start-process")
        event = await _only_terminal(h, command_id)
        error = event["data"]["error"]
        assert (event["type"], error["kind"]) == ("flowgate.start-process.failed", "internal")
        assert "RuntimeError" in error["message"] and "following the run" in error["message"]
        assert event["data"]["vendor_ref"]["robusta_spid"], "the vendor run exists"
        letters = await h.dead_letters()
        assert [(d.command_id, d.error_kind) for d in letters] == [(command_id, "internal")]
        for text in (json.dumps(event), letters[0].reason):
            assert SECRET not in text


async def test_a_bug_in_a_trigger_ends_failed_internal_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: AddPaylinkHandler, *args: Any, **kwargs: Any) -> Any:
        raise KeyError(SECRET)

    async with harness() as h:
        await h.start(h.settings())
        monkeypatch.setattr(AddPaylinkHandler, "trigger", broken)
        command_id = await h.publish("add-paylink")
        event = await _only_terminal(h, command_id)
        error = event["data"]["error"]
        assert error["kind"] == "internal" and "calling the vendor" in error["message"]
        assert SECRET not in json.dumps(event)
        # The outcome is recorded: the same id published again gets the same event again.
        again = await h.store.outcome(command_id)
        assert again is not None and again["kind"] == "failed"
        letters = await h.dead_letters()
        assert [(d.command_id, d.error_kind) for d in letters] == [(command_id, "internal")]


async def test_an_unreadable_poll_request_still_answers_its_command() -> None:
    async with harness() as h:
        await h.start(h.settings(), worker=False)
        body = json.dumps(
            {"command_id": "c-1", "command_type": "start-process", "connection": "default"}
        ).encode()
        from workers.publisher import Publisher
        from workers.topology import POLL_QUEUE

        await Publisher(h.broker).direct(POLL_QUEUE, body, content_type="application/json")
        event = await _only_terminal(h, "c-1")
        assert event["data"]["error"]["kind"] == "internal"
        assert "unreadable poll request" in event["data"]["error"]["message"]
        letters = await h.dead_letters()
        assert [(d.command_id, d.error_kind) for d in letters] == [("c-1", "internal")]


@pytest.mark.parametrize(
    ("body", "headers_id"),
    [
        (b"x" * 2048, False),  # over input.max_bytes: never parsed
        (b"\xff\xfe not json at all", False),
        (b"x" * 2048, True),
    ],
)
async def test_an_unreadable_command_is_answered_by_its_amqp_id(
    body: bytes, headers_id: bool
) -> None:
    async with harness() as h:
        await _watch(h)
        settings = h.settings()
        settings.input.max_bytes = 1024
        await h.start(settings, poller=False)
        answer_to = f"m-{uuid.uuid4().hex[:8]}"
        message = OutgoingMessage(
            body=body,
            content_type="application/cloudevents+json",
            message_id=None if headers_id else answer_to,
            headers={"ce-id": answer_to} if headers_id else {},
        )
        await h.broker.publish(COMMANDS_EXCHANGE, "trigger-batch", message)
        event = await _only_terminal(h, answer_to)
        assert event["type"] == "flowgate.trigger-batch.failed"
        assert event["data"]["error"]["kind"] == "invalid"
        letters = await h.dead_letters()
        assert [d.error_kind for d in letters] == ["invalid"]


async def test_replayof_is_carried_onto_every_event() -> None:
    async with harness() as h:
        await h.start(h.settings())
        command_id = await h.publish("trigger-batch", replayof="the-old-id")
        await _only_terminal(h, command_id)
        events = h.events.by_command[command_id]
        assert events[0]["type"].endswith(".accepted")
        assert {e.get("replayof") for e in events} == {"the-old-id"}


async def test_a_command_without_connection_uses_the_vendors_default() -> None:
    async with harness() as h:
        await _watch(h)
        settings = h.settings(pbsm={"prod": {}})
        settings.default_connections["pbsm"] = "prod"
        await h.start(settings)
        command_id = await h.publish("trigger-batch")
        event = await _only_terminal(h, command_id)
        assert event["type"] == "flowgate.trigger-batch.succeeded"
        assert event["data"]["connection"] == "prod"
        assert event["source"] == "urn:flowgate:prod"


async def test_a_throttled_command_waits_in_the_queues_without_spending_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three waits for the shared rate limit, then one 503, with max_attempts 2: the waits
    spent no attempt, so the 503 is retried and the command succeeds, with no dead letter."""
    real = AddPaylinkHandler.trigger
    calls: list[str] = []

    async def throttled_then_real(self: AddPaylinkHandler, *args: Any, **kwargs: Any) -> Any:
        calls.append("call")
        if len(calls) <= 3:
            raise Throttled("no room in the account's limit", wait=0.05)
        if len(calls) == 4:
            raise VendorUnavailable("503", http_status=503)
        return await real(self, *args, **kwargs)

    async with harness() as h:
        settings = h.settings(
            tmf622={"default": {"retry": {"max_attempts": 2, "first_delay": 0.05}}}
        )
        await h.start(settings, poller=False)
        monkeypatch.setattr(AddPaylinkHandler, "trigger", throttled_then_real)
        command_id = await h.publish("add-paylink")
        event = await _only_terminal(h, command_id)
        assert event["type"] == "flowgate.add-paylink.succeeded"
        assert len(calls) == 5
        assert await h.dead_letters() == []


async def test_every_event_of_a_command_also_goes_to_its_reply_to_queue() -> None:
    """The AMQP reply_to of a command names a queue that gets each of its events (default
    exchange, same body), accepted to terminal, refusals too; flowgate.events still has them."""
    async with harness() as h:
        inbox = Events()
        await h.broker.declare(Topology(queues=(Queue("client.inbox", durable=False),)))
        await h.broker.consume("client.inbox", inbox.on_delivery, prefetch=64)
        await h.start(h.settings())
        followed = str(uuid.uuid4())
        body, content_type = encode_command(
            "trigger-batch", COMMANDS["trigger-batch"].example, command_id=followed
        )
        message = OutgoingMessage(body=body, content_type=content_type, reply_to="client.inbox")
        await h.broker.publish(COMMANDS_EXCHANGE, "trigger-batch", message)
        refused = str(uuid.uuid4())
        body, content_type = encode_command("trigger-batch", {}, command_id=refused)
        message = OutgoingMessage(body=body, content_type=content_type, reply_to="client.inbox")
        await h.broker.publish(COMMANDS_EXCHANGE, "trigger-batch", message)
        await _only_terminal(h, followed)
        await _only_terminal(h, refused)
        for command_id in (followed, refused):
            sent = [e["id"] for e in h.events.by_command[command_id]]
            assert [e["id"] for e in inbox.by_command[command_id]] == sent
        assert inbox.kinds(followed)[0] == "accepted" and inbox.kinds(refused) == ["failed"]


# --- the trigger recorded together with `accepted` and the first poll request ------------
#
# The worker records a trigger concurrently with its two publishes, so either side can land
# without the other. The stores below put the races in one order each (asyncio events, not
# clocks); a copy that could not publish or record is parked and comes round a second later.


def _refuse_once(
    monkeypatch: pytest.MonkeyPatch, broker: QuietBroker, which: Callable[[str, str], bool]
) -> list[str]:
    """The first publish `which(exchange, routing_key)` picks is not confirmed."""
    real = broker.publish
    refused: list[str] = []

    async def publish(exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        if not refused and which(exchange, routing_key):
            refused.append(routing_key)
            raise PublishNotConfirmed(f"{exchange} nacked {routing_key}")
        await real(exchange, routing_key, message)

    monkeypatch.setattr(broker, "publish", publish)
    return refused


def _of_kind(h: Harness, command_id: str, kind: EventKind) -> list[dict[str, Any]]:
    return [e for e in h.events.by_command.get(command_id, []) if e["type"].endswith(kind.value)]


async def test_a_command_redelivered_after_its_accepted_repeats_it_under_the_same_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trigger recorded and `accepted` out, the first poll request refused: the command comes
    round again and resumes from the record, `accepted` again. The contract promises one id
    per event (`event_id`), so consumers drop the repeat; the vendor was called once."""
    async with harness() as h:
        refused = _refuse_once(monkeypatch, h.broker, lambda _, key: key.endswith(POLL_QUEUE))
        await h.start(h.settings())
        command_id = await h.publish("trigger-batch")
        terminal = await _only_terminal(h, command_id)
        assert refused, "the first poll request was refused"
        accepted = _of_kind(h, command_id, EventKind.ACCEPTED)
        assert len(accepted) == 2, h.events.kinds(command_id)
        assert {e["id"] for e in accepted} == {event_id(command_id, EventKind.ACCEPTED)}
        assert accepted[0]["data"]["vendor_ref"] == accepted[1]["data"]["vendor_ref"]
        assert terminal["type"] == "flowgate.trigger-batch.succeeded"
        assert len(h.sims.sims.ledger.entries("pbsm.trigger")) == 1


class _SecondChain(MemoryStore):
    """The first poll chain records its outcome only once the redelivered command resumed
    (a second chain is on its way), and the second chain looks only after that."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed, self.recorded = asyncio.Event(), asyncio.Event()

    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim:
        claim = await super().claim(command_id, owner=owner, lease=lease, force=force)
        if claim.state == "triggered":
            self.resumed.set()
        return claim

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        await self.resumed.wait()
        standing = await super().record_outcome(command_id, outcome)
        self.recorded.set()
        return standing

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        await self.recorded.wait()
        return await super().outcome(command_id)


async def test_a_second_poll_chain_of_a_recorded_outcome_repeats_it_under_the_same_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trigger recorded and the first poll request out, `accepted` refused: the redelivered
    command resumes and starts a second chain for the run, which finds the first chain's
    outcome recorded and repeats that event (same id, same data) instead of a second one."""
    async with harness() as h:
        h.store = _SecondChain()
        refused = _refuse_once(
            monkeypatch, h.broker, lambda ex, key: ex == EVENTS_EXCHANGE and "accepted" in key
        )
        await h.start(h.settings())
        command_id = await h.publish("trigger-batch")
        await h.events.terminal(command_id, timeout=15)
        await _quiet(h)
        assert refused, "the first accepted was refused"
        terminals = h.terminal(command_id)
        assert len(terminals) == 2, "each chain answered"
        assert {e["id"] for e in terminals} == {event_id(command_id, EventKind.SUCCEEDED)}
        assert terminals[0]["data"] == terminals[1]["data"]
        assert [e["id"] for e in _of_kind(h, command_id, EventKind.ACCEPTED)] == [
            event_id(command_id, EventKind.ACCEPTED)
        ]
        assert len(h.sims.sims.ledger.entries("pbsm.trigger")) == 1
        assert await h.store.runs() == []


class _LostTriggerRecord(MemoryStore):
    """The first delivery's trigger record fails, every try of it, as an unreachable Redis
    does, after the publishes went out; claims lapse at once, so the redelivery finds the
    claim `unknown`; `first` says whose outcome is recorded first: the poll chain's, or the
    redelivery's `unknown_outcome`. With `down_for` tries, only that many fail (a failover)."""

    def __init__(self, first: str, down_for: int | None = None) -> None:
        super().__init__()
        self.first = first
        self.down_for = down_for
        self.claims = 0
        self.failed = 0
        self.lost = False
        self.recorded = asyncio.Event()

    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim:
        self.claims += 1
        if self.claims > 1 and self.first == "poll chain":
            await self.recorded.wait()
        return await super().claim(command_id, owner=owner, lease=0.001, force=force)

    async def record_trigger(
        self,
        command_id: str,
        vendor_ref: dict[str, str],
        *,
        run: dict[str, str] | None = None,
        state: RunState | None = None,
    ) -> None:
        down = self.claims < 2 if self.down_for is None else self.failed < self.down_for
        if down:
            self.lost = True
            self.failed += 1
            raise StoreUnavailable("idempotency store unavailable: ConnectionError")
        await super().record_trigger(command_id, vendor_ref, run=run, state=state)

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        if self.first == "redelivery" and outcome["kind"] != "failed":
            await self.recorded.wait()
        standing = await super().record_outcome(command_id, outcome)
        self.recorded.set()
        return standing


@pytest.mark.parametrize(
    ("first", "kind", "error_kind"),
    [("poll chain", "succeeded", None), ("redelivery", "failed", "unknown_outcome")],
)
async def test_a_lost_trigger_record_with_its_publishes_out_still_ends_once(
    first: str, kind: str, error_kind: str | None
) -> None:
    """The store write failed for as long as the claim held, `accepted` and the poll request
    went out: the message is parked, the poll chain follows the run, and the redelivery finds
    a claim with no reference. The first outcome recorded is the one terminal event, repeated
    under its id by the other."""
    async with harness() as h:
        h.store = _LostTriggerRecord(first)
        # A claim of 6 s (timeout x 2 + 5): the record is tried again for 5 s, then parked.
        await h.start(h.settings(pbsm={"default": {"timeout": 0.5}}))
        command_id = await h.publish("trigger-batch")
        await h.events.terminal(command_id, timeout=15)
        await _quiet(h)
        assert h.store.lost
        terminals = h.terminal(command_id)
        assert len(terminals) == 2, "the poll chain and the redelivery both answered"
        assert {e["id"] for e in terminals} == {event_id(command_id, EventKind(kind))}
        assert terminals[0]["data"] == terminals[1]["data"]
        assert (terminals[0]["data"].get("error") or {}).get("kind") == error_kind
        assert len(_of_kind(h, command_id, EventKind.ACCEPTED)) == 1
        assert len(h.sims.sims.ledger.entries("pbsm.trigger")) == 1, "never triggered twice"
        letters = await h.dead_letters()
        assert [d.error_kind for d in letters] == ([error_kind] if error_kind else [])
        assert await h.store.runs() == [], "nothing of it reached the runs in flight"
        assert h.store.failed > 2, "tried again while the claim held"


async def test_a_trigger_record_the_store_missed_for_a_moment_is_tried_again_in_place() -> None:
    """A failover: the store is away for two tries of the record; the third lands, within the
    claim, so the command is neither parked nor answered `unknown_outcome`."""
    async with harness() as h:
        h.store = _LostTriggerRecord("poll chain", down_for=2)
        await h.start(h.settings())
        command_id = await h.publish("trigger-batch")
        terminal = await h.events.terminal(command_id, timeout=15)
        await _quiet(h)
        assert terminal["type"] == "flowgate.trigger-batch.succeeded"
        assert h.store.failed == 2 and h.store.claims == 1, "one delivery, never redelivered"
        assert len(h.terminal(command_id)) == 1
        assert await h.dead_letters() == []
        record = await h.store.lookup(command_id)
        assert record is not None and record.vendor_ref


class _ReleaseMissedOnce(MemoryStore):
    """The first release fails as an unreachable Redis does (a failover)."""

    def __init__(self) -> None:
        super().__init__()
        self.releases = 0

    async def release(self, command_id: str, *, owner: str) -> None:
        self.releases += 1
        if self.releases == 1:
            raise StoreUnavailable("idempotency store unavailable: ConnectionError")
        await super().release(command_id, owner=owner)


async def test_a_release_the_store_missed_for_a_moment_is_tried_again_in_place() -> None:
    """PBSM answers 503 (the trigger certainly did not run): the claim is released before
    the retry, tried again when the store misses it, so the retry finds the id free and
    triggers, instead of meeting a claim nobody completes (`unknown_outcome`)."""
    from workers.simulators import Fault

    async with harness() as h:
        h.store = _ReleaseMissedOnce()
        h.sims.sims.inject(Fault(route="pbsm.trigger", status=503, times=1))
        await h.start(h.settings())
        command_id = await h.publish("trigger-batch")
        terminal = await h.events.terminal(command_id, timeout=15)
        assert terminal["type"] == "flowgate.trigger-batch.succeeded"
        assert h.store.releases == 2
        assert len(h.sims.sims.ledger.entries("pbsm.trigger")) == 2
