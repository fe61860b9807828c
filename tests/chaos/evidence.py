"""What a chaos run left behind, read back: the events, the simulators' ledger, the dead
letters, and the tally that turns them into a `ChaosResult`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.model import (
    FAIL_POLICY,
    TERMINAL,
    TRIGGER_ROUTE,
    VENDOR_OF,
    ChaosConfig,
    ChaosResult,
    Planned,
)
from workers.broker import AmqpBroker, Delivery


class Collector:
    """Every event from the durable chaos queue, deduplicated by CloudEvents id."""

    def __init__(self, published: set[str]) -> None:
        self.published = published
        self.seen_ids: set[str] = set()
        self.duplicates = 0
        self.unexpected = 0
        self.terminals: dict[str, list[tuple[str, str | None]]] = defaultdict(list)

    async def on_delivery(self, delivery: Delivery) -> None:
        try:
            event = json.loads(delivery.body)
            event_id = event["id"]
            data = event["data"]
            command_id = data["command_id"]
            kind = event["type"].rsplit(".", 1)[-1]
        except (ValueError, KeyError, TypeError):
            self.unexpected += 1
            await delivery.ack()
            return
        if event_id in self.seen_ids:
            self.duplicates += 1
        else:
            self.seen_ids.add(event_id)
            if command_id not in self.published:
                self.unexpected += 1
            elif kind in TERMINAL:
                error = (data.get("error") or {}).get("kind")
                self.terminals[command_id].append((kind, error))
        await delivery.ack()


def dig(body: Any, path: str) -> Any:
    """`a.b.0.c` in a JSON body: keys of objects, indexes of lists; None when absent."""
    for part in path.split("."):
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


def business_key(entry: dict[str, Any], field: str, body: Any) -> Any:
    """Where TRIGGER_ROUTE says a request names its command: an `x-` header or
    `header:<name>`, `path` (the last segment), else a dotted path in the JSON body."""
    if field.startswith("x-"):
        return entry["headers"].get(field)
    if field.startswith("header:"):
        return entry["headers"].get(field.removeprefix("header:"))
    if field == "path":
        return str(entry["path"]).rsplit("/", 1)[-1]
    return dig(body, field)


async def count_triggers(http: httpx.AsyncClient, commands: list[Planned]) -> dict[str, int]:
    """Per command id: vendor trigger requests the vendor acted on (status 200, or 0 = hang)."""
    by_key = {(c.type, c.key): c.id for c in commands}
    counts: Counter[str] = Counter()
    for command_type, (route, field) in TRIGGER_ROUTE.items():
        response = await http.get("/_sim/ledger", params={"route": route}, timeout=120)
        response.raise_for_status()
        for entry in response.json():
            if entry["status"] not in (200, 0):
                continue
            body = entry.get("json") or {}
            key = business_key(entry, field, body)
            command_id = by_key.get((command_type, str(key)))
            if command_id is not None:
                counts[command_id] += 1
    return counts


async def read_dead_letters(broker: AmqpBroker, result: ChaosResult) -> None:
    """Classify the dead letters by flowgate's reason header (or the broker's x-death)."""
    while True:
        delivery = await broker.get("flowgate.dead-letters")
        if delivery is None:
            return
        headers = delivery.headers
        kind = headers.get("x-flowgate-error-kind")
        if kind is None:
            deaths = headers.get("x-death") or [{}]
            kind = f"broker-{deaths[0].get('reason', 'unknown')}"
        elif not headers.get("x-flowgate-reason"):
            kind = f"{kind}-no-reason"
        result.dead_letter_kinds[str(kind)] += 1
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            body = json.loads(delivery.body)
            # A command's dead letter has its `id`; a poll request's names its `command_id`.
            result.dead_lettered.add(str(body.get("id") or body["command_id"]))
        await delivery.ack()


def tally(
    cfg: ChaosConfig,
    result: ChaosResult,
    commands: list[Planned],
    collector: Collector,
    triggers: dict[str, int],
) -> None:
    result.duplicate_events = collector.duplicates
    result.unexpected_events = collector.unexpected
    for command in commands:
        terminals = collector.terminals.get(command.id, [])
        vendor = VENDOR_OF[command.type]
        if not terminals:
            result.lost.append(command.id)
        else:
            result.terminal += 1
            distinct = sorted({f"{k}/{e}" if e else k for k, e in terminals})
            if len(distinct) > 1:
                result.conflicting[command.id] = distinct
            kind, error = terminals[0]
            label = f"{kind}:{error}" if error else kind
            result.terminal_kinds[label] += 1
            # A scripted outcome that did not come out (chaos may still turn it into
            # unknown_outcome/exhausted; but a success would be wrong).
            if command.expect == "invalid" and label != "failed:invalid":
                result.wrong_outcome[command.id] = f"expected failed:invalid, got {label}"
            if command.expect == "vendor_failed" and kind == "succeeded":
                result.wrong_outcome[command.id] = "scripted to fail, got succeeded"
            kept = command.id in result.dead_lettered
            if error in ("rejected", "exhausted", "unknown_outcome", "internal") and not kept:
                result.missing_dead_letters.append(command.id)
            if command.expect == "any" and label == "failed:invalid":
                result.wrong_outcome[command.id] = "a valid command was answered invalid"
        count = triggers.get(command.id, 0)
        if vendor in FAIL_POLICY:
            if count > 1:
                result.duplicate_triggers[command.id] = count
        elif count > 1:
            result.deduplicated_paylink_retries += count - 1
        if command.expect == "invalid" and count:
            result.wrong_outcome[command.id] = "an invalid command reached the vendor"


# How an `unknown_outcome` answer reads (workers/consumer.py): the attempt that answered it
# timed out on the trigger itself, or found a claim an earlier attempt left without a run.
TIMED_OUT = "the vendor may have run it"
LAPSED = "an earlier attempt may have triggered the vendor"
# The log events that end an attempt at a command: sent round again, or answered.
SETTLED = {"retry", "failed", "accepted", "succeeded", "cancelled"}


@dataclass
class Trail:
    """One command's attempts as the workers' logs tell them."""

    parked_before_trigger: bool = False  # store_unavailable, before the vendor answered
    parked_after_trigger: bool = False  # store_unavailable, with the vendor's answer in hand
    cut: bool = False  # an attempt that logged nothing after `consumed`: its process was killed
    timed_out: bool = False  # a trigger call timed out (answered unknown_outcome, or parked)
    unknown: str | None = None  # the unknown_outcome answer's reason, when it got one


def read_trails(log_dir: Path) -> dict[str, Trail]:
    """Every command's `Trail`, from the worker logs (JSON lines; `--- start` opens each run
    of the process, so an attempt not settled by then was killed)."""
    trails: dict[str, Trail] = defaultdict(Trail)
    for path in sorted(log_dir.glob("worker-*.log")):
        open_attempts: Counter[str] = Counter()
        with open(path, "rb") as fh:
            for raw in fh:
                if raw.startswith(b"--- start"):
                    for command_id, n in open_attempts.items():
                        trails[command_id].cut |= n > 0
                    open_attempts.clear()
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                command_id = line.get("command_id")
                if not isinstance(command_id, str):
                    continue
                trail, event = trails[command_id], line.get("event")
                trail.timed_out |= TIMED_OUT in str(line.get("msg"))
                if event == "consumed":
                    open_attempts[command_id] += 1
                    continue
                if event in SETTLED:
                    open_attempts[command_id] = max(0, open_attempts[command_id] - 1)
                if event == "retry" and line.get("reason") == "store_unavailable":
                    if "flowgate.cmd." in str(line.get("msg")):
                        if line.get("vendor_ref"):
                            trail.parked_after_trigger = True
                        else:
                            trail.parked_before_trigger = True
                elif event == "failed" and line.get("error_kind") == "unknown_outcome":
                    trail.unknown = str(line.get("msg"))
        for command_id, n in open_attempts.items():
            trails[command_id].cut |= n > 0
    return trails


def tally_unknowns(
    result: ChaosResult, trails: dict[str, Trail], collector: Collector, triggers: dict[str, int]
) -> None:
    """Why each command answered unknown_outcome was: a trigger call timed out (`timeout`,
    whichever attempt answered it); an earlier attempt's claim lapsed because a kill cut an
    attempt short (`kill`), or else because the store failed under an attempt holding the
    claim (`store`: the run recorded, or the claim released, never reached Redis); `other`.
    And the commands the store's outages parked, before and after the vendor answered their
    trigger."""
    for command_id, trail in trails.items():
        if trail.parked_before_trigger:
            result.store_parked["before_trigger"] += 1
        if trail.parked_after_trigger:
            result.store_parked["after_trigger"] += 1
        terminals = collector.terminals.get(command_id, [])
        if not terminals or terminals[0] != ("failed", "unknown_outcome"):
            continue
        reason = trail.unknown or ""
        if trail.timed_out:
            cause = "timeout"
        elif LAPSED in reason and trail.cut:
            cause = "kill"
        elif LAPSED in reason and (trail.parked_before_trigger or trail.parked_after_trigger):
            cause = "store"
            result.store_unknown_triggers[triggers.get(command_id, 0)] += 1
        else:
            cause = "other"
        result.unknown_causes[cause] += 1


async def rate_peak(http: httpx.AsyncClient, window: float) -> int:
    """The most Product-Live requests the simulator received in any `window` seconds."""
    times: list[float] = []
    for route in ("productlive.job_create", "productlive.job_read", "productlive.invitation_read"):
        response = await http.get("/_sim/ledger", params={"route": route}, timeout=120)
        response.raise_for_status()
        times.extend(float(entry["at"]) for entry in response.json())
    times.sort()
    best, j = 0, 0
    for i in range(len(times)):
        while j < len(times) and times[j] - times[i] < window:
            j += 1
        best = max(best, j - i)
    return best


async def dump_ledger(http: httpx.AsyncClient, path: Path) -> None:
    """Every vendor request, compact, for after-the-fact questions (one JSON line each)."""
    response = await http.get("/_sim/ledger", timeout=300)
    response.raise_for_status()
    await asyncio.to_thread(write_ledger, response.json(), path)


def write_ledger(entries: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w") as out:
        for e in entries:
            found = e.get("json")
            body: dict[str, Any] = found if isinstance(found, dict) else {}
            row = {
                "route": e["route"],
                "path": e["path"],
                "status": e["status"],
                "at": round(e["at"], 3),
                "corr": e["headers"].get("x-correlation-id"),
                "key": body.get("batchName")
                or body.get("partnerName")
                or body.get("name")
                or body.get("batchRunId")
                or dig(body, "input.name")
                or dig(body, "input.operations.0.key"),
            }
            out.write(json.dumps(row) + "\n")
