"""The idempotency store: what happened to each command id, shared by all workers and pollers.

Per command id it keeps a claim (who is calling the trigger right now, with a lease), the vendor
reference once the trigger answered, and the terminal outcome once there is one. With it:

- a redelivered command whose trigger is recorded resumes from the vendor reference and never
  calls the trigger again;
- a command re-published by its sender with the same id gets the recorded outcome again;
- a claim whose lease ran out with no recorded trigger means a process died between calling the
  vendor and recording its answer: the outcome is unknown, and the connection's policy decides;
- the first terminal outcome recorded wins, so two poll chains for one run (after a redelivery)
  can never publish two different terminal events.

It also keeps every followed run's view for operators (`flowgate runs`): an index of the runs
in flight, where each stands (`RunState`) and its last `HISTORY` events. The trigger enters a
run in the index and its outcome takes it out, inside the calls that record them; the poller
records a run's state only when something changed (`record_status`), never per unchanged
status call, so following a run costs one store call per change and nothing per poll.

`RedisStore` (default) is shared by every process; `MemoryStore` serves the embedded mode.
Entries expire after the configured retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from time import time as _epoch  # the runs' view's clock; expiry runs on time.monotonic
from typing import Any, Literal, Protocol

from workers._redis import async_pool, close_sentinels
from workers._script_calls import ScriptCalls

__all__ = [
    "HISTORY",
    "RECENT",
    "Claim",
    "Ended",
    "IdempotencyStore",
    "MemoryStore",
    "Record",
    "RedisStore",
    "RunEvent",
    "RunState",
    "RunView",
    "StoreUnavailable",
]

# Events kept per run (the oldest go first): enough to see how a run went, bounded however
# long it runs.
HISTORY = 50
# Terminal outcomes kept for the operator page's "recently ended", newest first: a screenful,
# whatever the rate.
RECENT = 200


class StoreUnavailable(Exception):
    """The store cannot be reached: the message is parked and tried again, never given up."""


ClaimState = Literal["new", "busy", "unknown", "triggered", "finished"]


@dataclass(frozen=True)
class Claim:
    """`new`: ours, call the trigger. `busy`: another process holds a live claim.
    `unknown`: an earlier claim lapsed without a recorded trigger. `triggered`: resume from
    `vendor_ref`. `finished`: answer `outcome` again."""

    state: ClaimState
    vendor_ref: dict[str, str] | None = None
    outcome: dict[str, Any] | None = None
    lease_left: float = 0.0


@dataclass(frozen=True)
class Record:
    """What the store knows of a command id (`cancel-run` reads it): the vendor reference once
    triggered, what the run is (`command_type`, `connection`), the outcome once there is one."""

    vendor_ref: dict[str, str] | None
    run: dict[str, str]
    outcome: dict[str, Any] | None


@dataclass(frozen=True)
class RunState:
    """Where a followed run stands as of its last change. Recorded at the trigger and then only
    when the vendor's status changes or the run is announced stuck, so `polls` and
    `next_poll_at` are as of that change; `schedule` (the connection's poll `first_delay`,
    `factor`, `max_delay`) lets a reader project them to now (`flowgate runs`)."""

    status: str | None
    since: float  # epoch seconds the status last changed; the trigger, at first
    next_poll_at: float | None = None  # the status call scheduled at that change
    polls: int = 0  # status calls made by then
    stuck: bool = False  # announced stuck, and the status has not changed since
    deadline: float | None = None
    schedule: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "since": self.since,
            "next_poll_at": self.next_poll_at,
            "polls": self.polls,
            "stuck": self.stuck,
            "deadline": self.deadline,
            "schedule": None if self.schedule is None else list(self.schedule),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunState:
        schedule = raw.get("schedule")
        return cls(
            status=raw.get("status"),
            since=float(raw["since"]),
            next_poll_at=raw.get("next_poll_at"),
            polls=int(raw.get("polls", 0)),
            stuck=bool(raw.get("stuck", False)),
            deadline=raw.get("deadline"),
            schedule=None if schedule is None else (schedule[0], schedule[1], schedule[2]),
        )


@dataclass(frozen=True)
class RunEvent:
    """One entry of a run's history: an event flowgate published about it."""

    kind: str  # accepted, progress, succeeded, failed, cancelled
    status: str | None
    at: float  # epoch seconds
    stuck: bool | None = None  # a progress event's `stuck`, when it had one

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"kind": self.kind, "status": self.status, "at": self.at}
        if self.stuck is not None:
            raw["stuck"] = self.stuck
        return raw

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunEvent:
        return cls(raw["kind"], raw.get("status"), float(raw["at"]), raw.get("stuck"))

    @classmethod
    def terminal(cls, outcome: Mapping[str, Any], at: float) -> RunEvent:
        """The history entry of a recorded outcome (`{"kind", "data": EventData}`)."""
        data = outcome.get("data")
        status = data.get("status") if isinstance(data, Mapping) else None
        return cls(str(outcome.get("kind", "?")), status, at)


@dataclass(frozen=True)
class RunView:
    """A followed run as `flowgate runs` shows it. `outcome` is the terminal event's kind once
    there is one; `history` (oldest first, at most `HISTORY`) is filled by `run()` only."""

    command_id: str
    command_type: str | None
    connection: str | None
    vendor_ref: dict[str, str]
    triggered_at: float
    state: RunState
    outcome: str | None = None
    history: tuple[RunEvent, ...] = ()


@dataclass(frozen=True)
class Ended:
    """A terminal outcome as the operator page lists it among the recently ended commands."""

    command_id: str
    command_type: str | None
    connection: str | None
    kind: str  # succeeded, failed, cancelled
    status: str | None
    error_kind: str | None
    error_message: str | None
    at: float  # epoch seconds it was recorded

    @classmethod
    def of(cls, command_id: str, outcome: Mapping[str, Any], at: float) -> Ended:
        data = outcome.get("data")
        data = data if isinstance(data, Mapping) else {}
        error = data.get("error")
        error = error if isinstance(error, Mapping) else {}
        return cls(
            command_id,
            data.get("command_type"),
            data.get("connection"),
            str(outcome.get("kind", "?")),
            data.get("status"),
            error.get("kind"),
            error.get("message"),
            at,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Ended:
        # Only ever `to_json`'s own output: every field is there.
        return cls(
            str(raw["command_id"]),
            raw["command_type"],
            raw["connection"],
            str(raw["kind"]),
            raw["status"],
            raw["error_kind"],
            raw["error_message"],
            float(raw["at"]),
        )


class IdempotencyStore(Protocol):
    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim: ...

    async def release(self, command_id: str, *, owner: str) -> None:
        """Drop our claim: the trigger certainly did not happen (refused, never sent)."""

    async def record_trigger(
        self,
        command_id: str,
        vendor_ref: dict[str, str],
        *,
        run: dict[str, str] | None = None,
        state: RunState | None = None,
    ) -> None:
        """The trigger happened: its vendor reference, and (`run`) what the run is. The run
        enters the index of runs in flight with `state` (default: no status, now) and an
        `accepted` entry in its history, in the same call. The worker records it together with
        the first poll request, so the run may already have an outcome: then only the vendor
        reference and `run` are written, and the finished run stays out of the index."""

    async def record_status(self, command_id: str, state: RunState, *, event: RunEvent) -> None:
        """A followed run changed (a new status, or announced stuck): its new state and the
        event published about it. Ignored once the run has an outcome, or when nothing of it
        is recorded (never triggered, expired, or its trigger not recorded yet: the view then
        shows the trigger's state until the next change)."""

    async def runs(
        self,
        *,
        command_type: str | None = None,
        connection: str | None = None,
        stuck: bool | None = None,
    ) -> list[RunView]:
        """The runs in flight, oldest trigger first, without their history; each filter
        narrows the list when given."""

    async def run(self, command_id: str) -> RunView | None:
        """One followed run, in flight or finished, with its history; None when there is no
        such run (never followed, or expired)."""

    async def lookup(self, command_id: str) -> Record | None:
        """What is known of `command_id`; None when nothing (never seen, or expired)."""

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record the terminal outcome unless one exists; return the one that stands. A run
        leaves the index of runs in flight, and the first outcome joins its history and the
        recently ended (`recent`)."""

    async def recent(self, limit: int = RECENT) -> list[Ended]:
        """The last terminal outcomes recorded, newest first (at most `RECENT`)."""

    async def outcome(self, command_id: str) -> dict[str, Any] | None: ...

    async def forget_outcome(self, command_id: str) -> None:
        """Drop a recorded failure so a replayed dead letter runs again (`flowgate dlq replay`)."""

    async def ping(self) -> None:
        """Return when the store answers; `StoreUnavailable` when it does not (readiness)."""

    async def aclose(self) -> None: ...


@dataclass
class _Entry:
    expires: float
    owner: str | None = None
    lease_until: float = 0.0
    claimed: bool = False
    vendor_ref: dict[str, str] | None = None
    outcome: dict[str, Any] | None = None
    run: dict[str, str] | None = None
    triggered_at: float = 0.0
    state: RunState | None = None
    history: deque[RunEvent] = field(default_factory=lambda: deque(maxlen=HISTORY))


class MemoryStore:
    """In-process store for the embedded mode and unit tests; same rules as `RedisStore`."""

    def __init__(self, *, retention: float = 7 * 86400.0) -> None:
        self._retention = retention
        self._entries: dict[str, _Entry] = {}
        self._in_flight: set[str] = set()
        self._recent: deque[Ended] = deque(maxlen=RECENT)

    def _entry(self, command_id: str) -> _Entry | None:
        entry = self._entries.get(command_id)
        if entry is not None and entry.expires <= time.monotonic():
            del self._entries[command_id]
            return None
        return entry

    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim:
        now = time.monotonic()
        entry = self._entry(command_id)
        if entry is not None:
            if entry.outcome is not None:
                return Claim("finished", entry.vendor_ref, entry.outcome)
            if entry.vendor_ref is not None:
                return Claim("triggered", entry.vendor_ref)
            if entry.lease_until > now and entry.owner != owner:
                return Claim("busy", lease_left=entry.lease_until - now)
            if entry.claimed and not force:
                return Claim("unknown")
        entry = entry or _Entry(expires=now + self._retention)
        entry.owner, entry.lease_until, entry.claimed = owner, now + lease, True
        self._entries[command_id] = entry
        return Claim("new")

    async def release(self, command_id: str, *, owner: str) -> None:
        entry = self._entry(command_id)
        if entry is not None and entry.owner == owner and entry.vendor_ref is None:
            entry.claimed, entry.owner, entry.lease_until = False, None, 0.0

    async def record_trigger(
        self,
        command_id: str,
        vendor_ref: dict[str, str],
        *,
        run: dict[str, str] | None = None,
        state: RunState | None = None,
    ) -> None:
        entry = self._entry(command_id) or _Entry(expires=time.monotonic() + self._retention)
        entry.vendor_ref, entry.lease_until = dict(vendor_ref), 0.0
        if run is not None:
            entry.run = dict(run)
        self._entries[command_id] = entry
        # Recorded with the first poll request: the run may have finished already (see Redis).
        if entry.outcome is None:
            state = state or RunState(None, _epoch())
            entry.triggered_at, entry.state = state.since, state
            entry.history.append(RunEvent("accepted", state.status, state.since))
            self._in_flight.add(command_id)

    async def record_status(self, command_id: str, state: RunState, *, event: RunEvent) -> None:
        entry = self._entry(command_id)
        if entry is None or entry.vendor_ref is None or entry.outcome is not None:
            return
        entry.state = state
        entry.triggered_at = entry.triggered_at or _epoch()
        entry.history.append(event)
        self._in_flight.add(command_id)

    async def runs(
        self,
        *,
        command_type: str | None = None,
        connection: str | None = None,
        stuck: bool | None = None,
    ) -> list[RunView]:
        views = []
        for command_id in list(self._in_flight):
            view = self._view(command_id, history=False)
            if view is None or view.outcome is not None:
                self._in_flight.discard(command_id)  # expired: nothing left to show
            elif _wanted(view, command_type, connection, stuck):
                views.append(view)
        return sorted(views, key=lambda v: (v.triggered_at, v.command_id))

    async def run(self, command_id: str) -> RunView | None:
        return self._view(command_id, history=True)

    def _view(self, command_id: str, *, history: bool) -> RunView | None:
        entry = self._entry(command_id)
        if entry is None or entry.vendor_ref is None or entry.state is None:
            return None
        run = entry.run or {}
        return RunView(
            command_id,
            run.get("command_type"),
            run.get("connection"),
            dict(entry.vendor_ref),
            entry.triggered_at,
            entry.state,
            None if entry.outcome is None else str(entry.outcome.get("kind", "?")),
            tuple(entry.history) if history else (),
        )

    async def lookup(self, command_id: str) -> Record | None:
        entry = self._entry(command_id)
        if entry is None:
            return None
        return Record(entry.vendor_ref, dict(entry.run or {}), entry.outcome)

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        entry = self._entry(command_id) or _Entry(expires=time.monotonic() + self._retention)
        if entry.outcome is None:
            entry.outcome = outcome
            now = _epoch()
            if entry.history:  # a followed run: its history ends with the outcome
                entry.history.append(RunEvent.terminal(outcome, now))
            self._recent.appendleft(Ended.of(command_id, outcome, now))
        self._entries[command_id] = entry
        self._in_flight.discard(command_id)
        return entry.outcome

    async def recent(self, limit: int = RECENT) -> list[Ended]:
        return list(self._recent)[: max(0, limit)]

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        entry = self._entry(command_id)
        return None if entry is None else entry.outcome

    async def forget_outcome(self, command_id: str) -> None:
        entry = self._entry(command_id)
        if entry is not None:
            entry.outcome = None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._entries.clear()
        self._in_flight.clear()
        self._recent.clear()


def _wanted(
    view: RunView, command_type: str | None, connection: str | None, stuck: bool | None
) -> bool:
    return (
        (command_type is None or view.command_type == command_type)
        and (connection is None or view.connection == connection)
        and (stuck is None or view.state.stuck == stuck)
    )


def _view(
    command_id: str, row: Iterable[str | None], history: tuple[RunEvent, ...]
) -> RunView | None:
    """A run from its hash's `_VIEW_FIELDS`; None when it was never a followed run."""
    ref, run, triggered_at, state, outcome = row
    if ref is None or state is None:
        return None
    about: dict[str, str] = json.loads(run) if run else {}
    ended = json.loads(outcome) if outcome else None
    return RunView(
        command_id,
        about.get("command_type"),
        about.get("connection"),
        json.loads(ref),
        float(triggered_at or 0.0),
        RunState.from_json(json.loads(state)),
        None if ended is None else str(ended.get("kind", "?")),
        history,
    )


# One round trip, atomic: the whole claim decision happens inside Redis.
_CLAIM = """
local key, claim_key = KEYS[1], KEYS[2]
local owner, lease_ms, retention_ms, force = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local outcome = redis.call('HGET', key, 'outcome')
local ref = redis.call('HGET', key, 'vendor_ref')
if outcome then return {'finished', ref or '', outcome, 0} end
if ref then return {'triggered', ref, '', 0} end
local holder = redis.call('GET', claim_key)
if holder and holder ~= owner then
  return {'busy', '', '', redis.call('PTTL', claim_key)}
end
if redis.call('HEXISTS', key, 'claimed') == 1 and force ~= '1' and not holder then
  return {'unknown', '', '', 0}
end
redis.call('SET', claim_key, owner, 'PX', lease_ms)
redis.call('HSET', key, 'claimed', owner)
redis.call('PEXPIRE', key, retention_ms)
return {'new', '', '', 0}
"""


# The owner's release also counts when its lease already lapsed (a refused call that outlived
# the lease): nobody else claimed since, so the trigger certainly did not happen.
_RELEASE = """
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then
  redis.call('DEL', KEYS[2])
  holder = false
end
if not holder and redis.call('HGET', KEYS[1], 'claimed') == ARGV[1]
    and redis.call('HEXISTS', KEYS[1], 'vendor_ref') == 0 then
  redis.call('HDEL', KEYS[1], 'claimed')
end
return 0
"""


# Scripts rather than MULTI pipelines: one command and one reply each, and much less client work.
# The runs' view rides along: KEYS[3] is the index of runs in flight (a sorted set of command
# ids scored by trigger time), KEYS[4] the run's history (a list, trimmed to its last entries).
_RECORD_TRIGGER = """
redis.call('HSET', KEYS[1], 'vendor_ref', ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'run', ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
-- Recorded with the first poll request, so a poll chain may have finished the run already:
-- its reference is kept, but a finished run never goes back into the index.
if redis.call('HEXISTS', KEYS[1], 'outcome') == 0 then
  redis.call('HSET', KEYS[1], 'triggered_at', ARGV[5], 'state', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
  redis.call('RPUSH', KEYS[4], ARGV[7])
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[8]), -1)
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
return 0
"""


# Nothing for a run that ended, or of which nothing is recorded (never triggered, or expired):
# a late state change must not bring it back into the index.
_RECORD_STATUS = """
if redis.call('HEXISTS', KEYS[1], 'vendor_ref') == 0
    or redis.call('HEXISTS', KEYS[1], 'outcome') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
-- A run triggered before the index existed joins it now, as of now.
redis.call('HSETNX', KEYS[1], 'triggered_at', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', redis.call('HGET', KEYS[1], 'triggered_at'), ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
"""


_RECORD_OUTCOME = """
local first = redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
if first == 1 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
if first == 1 then
  redis.call('LPUSH', KEYS[4], ARGV[6])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[7]) - 1)
end
return redis.call('HGET', KEYS[1], 'outcome')
"""

# What a listing reads of each run, and how many runs one pipelined round trip reads.
_VIEW_FIELDS = ["vendor_ref", "run", "triggered_at", "state", "outcome"]
_LIST_BATCH = 500


class RedisStore:
    """The shared store. Keys: `<prefix>cmd:<id>` (hash), `<prefix>claim:<id>` (lease),
    `<prefix>hist:<id>` (a followed run's last events, a list), `<prefix>recent` (the last
    `RECENT` outcomes, newest first) and `<prefix>runs` (the runs in
    flight: a sorted set of command ids, scored by trigger time)."""

    def __init__(
        self,
        url: str,
        *,
        retention: float = 7 * 86400.0,
        prefix: str = "flowgate:",
        max_connections: int = 64,
        replicas: int = 0,
        replica_wait: float = 1.0,
    ) -> None:
        import redis.asyncio as redis

        self._replicas = replicas
        self._replica_wait_ms = int(replica_wait * 1000)

        # At most `max_connections` calls at once, the rest wait here. Not redis-py's
        # BlockingConnectionPool: its condition and timeout cost ~40 us a call (see
        # BENCHMARKS.md); and not its plain pool alone, which raises past its size and parked
        # good work (found by scripts/bench: 1,460 of 5,000 commands came round again).
        self._slots = asyncio.Semaphore(max_connections)
        pool = async_pool(
            url,
            max_connections=max_connections,
            decode_responses=True,
            # A hung Redis must surface as StoreUnavailable (the message is parked), not hang.
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._retention_ms = int(retention * 1000)
        self._prefix = prefix
        self._claim_script = self._redis.register_script(_CLAIM)
        self._release_script = self._redis.register_script(_RELEASE)
        self._record_trigger_script = self._redis.register_script(_RECORD_TRIGGER)
        self._record_status_script = self._redis.register_script(_RECORD_STATUS)
        self._record_outcome_script = self._redis.register_script(_RECORD_OUTCOME)
        self._calls = ScriptCalls(
            self._redis, replicas=replicas, replica_wait_ms=self._replica_wait_ms
        )
        self._index = f"{prefix}runs"
        self._recent = f"{prefix}recent"

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        async with self._slots:
            try:
                yield
            except (RedisError, OSError) as exc:
                from workers.metrics import current as current_metrics

                current_metrics().store_errors.inc()
                raise StoreUnavailable(
                    f"idempotency store unavailable: {type(exc).__name__}"
                ) from None

    def _keys(self, command_id: str) -> tuple[str, str]:
        return f"{self._prefix}cmd:{command_id}", f"{self._prefix}claim:{command_id}"

    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim:
        async with self._guard():
            return await self._claim(command_id, owner=owner, lease=lease, force=force)

    async def _claim(self, command_id: str, *, owner: str, lease: float, force: bool) -> Claim:
        keys = list(self._keys(command_id))
        args: list[str | int] = [
            owner,
            int(lease * 1000),
            self._retention_ms,
            "1" if force else "0",
        ]
        if not self._replicas:
            state, ref, outcome, ttl = await self._calls.run(self._claim_script, keys, args)
        else:
            # A WAIT after the claim, in the same round trip: the claim is on `replicas`
            # replicas before the vendor is called, so a failover cannot lose it and let a
            # redelivery trigger the vendor a second time.
            (state, ref, outcome, ttl), acked = await self._calls.run_replicated(
                self._claim_script, keys, args
            )
            if state == "new" and acked < self._replicas:
                await self._calls.run(self._release_script, keys, [owner])
                raise StoreUnavailable(
                    f"a claim reached {acked} of {self._replicas} Redis replicas within "
                    f"{self._replica_wait_ms} ms; the vendor was not called"
                )
        return Claim(
            state,
            json.loads(ref) if ref else None,
            json.loads(outcome) if outcome else None,
            max(0.0, int(ttl) / 1000),
        )

    async def release(self, command_id: str, *, owner: str) -> None:
        async with self._guard():
            await self._calls.run(self._release_script, self._keys(command_id), [owner])

    def _history(self, command_id: str) -> str:
        return f"{self._prefix}hist:{command_id}"

    async def record_trigger(
        self,
        command_id: str,
        vendor_ref: dict[str, str],
        *,
        run: dict[str, str] | None = None,
        state: RunState | None = None,
    ) -> None:
        about = "" if run is None else json.dumps(run, sort_keys=True)
        state = state or RunState(None, _epoch())
        accepted = RunEvent("accepted", state.status, state.since)
        async with self._guard():
            await self._calls.run(
                self._record_trigger_script,
                [*self._keys(command_id), self._index, self._history(command_id)],
                [
                    json.dumps(vendor_ref, sort_keys=True),
                    self._retention_ms,
                    about,
                    command_id,
                    repr(state.since),
                    json.dumps(state.to_json()),
                    json.dumps(accepted.to_json()),
                    HISTORY,
                ],
            )

    async def record_status(self, command_id: str, state: RunState, *, event: RunEvent) -> None:
        key, _ = self._keys(command_id)
        async with self._guard():
            await self._calls.run(
                self._record_status_script,
                [key, self._index, self._history(command_id)],
                [
                    json.dumps(state.to_json()),
                    self._retention_ms,
                    command_id,
                    json.dumps(event.to_json()),
                    HISTORY,
                    repr(_epoch()),
                ],
            )

    async def runs(
        self,
        *,
        command_type: str | None = None,
        connection: str | None = None,
        stuck: bool | None = None,
    ) -> list[RunView]:
        # The index, then each run's hash, a batch per pipelined round trip: never a SCAN.
        async with self._guard():
            ids = [str(member) for member in await self._redis.zrange(self._index, 0, -1)]
        views: list[RunView] = []
        gone: list[str] = []
        for start in range(0, len(ids), _LIST_BATCH):
            batch = ids[start : start + _LIST_BATCH]
            async with self._guard():
                pipe = self._redis.pipeline(transaction=False)
                for command_id in batch:
                    pipe.hmget(self._keys(command_id)[0], _VIEW_FIELDS)
                rows = await pipe.execute()
            for command_id, row in zip(batch, rows, strict=True):
                view = _view(command_id, row, ())
                if view is None or view.outcome is not None:
                    gone.append(command_id)
                elif _wanted(view, command_type, connection, stuck):
                    views.append(view)
        if gone:
            # Expired without an outcome (or a crash between the two): nothing left to show.
            async with self._guard():
                await self._redis.zrem(self._index, *gone)
        return views

    async def run(self, command_id: str) -> RunView | None:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            pipe.hmget(self._keys(command_id)[0], _VIEW_FIELDS)
            pipe.lrange(self._history(command_id), 0, -1)
            row, history = await pipe.execute()
        return _view(command_id, row, tuple(RunEvent.from_json(json.loads(e)) for e in history))

    async def lookup(self, command_id: str) -> Record | None:
        key, _ = self._keys(command_id)
        async with self._guard():
            ref, run, outcome, claimed = await self._redis.hmget(
                key, ["vendor_ref", "run", "outcome", "claimed"]
            )
        if ref is None and run is None and outcome is None and claimed is None:
            return None
        return Record(
            json.loads(ref) if ref else None,
            json.loads(run) if run else {},
            json.loads(outcome) if outcome else None,
        )

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        key, _ = self._keys(command_id)
        now = _epoch()
        ended = RunEvent.terminal(outcome, now)
        # Both entries are built here and kept by the script only if this outcome is the
        # first: the recently ended list costs no round trip of its own.
        async with self._guard():
            stored = await self._calls.run(
                self._record_outcome_script,
                [key, self._index, self._history(command_id), self._recent],
                [
                    json.dumps(outcome, sort_keys=True),
                    self._retention_ms,
                    command_id,
                    json.dumps(ended.to_json()),
                    HISTORY,
                    json.dumps(Ended.of(command_id, outcome, now).to_json()),
                    RECENT,
                ],
            )
        result: dict[str, Any] = json.loads(stored)
        return result

    async def recent(self, limit: int = RECENT) -> list[Ended]:
        if limit <= 0:
            return []
        async with self._guard():
            raw = await self._redis.lrange(self._recent, 0, max(0, min(limit, RECENT) - 1))
        return [Ended.from_json(json.loads(entry)) for entry in raw]

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        key, _ = self._keys(command_id)
        async with self._guard():
            stored = await self._redis.hget(key, "outcome")
        return None if stored is None else dict(json.loads(stored))

    async def forget_outcome(self, command_id: str) -> None:
        key, _ = self._keys(command_id)
        async with self._guard():
            await self._redis.hdel(key, "outcome")

    async def ping(self) -> None:
        async with self._guard():
            await self._redis.ping()

    async def aclose(self) -> None:
        # The pool was passed in, so redis-py would leave it open: close it explicitly.
        pool = self._redis.connection_pool
        await self._redis.aclose(close_connection_pool=True)
        await close_sentinels(pool)
