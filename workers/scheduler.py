"""`flowgate scheduler`: recurring commands from a schedule file, fired by Celery beat.

The schedule file (TOML) has one table per schedule, named by the table:

    [NIGHTLY]
    command = "trigger-batch"            # a command type
    cron = "0 6 * * 1-5"                 # minute hour day-of-month month day-of-week
    timezone = "Europe/Paris"            # IANA; the cron and the date expressions read in it
    connection = "prod"                  # optional: the named vendor connection
    deadline_after = "4h"                # optional: the command's deadline, after the fire time
    holidays = [2026-12-25]              # optional: not business days (date expressions)
    data = { batch = "NIGHTLY", params = { "$FICMISDATE$" = "{{ previous_business_day }}" } }

Every schedule is checked when the file is loaded: its data is rendered for its next fire time
(`workers.schedule_dates`) and validated by the command's model, so a bad file stops the
scheduler at start with one line naming the schedule and the field.

Celery beat does the timing: each schedule is an entry of a `celery.beat.Scheduler` whose
schedule is Celery's `crontab`, read in the schedule's own time zone. An entry that falls due
publishes its flowgate command through the blocking client (`flowgate_client.sync`, publisher
confirms) instead of sending a Celery task. What makes a fire happen once:

- the command id is `command_id(name, fire_time)`: a UUIDv5 of the schedule's name and the
  cron slot (its UTC time), never of the moment beat woke up. Workers drop a command id they
  have seen, so whatever publishes a slot twice publishes the same command twice;
- before publishing, a scheduler claims the slot in Redis (SET NX, a lease of `CLAIM_LEASE`
  seconds, kept `CLAIM_KEPT` seconds once RabbitMQ confirmed the command; released when the
  publish failed). A slot claimed by another scheduler is logged and skipped, so two
  schedulers running by mistake publish each fire once;
- beat's state is in memory (no shelve file): at start every schedule counts as last fired
  `scheduler.grace` seconds ago, so a slot that fell due while the process was (re)starting
  is fired, and one a previous run already published is skipped by its claim. A slot later
  than the grace (the process was down or stalled) is logged as missed and not sent.

Every fire's outcome is counted (`flowgate_scheduler_fires_total`, `workers.metrics`) and,
with `health_port` set, served on /metrics beside /healthz and /readyz
(`workers.scheduler_health`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import Celery, beat
from celery.schedules import crontab
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.commands import COMMAND_TYPES, Command
from workers import metrics
from workers._redis import sync_client
from workers.schedule_dates import DateExpressionError, render_data

if TYPE_CHECKING:
    from workers.scheduler_health import SchedulerHealth
    from workers.settings import Settings

__all__ = [
    "CLAIM_KEPT",
    "CLAIM_LEASE",
    "SCHEDULE_NAMESPACE",
    "SOURCE",
    "Claims",
    "FlowgateScheduler",
    "RedisClaims",
    "Schedule",
    "ScheduleFileError",
    "Sender",
    "ZonedCrontab",
    "check",
    "command_id",
    "fire_time_text",
    "load_schedules",
    "main",
    "run",
]

log = logging.getLogger("flowgate.scheduler")

SCHEDULE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flowgate:schedule")
SOURCE = "urn:flowgate:scheduler"
CLAIM_LEASE = 30.0
CLAIM_KEPT = 86400.0
# Beat's longest wait between ticks; each wait is read off the client's connection in slices
# of _WAIT_SLICE, so a stop is seen within one.
_MAX_INTERVAL = 30.0
_WAIT_SLICE = 1.0
# Retries of one publish stay well inside the default grace: a fire is late, not lost.
_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 1, "interval_max": 2}
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def fire_time_text(fire_time: datetime) -> str:
    """A fire time as it goes into ids, claims and logs: UTC, to the second, `Z`."""
    return fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_id(name: str, fire_time: datetime) -> str:
    """The id of the command schedule `name` sends for `fire_time` (a cron slot):
    `uuid5(SCHEDULE_NAMESPACE, "<name>/<fire time, UTC, e.g. 2026-11-30T05:00:00Z>")`, with
    `SCHEDULE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:flowgate:schedule")`."""
    return str(uuid.uuid5(SCHEDULE_NAMESPACE, f"{name}/{fire_time_text(fire_time)}"))


class ZonedCrontab(crontab):  # type: ignore[misc]
    """Celery's crontab read in a zone of its own rather than the Celery app's, on a clock
    that can be given (`nowfun`: tests move time, not the wall clock).

    Beat asks `is_due(last_run_at)`: due once the first cron slot after `last_run_at` has
    come; which slot a due entry fires is `latest_due` (the scheduler advances `last_run_at`
    to it, so an entry's `last_run_at` is the last slot it fired, not when beat woke up)."""

    def __init__(self, expression: str, zone: ZoneInfo, clock: Clock = _utc_now) -> None:
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(
                f"{expression!r} has {len(fields)} fields; a cron expression has 5: minute, "
                "hour, day of month, month, day of week"
            )
        minute, hour, day_of_month, month, day_of_week = fields
        super().__init__(minute, hour, day_of_week, day_of_month, month, nowfun=clock)
        self.tz = zone

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ZonedCrontab):
            return bool(super().__eq__(other)) and self.tz == other.tz
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment`, in UTC."""
        start, delta, _ = self.remaining_delta(moment.astimezone(self.tz), tz=self.tz)
        slot: datetime = start + delta
        return slot.astimezone(UTC)

    def latest_due(self, last_run_at: datetime, now: datetime) -> datetime:
        """The latest slot after `last_run_at` and not after `now` (there must be one):
        slots before it were missed together (a stall) and are not fired one by one."""
        slot = self.next_after(last_run_at)
        while (following := self.next_after(slot)) <= now:
            slot = following
        return slot

    def is_due(self, last_run_at: datetime) -> tuple[bool, float]:
        now = self.now()
        first = self.next_after(last_run_at)
        if first > now:
            return False, (first - now).total_seconds()
        return True, (self.next_after(now) - now).total_seconds()


# ------------------------------------------------------------------------- the schedule file


class ScheduleFileError(ValueError):
    """A schedule file that cannot be used; the message is one line naming the file and,
    where it is about one, the schedule and the field."""


@dataclass(frozen=True)
class Schedule:
    """One schedule of the file, checked."""

    name: str
    command_type: str
    cron: str
    zone: ZoneInfo
    data: Mapping[str, Any]
    connection: str | None = None
    deadline_after: timedelta | None = None
    holidays: frozenset[date] = field(default_factory=frozenset)

    def crontab(self, clock: Clock = _utc_now) -> ZonedCrontab:
        return ZonedCrontab(self.cron, self.zone, clock)

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times after `after`, in UTC."""
        schedule, found = self.crontab(), []
        for _ in range(count):
            after = schedule.next_after(after)
            found.append(after)
        return found

    def command(self, fire_time: datetime) -> Command:
        """The command sent for `fire_time`: the data's date expressions evaluated at the fire
        date in the schedule's zone, then validated by the command's model (ValidationError,
        DateExpressionError)."""
        today = fire_time.astimezone(self.zone).date()
        data = render_data(dict(self.data), today, self.holidays, "data")
        built: Command = COMMAND_TYPES[self.command_type].model_validate(data)
        return built

    def deadline(self, fire_time: datetime) -> datetime | None:
        return None if self.deadline_after is None else fire_time + self.deadline_after


class _Fields(BaseModel):
    """A schedule's table as written; `load_schedules` turns it into a `Schedule`."""

    model_config = ConfigDict(extra="forbid")

    command: str
    cron: str
    timezone: str
    data: dict[str, Any] = Field(default_factory=dict)
    connection: str | None = Field(default=None, min_length=1)
    deadline_after: str | None = None
    holidays: list[date] = Field(default_factory=list)

    @field_validator("command")
    @classmethod
    def _known_command(cls, value: str) -> str:
        if value not in COMMAND_TYPES:
            raise ValueError(
                f"unknown command type {value!r} (one of: {', '.join(sorted(COMMAND_TYPES))})"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("cron")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            ZonedCrontab(value, ZoneInfo("UTC"))
        except Exception as exc:  # celery's ParseException is not a ValueError
            raise ValueError(str(exc).replace("\n", " ")) from None
        return value

    @field_validator("deadline_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            _duration_of(value)
        return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name, such as Europe/Paris)"
        ) from None


def _duration_of(text: str) -> timedelta:
    found = _DURATION.fullmatch(text.strip())
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 4h, 1d")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def _duration_text(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _first_problem(exc: ValidationError, prefix: str = "") -> str:
    """The first error of `exc` as `field: what is wrong`."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in (prefix, *error["loc"])
    ).strip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field" + (
            "" if prefix else f" (a schedule has: {', '.join(_Fields.model_fields)})"
        )
    return f"{where or prefix or 'schedule'}: {message}"


def load_schedules(path: Path, *, now: datetime | None = None) -> list[Schedule]:
    """Every schedule of the file, checked (data validated for its next fire time after
    `now`); ScheduleFileError, one line, at the first problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScheduleFileError(f"{path}: {exc.strerror}") from None
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_WHERE.search(str(exc))
        at = f"{line.group(1)}:{line.group(2)}:" if line else ""
        raise ScheduleFileError(f"{path}:{at} {_TOML_WHERE.sub('', str(exc))}") from None
    if not tables:
        raise ScheduleFileError(
            f"{path}: no schedules (each is a [NAME] table with command, cron, timezone, data)"
        )
    now = now or _utc_now()
    schedules = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ScheduleFileError(f"{path}: {name}: not a schedule (each is a [NAME] table)")
        where = f"{path}: schedule {name}"
        if not _NAME.fullmatch(name):
            raise ScheduleFileError(
                f"{path}: schedule {name!r}: a name is letters, digits, '-' and '_'"
            )
        try:
            fields = _Fields.model_validate(table)
        except ValidationError as exc:
            raise ScheduleFileError(f"{where}: {_first_problem(exc)}") from None
        schedule = Schedule(
            name=name,
            command_type=fields.command,
            cron=fields.cron,
            zone=_zone(fields.timezone),
            data=fields.data,
            connection=fields.connection,
            deadline_after=_duration_of(fields.deadline_after) if fields.deadline_after else None,
            holidays=frozenset(fields.holidays),
        )
        try:
            schedule.command(schedule.fire_times(now, 1)[0])
        except DateExpressionError as exc:
            raise ScheduleFileError(f"{where}: {exc}") from None
        except ValidationError as exc:
            raise ScheduleFileError(f"{where}: {_first_problem(exc, 'data')}") from None
        schedules.append(schedule)
    return schedules


def check(path: Path, schedules: Sequence[Schedule], *, now: datetime, count: int = 3) -> str:
    """`--check`: each schedule and its next `count` fire times in its zone, each with the
    data it would send."""
    lines = []
    for schedule in schedules:
        extras = [f"connection {schedule.connection}"] if schedule.connection else []
        if schedule.deadline_after is not None:
            extras.append(f"deadline {_duration_text(schedule.deadline_after)} after each fire")
        lines.append(
            f"{schedule.name}: {schedule.command_type}, cron {schedule.cron!r} in "
            f"{schedule.zone.key}" + "".join(f", {extra}" for extra in extras)
        )
        for fire_time in schedule.fire_times(now, count):
            local = fire_time.astimezone(schedule.zone).strftime("%a %Y-%m-%d %H:%M %Z")
            sent = schedule.command(fire_time).model_dump(mode="json", exclude_unset=True)
            lines.append(f"  {local}  {json.dumps(sent, ensure_ascii=False)}")
    lines.append(f"ok: {len(schedules)} schedule(s) in {path}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- firing


class Sender(Protocol):
    """What publishes a command: `flowgate_client.sync.Client` (confirmed by RabbitMQ)."""

    def send(
        self,
        command: Command,
        *,
        connection: str | None = ...,
        deadline: datetime | timedelta | None = ...,
        id: str | None = ...,
    ) -> object: ...


class Claims(Protocol):
    """Who publishes a slot, shared by every scheduler."""

    def claim(self, slot: str) -> bool | None:
        """True: ours to publish. False: another scheduler has it. None: the store does not
        answer (publish anyway: a duplicate has the same command id)."""

    def sent(self, slot: str) -> None:
        """The command went: keep the claim long past any scheduler's grace."""

    def release(self, slot: str) -> None:
        """The publish failed: let another scheduler (or a restart) try within its grace."""


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisClaims:
    """Slot claims in Redis (the idempotency store's server, `key_prefix`), blocking calls."""

    def __init__(self, url: str, *, prefix: str, owner: str) -> None:

        self._redis = sync_client(
            url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._prefix = prefix
        self.owner = owner
        self._release = self._redis.register_script(_RELEASE)

    def _key(self, slot: str) -> str:
        return f"{self._prefix}schedule:{slot}"

    def ping(self) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(self._redis.ping())
        except (RedisError, OSError):
            return False

    def claim(self, slot: str) -> bool | None:
        from redis.exceptions import RedisError

        try:
            won = self._redis.set(self._key(slot), self.owner, nx=True, px=int(CLAIM_LEASE * 1000))
        except (RedisError, OSError) as exc:
            log.warning("scheduler: Redis does not answer (%s)", type(exc).__name__)
            return None
        return bool(won)

    def sent(self, slot: str) -> None:
        from redis.exceptions import RedisError

        try:
            self._redis.set(self._key(slot), f"sent by {self.owner}", px=int(CLAIM_KEPT * 1000))
        except (RedisError, OSError) as exc:
            # The lease lapses instead: a scheduler still within its grace may send the same
            # command (same id) again, which workers drop.
            log.warning("scheduler: could not record %s as sent: %s", slot, type(exc).__name__)

    def release(self, slot: str) -> None:
        from redis.exceptions import RedisError

        try:
            self._release(keys=[self._key(slot)], args=[self.owner])
        except (RedisError, OSError) as exc:
            log.warning("scheduler: could not release %s: %s", slot, type(exc).__name__)

    def close(self) -> None:
        self._redis.close()


class _Entry(beat.ScheduleEntry):  # type: ignore[misc]
    """A beat entry that knows its schedule (beat copies entries through their attributes)."""

    def __init__(self, *, plan: Schedule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan


class FlowgateScheduler(beat.Scheduler):  # type: ignore[misc]
    """Celery beat's scheduler whose entries publish flowgate commands, not Celery tasks."""

    # Beat would open a Celery producer for its tasks; nothing here sends one.
    producer = None

    def __init__(
        self,
        app: Celery,
        schedules: Iterable[Schedule],
        *,
        sender: Sender,
        claims: Claims,
        grace: float,
        clock: Clock = _utc_now,
        max_interval: float = _MAX_INTERVAL,
    ) -> None:
        self._plans = list(schedules)
        self._sender = sender
        self._claims = claims
        self._grace = grace
        self._clock = clock
        super().__init__(app, max_interval=max_interval)

    def setup_schedule(self) -> None:
        # In memory, never a shelve file: a restart is covered by the grace (a slot that fell
        # due meanwhile still fires) and by the claims (one already sent is not sent again).
        since = self._clock() - timedelta(seconds=self._grace)
        for plan in self._plans:
            self.schedule[plan.name] = _Entry(
                app=self.app,
                name=plan.name,
                task=plan.command_type,
                schedule=plan.crontab(self._clock),
                last_run_at=since,
                plan=plan,
            )

    def adjust(self, n: float, drift: float = 0.0) -> float:
        # Beat wakes 10 ms early by default, then ticks in a loop until the entry is due;
        # is_due here is exact to the microsecond, so wake at the slot.
        return n

    def install_default_entries(self, data: Any) -> None:
        """No Celery housekeeping task: this beat sends no task."""

    def reserve(self, entry: _Entry) -> _Entry:
        slot = entry.schedule.latest_due(entry.last_run_at, self._clock())
        reserved: _Entry = entry._next_instance(last_run_at=slot)
        self.schedule[entry.name] = reserved
        return reserved

    def apply_entry(self, entry: _Entry, producer: Any = None) -> None:
        # reserve() has just advanced the entry to the slot that fell due.
        self.fire(entry.plan, self.schedule[entry.name].last_run_at)

    def fire(self, plan: Schedule, fire_time: datetime) -> None:
        """Send `plan`'s command for `fire_time` unless it is past the grace or another
        scheduler has the slot; every outcome is one log line."""
        at = fire_time_text(fire_time)
        the_id = command_id(plan.name, fire_time)
        extra = {"schedule": plan.name, "fire_time": at, "command_id": the_id}
        late = (self._clock() - fire_time).total_seconds()
        if late > self._grace:
            log.warning(
                "schedule %s missed %s: %.0f s late, more than scheduler.grace (%g s); not sent",
                plan.name,
                at,
                late,
                self._grace,
                extra={**extra, "outcome": "missed"},
            )
            metrics.current().fired(plan.name, "missed", fire_time.timestamp())
            return
        try:
            command = plan.command(fire_time)
        except (ValidationError, DateExpressionError) as exc:
            log.error(
                "schedule %s %s: its data is not a valid %s command: %s",
                plan.name,
                at,
                plan.command_type,
                str(exc).replace("\n", " "),
                extra={**extra, "outcome": "invalid"},
            )
            metrics.current().fired(plan.name, "invalid", fire_time.timestamp())
            return
        slot = f"{plan.name}:{at}"
        claimed = self._claims.claim(slot)
        if claimed is False:
            log.info(
                "schedule %s %s: already sent by another scheduler (%s %s); skipped",
                plan.name,
                at,
                plan.command_type,
                the_id,
                extra={**extra, "outcome": "claimed"},
            )
            metrics.current().fired(plan.name, "claimed", fire_time.timestamp())
            return
        if claimed is None:
            log.warning(
                "schedule %s %s: sent without a claim; a duplicate has the same id %s, which "
                "workers drop",
                plan.name,
                at,
                the_id,
            )
        try:
            self._sender.send(
                command, connection=plan.connection, deadline=plan.deadline(fire_time), id=the_id
            )
        except Exception as exc:  # one failed publish must not stop the other schedules
            if claimed:
                self._claims.release(slot)
            log.error(
                "schedule %s %s: %s %s not sent: %s",
                plan.name,
                at,
                plan.command_type,
                the_id,
                exc,
                extra={**extra, "outcome": "failed"},
            )
            metrics.current().fired(plan.name, "failed", fire_time.timestamp())
            return
        if claimed:
            self._claims.sent(slot)
        log.info(
            "schedule %s fired %s (%.3f s late): %s %s",
            plan.name,
            at,
            max(late, 0.0),
            plan.command_type,
            the_id,
            extra={**extra, "outcome": "sent"},
        )
        metrics.current().fired(plan.name, "sent", fire_time.timestamp())


# --------------------------------------------------------------------------------- running


def serve(
    scheduler: FlowgateScheduler,
    wait: Callable[[float], None],
    stop: threading.Event,
    ticked: Callable[[], None] = lambda: None,
) -> None:
    """Beat's loop: tick (fire what is due), wait until the next fire, until `stop` is set.
    Not `celery.beat.Service.start`: its `time.sleep` cannot be cut short by a stop, and the
    wait here reads the client's connection (`wait`). `ticked` after each tick (readiness)."""
    try:
        while not stop.is_set():
            delay = float(scheduler.tick())
            ticked()
            if delay > 0:
                wait(min(delay, _WAIT_SLICE))
    finally:
        scheduler.close()


def _connect(settings: Settings) -> Any:
    """The blocking client, connected; flowgate's topology declared first when the virtual
    host has none yet (as `flowgate send` does)."""
    from flowgate_client import TopologyMissing
    from flowgate_client.sync import Client

    client = Client(
        settings.amqp_url.get_secret_value(),
        source=SOURCE,
        retry_policy=_RETRY_POLICY,
        connect_timeout=5.0,
        connection_name="flowgate-scheduler",
    )
    try:
        client.connect()
    except TopologyMissing:
        asyncio.run(_declare(settings))
        client.connect()
    return client


async def _declare(settings: Settings) -> None:
    from workers.app import Flowgate, make_broker

    app = Flowgate(settings, make_broker(settings))
    await app.connect()
    await app.stop()


def run(
    settings: Settings,
    schedules: list[Schedule],
    *,
    stop: threading.Event,
    clock: Clock = _utc_now,
    max_interval: float = _MAX_INTERVAL,
) -> None:
    """Fire `schedules` until `stop` is set (connection errors at start raise), serving
    /healthz, /readyz and /metrics on `health_port` meanwhile when it is set (CannotListen
    when it cannot be bound)."""
    from workers.scheduler_health import SchedulerHealth, serving

    redis_url = settings.idempotency.redis_url.get_secret_value()
    health = SchedulerHealth(redis_url, len(schedules))
    metrics.current().schedules(plan.name for plan in schedules)
    # First: /healthz answers while the scheduler connects, /readyz says what it waits for.
    with serving(health, settings.health_host, settings.health_port):
        _run(settings, schedules, health, stop=stop, clock=clock, max_interval=max_interval)


def _run(
    settings: Settings,
    schedules: list[Schedule],
    health: SchedulerHealth,
    *,
    stop: threading.Event,
    clock: Clock,
    max_interval: float,
) -> None:
    client = _connect(settings)
    health.connected()
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    claims = RedisClaims(
        settings.idempotency.redis_url.get_secret_value(),
        prefix=settings.idempotency.key_prefix,
        owner=owner,
    )
    try:
        if not claims.ping():
            log.warning(
                "scheduler: Redis (idempotency.redis_url) does not answer: fires go out "
                "unclaimed until it does (duplicates carry one id; workers drop them)"
            )
        app = Celery("flowgate-scheduler", broker="memory://", set_as_current=False)
        scheduler = FlowgateScheduler(
            app,
            schedules,
            sender=client,
            claims=claims,
            grace=settings.scheduler.grace,
            clock=clock,
            max_interval=max_interval,
        )
        now = clock()
        for plan in schedules:
            (upcoming,) = plan.fire_times(now, 1)
            log.info(
                "schedule %s: %s, cron %r in %s; next %s",
                plan.name,
                plan.command_type,
                plan.cron,
                plan.zone.key,
                upcoming.astimezone(plan.zone).strftime("%a %Y-%m-%d %H:%M %Z"),
            )
        log.info(
            "scheduler running: %d schedule(s), grace %g s, as %s",
            len(schedules),
            settings.scheduler.grace,
            owner,
        )
        serve(scheduler, _reader(client, health), stop, health.ticked)
    finally:
        client.close()
        claims.close()


def _reader(client: Any, health: SchedulerHealth) -> Callable[[float], None]:
    """The wait between fires: read the client's connection, so the events flowgate sends
    back to its reply queue are taken off it (and dropped: nothing here waits on them) and a
    dropped connection is re-established (retry policy) between fires, not at one. What it
    found is what /readyz says of RabbitMQ."""
    broken: list[str] = []

    def wait(seconds: float) -> None:
        try:
            client.drain(seconds)
        except Exception as exc:  # RabbitMQ away: the next publish tries again, itself
            health.disconnected(exc)
            if not broken:
                log.warning("scheduler: RabbitMQ connection lost: %s", exc)
            broken[:] = [str(exc)]
            time.sleep(seconds)
        else:
            health.connected()
            if broken:
                log.info("scheduler: RabbitMQ connection back")
                broken.clear()

    return wait


def main(path: Path, settings: Settings, *, check_only: bool) -> int:
    """`flowgate scheduler`; the exit code."""
    from kombu.exceptions import OperationalError

    from flowgate_client import FlowgateClientError
    from workers.broker.base import TopologyError
    from workers.scheduler_health import CannotListen

    try:
        schedules = load_schedules(path)
    except ScheduleFileError as exc:
        print(f"flowgate scheduler: {exc}", file=sys.stderr)
        return 2
    if check_only:
        print(check(path, schedules, now=_utc_now()))
        return 0
    stop = threading.Event()
    # The handler only sets the event; the loop never blocks inside the event's own lock
    # (it only reads is_set), so setting it from a signal handler cannot deadlock.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run(settings, schedules, stop=stop)
    except CannotListen as exc:
        print(f"flowgate scheduler: {exc}", file=sys.stderr)
        return 2
    except TopologyError as exc:
        print(f"flowgate scheduler: RabbitMQ refused flowgate's topology: {exc}", file=sys.stderr)
        return 1
    except (OSError, OperationalError, FlowgateClientError) as exc:
        from urllib.parse import urlsplit

        where = urlsplit(settings.amqp_url.get_secret_value())
        print(
            f"flowgate scheduler: cannot reach RabbitMQ at {where.hostname}:{where.port or 5672}:"
            f" {exc}",
            file=sys.stderr,
        )
        return 1
    log.info("scheduler stopped")
    return 0
