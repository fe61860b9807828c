"""`flowgate scheduler` without a broker: the schedule file, fire times across time zones and
daylight saving, the command each fire sends and its id, and beat's decisions (grace, claims,
failures) on a clock the test moves."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import Celery

from contracts import Command, TriggerBatch
from workers.cli import main as cli_main
from workers.metrics import Metrics, installed
from workers.scheduler import (
    SCHEDULE_NAMESPACE,
    FlowgateScheduler,
    Schedule,
    ScheduleFileError,
    ZonedCrontab,
    check,
    command_id,
    fire_time_text,
    load_schedules,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "schedules.toml"
PARIS = ZoneInfo("Europe/Paris")
NIGHTLY = """
[NIGHTLY]
command = "trigger-batch"
cron = "0 6 * * 1-5"
timezone = "Europe/Paris"
connection = "prod"
deadline_after = "4h"
data = { batch = "NIGHTLY", params = { "$FICMISDATE$" = "{{ previous_business_day }}" } }
"""


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedules_from(text: str, tmp_path: Path, now: datetime | None = None) -> list[Schedule]:
    path = tmp_path / "schedules.toml"
    path.write_text(text)
    return load_schedules(path, now=now or utc(2026, 3, 25))


# ------------------------------------------------------------------------------ the file


def test_the_example_file_loads_and_checks() -> None:
    schedules = load_schedules(EXAMPLE, now=utc(2026, 11, 26, 12))
    assert [s.name for s in schedules] == ["NIGHTLY", "MONTHLY-EXPORT"]
    nightly = schedules[0]
    assert (nightly.command_type, nightly.cron, nightly.zone) == (
        "trigger-batch",
        "0 6 * * mon-fri",
        PARIS,
    )
    assert nightly.deadline_after == timedelta(hours=4)
    assert date(2026, 12, 25) in nightly.holidays
    shown = check(EXAMPLE, schedules, now=utc(2026, 11, 26, 12)).splitlines()
    assert shown[0] == (
        "NIGHTLY: trigger-batch, cron '0 6 * * mon-fri' in Europe/Paris, "
        "deadline 4h after each fire"
    )
    # Friday, then Monday for the Friday before.
    assert shown[1].startswith("  Fri 2026-11-27 06:00 CET  ")
    assert shown[1].endswith('"$FICMISDATE$": "2026-11-26"}}')
    assert shown[2].startswith("  Mon 2026-11-30 06:00 CET  ")
    assert shown[2].endswith('"$FICMISDATE$": "2026-11-27"}}')
    assert shown[3].startswith("  Tue 2026-12-01 06:00 CET  ")
    assert shown[5] == (
        '  Tue 2026-12-01 02:30 EST  {"job_id": "job-123", "input": {"closing_day": '
        '"30/11/2026", "label": "export-2026-12"}}'
    )
    assert shown[-1] == f"ok: 2 schedule(s) in {EXAMPLE}"


def test_the_readme_schedule_example_loads(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, flags=re.S) if "cron" in b]
    assert len(blocks) == 1, "one schedule example in the README"
    (schedule,) = schedules_from(blocks[0], tmp_path)
    example = next(s for s in load_schedules(EXAMPLE) if s.name == schedule.name)
    assert schedule == example


def test_holidays_move_the_previous_business_day(tmp_path: Path) -> None:
    (schedule,) = schedules_from(NIGHTLY + "holidays = [2026-03-27]\n", tmp_path)
    command = schedule.command(utc(2026, 3, 30, 4))  # Monday; Friday is a holiday
    assert isinstance(command, TriggerBatch)
    assert command.params == {"$FICMISDATE$": "2026-03-26"}


BAD_FILES = [
    ("cron", 'cron = "0 6 * *"', "schedule NIGHTLY: cron: '0 6 * *' has 4 fields"),
    ("cron range", 'cron = "61 6 * * *"', "schedule NIGHTLY: cron: Invalid end range: 61 > 59"),
    ("cron word", 'cron = "0 6 * * x"', "schedule NIGHTLY: cron: Invalid weekday literal 'x'"),
    ("cron never", 'cron = "0 6 30 2 *"', "schedule NIGHTLY: cron: Invalid crontab: day_of_month"),
    (
        "timezone",
        'timezone = "Europe/Pariss"',
        "schedule NIGHTLY: timezone: unknown time zone 'Europe/Pariss'",
    ),
    ("command", 'command = "trigger-batc"', "schedule NIGHTLY: command: unknown command type"),
    ("field", 'tz = "UTC"', "schedule NIGHTLY: tz: unknown field (a schedule has: command, cron"),
    (
        "deadline",
        'deadline_after = "4 hours"',
        "schedule NIGHTLY: deadline_after: '4 hours' is not a duration like 90s, 30m, 4h, 1d",
    ),
    ("holiday", 'holidays = ["25/12"]', "schedule NIGHTLY: holidays[0]: Input should be a valid"),
    ("connection", 'connection = ""', "schedule NIGHTLY: connection: String should have at"),
    ("data field", 'data = { batc = "X" }', "schedule NIGHTLY: data.batch: Field required"),
    (
        "data rule",
        'data = { batch = "X", group = true, params = { a = "b" } }',
        "schedule NIGHTLY: data: a batch group takes group_params, not params",
    ),
    (
        "data type",
        'data = { batch = "X", params = { "$FICMISDATE$" = 5 } }',
        "schedule NIGHTLY: data.params.$FICMISDATE$: Input should be a valid string",
    ),
    (
        "expression",
        'data = { batch = "X", params = { D = "{{ previous_busines_day }}" } }',
        "schedule NIGHTLY: data.params.D: unknown date expression '{{ previous_busines_day }}'",
    ),
    (
        "unclosed",
        'data = { batch = "{{ today" }',
        "schedule NIGHTLY: data.batch: '{{' without its '}}'",
    ),
]


def _replace_or_add(text: str, line: str) -> str:
    key = line.split("=", 1)[0].strip()
    lines = text.strip().splitlines()
    for index, old in enumerate(lines):
        if old.split("=", 1)[0].strip() == key:
            lines[index] = line
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, line]) + "\n"


@pytest.mark.parametrize(
    ("line", "problem"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_a_bad_schedule_is_one_line_naming_the_schedule_and_the_field(
    line: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(ScheduleFileError) as caught:
        schedules_from(_replace_or_add(NIGHTLY, line), tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'schedules.toml'}: {problem}"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[A]\ncommand = "trigger-batch\n', ":2:25: Illegal character"),
        ("", ": no schedules"),
        ("x = 1\n", ": x: not a schedule"),
        ('["my schedule"]\ncommand = "list-files"\n', ": schedule 'my schedule': a name is"),
    ],
    ids=["toml", "empty", "not a table", "name"],
)
def test_a_bad_file_is_one_line(text: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(ScheduleFileError, match=problem):
        schedules_from(text, tmp_path)


def test_the_cli_says_what_is_wrong_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_replace_or_add(NIGHTLY, 'timezone = "Mars/Olympus"'))
    assert cli_main(["scheduler", "--schedules", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"flowgate scheduler: {path}: schedule NIGHTLY: timezone: unknown time zone "
        "'Mars/Olympus' (an IANA name, such as Europe/Paris)\n"
    )
    assert cli_main(["scheduler", "--schedules", str(tmp_path / "none.toml"), "--check"]) == 2
    assert capsys.readouterr().err.endswith("none.toml: No such file or directory\n")


def test_the_cli_check_prints_the_next_fire_times(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["scheduler", "--schedules", str(EXAMPLE), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * 4 + 1 and lines[-1].startswith("ok: 2 schedule(s)")


# ----------------------------------------------------------------------- fire times and ids


def fires(cron: str, zone: str, after: datetime, count: int) -> list[datetime]:
    schedule, found = ZonedCrontab(cron, ZoneInfo(zone)), []
    for _ in range(count):
        after = schedule.next_after(after)
        found.append(after)
    return found


def test_fire_times_follow_the_zone_across_daylight_saving() -> None:
    # Paris goes to summer time on 2026-03-29 and back on 2026-10-25: 06:00 stays 06:00.
    assert fires("0 6 * * 1-5", "Europe/Paris", utc(2026, 3, 26, 12), 3) == [
        utc(2026, 3, 27, 5),
        utc(2026, 3, 30, 4),
        utc(2026, 3, 31, 4),
    ]
    assert fires("0 6 * * *", "Europe/Paris", utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 5),
        utc(2026, 10, 26, 5),
    ]
    assert fires("0 6 * * *", "America/New_York", utc(2026, 3, 7, 12), 2) == [
        utc(2026, 3, 8, 10),
        utc(2026, 3, 9, 10),
    ]


def test_wall_times_daylight_saving_skips_or_repeats() -> None:
    """Celery's crontab, as documented in the README: a skipped wall time fires an hour later
    on the wall (the instant the old offset gives it), a repeated one once, the first time."""
    assert fires("30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST: 02:30 never happened
        utc(2026, 3, 30, 0, 30),
    ]
    assert fires("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, not again at 02:30 CET
        utc(2026, 10, 26, 1, 30),
    ]
    # More often than hourly: nothing during the repeated hour.
    assert fires("*/30 * * * *", "Europe/Paris", utc(2026, 10, 25, 0, 15), 3) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 2, 0),
        utc(2026, 10, 25, 2, 30),
    ]


def test_date_expressions_use_the_fire_date_in_the_schedules_zone(tmp_path: Path) -> None:
    (schedule,) = schedules_from(
        _replace_or_add(
            _replace_or_add(NIGHTLY, 'cron = "30 0 * * *"'),
            'data = { batch = "B", params = { T = "{{ today }}", '
            'P = "{{ previous_business_day }}" } }',
        ),
        tmp_path,
    )
    # 00:30 in Paris on Monday 2026-03-30 is still Sunday in UTC.
    (fire_time,) = schedule.fire_times(utc(2026, 3, 29, 12), 1)
    assert fire_time == utc(2026, 3, 29, 22, 30)
    command = schedule.command(fire_time)
    assert isinstance(command, TriggerBatch)
    assert command.params == {"T": "2026-03-30", "P": "2026-03-27"}


def test_the_command_id_is_a_uuid5_of_the_name_and_the_fire_time() -> None:
    fire_time = utc(2026, 3, 30, 4)
    assert fire_time_text(fire_time) == "2026-03-30T04:00:00Z"
    assert uuid.uuid5(uuid.NAMESPACE_URL, "urn:flowgate:schedule") == SCHEDULE_NAMESPACE
    expected = str(uuid.uuid5(SCHEDULE_NAMESPACE, "NIGHTLY/2026-03-30T04:00:00Z"))
    assert command_id("NIGHTLY", fire_time) == expected
    assert command_id("NIGHTLY", fire_time.astimezone(PARIS)) == expected
    assert command_id("NIGHTLY", utc(2026, 3, 31, 4)) != expected
    assert command_id("NIGHTLY-2", fire_time) != expected


# -------------------------------------------------------------------------- beat, on a clock


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sent:
    at: datetime
    command: Command
    connection: str | None
    deadline: Any
    id: str | None


@dataclass
class Sender:
    clock: Clock
    sent: list[Sent] = field(default_factory=list)
    failures: int = 0

    def send(
        self,
        command: Command,
        *,
        connection: str | None = None,
        deadline: datetime | timedelta | None = None,
        id: str | None = None,
    ) -> object:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("RabbitMQ went away")
        self.sent.append(Sent(self.clock(), command, connection, deadline, id))
        return None


@dataclass
class Claims:
    """Shared by every scheduler of a test, as Redis is."""

    held: dict[str, str] = field(default_factory=dict)
    answers: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)

    def claim(self, slot: str) -> bool | None:
        self.calls.append(("claim", slot))
        if not self.answers:
            return None
        if slot in self.held:
            return False
        self.held[slot] = "claimed"
        return True

    def sent(self, slot: str) -> None:
        self.calls.append(("sent", slot))
        self.held[slot] = "sent"

    def release(self, slot: str) -> None:
        self.calls.append(("release", slot))
        self.held.pop(slot, None)


def beat_on(
    schedules: list[Schedule], clock: Clock, claims: Claims, *, grace: float = 60.0
) -> tuple[FlowgateScheduler, Sender]:
    sender = Sender(clock)
    app = Celery("test-scheduler", broker="memory://", set_as_current=False)
    scheduler = FlowgateScheduler(
        app, schedules, sender=sender, claims=claims, grace=grace, clock=clock, max_interval=3600
    )
    return scheduler, sender


def run_until(clock: Clock, until: datetime, *schedulers: FlowgateScheduler) -> None:
    """Beat's loop with the clock moved instead of slept: each scheduler ticks, then time
    goes on to the earliest moment one of them wants to wake."""
    for _ in range(10_000):
        delays = [float(s.tick()) for s in schedulers]
        if clock.now >= until:
            return
        clock.now = min(clock.now + timedelta(seconds=min(delays)), until)
    raise AssertionError("beat never got there")


@pytest.fixture
def nightly(tmp_path: Path) -> Schedule:
    (schedule,) = schedules_from(NIGHTLY, tmp_path)
    return schedule


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="flowgate.scheduler"):
        yield caplog


def outcomes(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    return [
        (r.__dict__["fire_time"], r.__dict__["outcome"]) for r in records if hasattr(r, "outcome")
    ]


def test_each_fire_is_sent_at_its_slot_with_the_slots_id_data_and_deadline(
    nightly: Schedule, logs: pytest.LogCaptureFixture
) -> None:
    clock = Clock(utc(2026, 3, 26, 12))  # Thursday noon
    scheduler, sender = beat_on([nightly], clock, Claims())
    run_until(clock, utc(2026, 3, 31, 12), scheduler)
    slots = [utc(2026, 3, 27, 5), utc(2026, 3, 30, 4), utc(2026, 3, 31, 4)]
    assert [s.at for s in sender.sent] == slots  # on the dot, across the change to summer time
    assert [s.id for s in sender.sent] == [command_id("NIGHTLY", t) for t in slots]
    assert [s.deadline for s in sender.sent] == [t + timedelta(hours=4) for t in slots]
    assert {s.connection for s in sender.sent} == {"prod"}
    assert [s.command for s in sender.sent] == [
        TriggerBatch(batch="NIGHTLY", params={"$FICMISDATE$": day})
        for day in ("2026-03-26", "2026-03-27", "2026-03-30")  # Monday: the Friday before
    ]
    sent_lines = [r.getMessage() for r in logs.records if getattr(r, "outcome", "") == "sent"]
    assert sent_lines[1] == (
        f"schedule NIGHTLY fired 2026-03-30T04:00:00Z (0.000 s late): trigger-batch "
        f"{command_id('NIGHTLY', slots[1])}"
    )


def test_a_slot_that_fell_due_while_starting_is_sent_with_the_slots_id(
    nightly: Schedule,
) -> None:
    slot = utc(2026, 3, 30, 4)
    clock = Clock(slot + timedelta(seconds=42.5))
    scheduler, sender = beat_on([nightly], clock, Claims())
    run_until(clock, clock.now + timedelta(seconds=1), scheduler)
    assert [(s.at, s.id) for s in sender.sent] == [
        (slot + timedelta(seconds=42.5), command_id("NIGHTLY", slot))
    ]


def test_a_slot_older_than_the_grace_at_start_is_not_sent(nightly: Schedule) -> None:
    clock = Clock(utc(2026, 3, 30, 4, 1, 1))
    scheduler, sender = beat_on([nightly], clock, Claims())
    run_until(clock, utc(2026, 3, 31, 4, 0, 1), scheduler)
    assert [s.id for s in sender.sent] == [command_id("NIGHTLY", utc(2026, 3, 31, 4))]


def test_a_restart_in_the_fire_minute_does_not_send_again(
    nightly: Schedule, logs: pytest.LogCaptureFixture
) -> None:
    claims = Claims()
    clock = Clock(utc(2026, 3, 30, 3, 59))
    first, sent_first = beat_on([nightly], clock, claims)
    run_until(clock, utc(2026, 3, 30, 4, 0, 10), first)
    first.close()
    again, sent_again = beat_on([nightly], clock, claims)  # a new process, 10 s later
    run_until(clock, utc(2026, 3, 30, 4, 2), again)
    assert len(sent_first.sent) == 1 and sent_again.sent == []
    assert outcomes(logs.records) == [
        ("2026-03-30T04:00:00Z", "sent"),
        ("2026-03-30T04:00:00Z", "claimed"),
    ]


def test_two_schedulers_send_each_fire_once(nightly: Schedule) -> None:
    claims = Claims()
    clock = Clock(utc(2026, 3, 26, 12))
    one, sent_one = beat_on([nightly], clock, claims)
    two, sent_two = beat_on([nightly], clock, claims)
    run_until(clock, utc(2026, 4, 3, 12), one, two)
    ids = sorted(s.id or "" for s in sent_one.sent + sent_two.sent)
    slots = [utc(2026, 3, day, 5 if day == 27 else 4) for day in (27, 30, 31)]
    slots += [utc(2026, 4, day, 4) for day in (1, 2, 3)]
    assert ids == sorted(command_id("NIGHTLY", t) for t in slots)


def test_a_stall_past_the_grace_is_logged_as_missed_and_the_next_fire_goes(
    nightly: Schedule, logs: pytest.LogCaptureFixture
) -> None:
    clock = Clock(utc(2026, 3, 30, 3, 59))
    scheduler, sender = beat_on([nightly], clock, Claims(), grace=60)
    scheduler.tick()
    clock.now = utc(2026, 3, 30, 4, 5)  # the process was frozen through the fire
    run_until(clock, utc(2026, 3, 31, 4, 1), scheduler)
    assert [s.id for s in sender.sent] == [command_id("NIGHTLY", utc(2026, 3, 31, 4))]
    assert outcomes(logs.records) == [
        ("2026-03-30T04:00:00Z", "missed"),
        ("2026-03-31T04:00:00Z", "sent"),
    ]


def test_without_redis_it_sends_anyway(nightly: Schedule, logs: pytest.LogCaptureFixture) -> None:
    clock = Clock(utc(2026, 3, 30, 3, 59))
    scheduler, sender = beat_on([nightly], clock, Claims(answers=False))
    run_until(clock, utc(2026, 3, 30, 4, 1), scheduler)
    assert len(sender.sent) == 1
    assert any("sent without a claim" in r.getMessage() for r in logs.records)


def test_a_failed_publish_releases_the_claim_and_the_next_fire_goes(
    nightly: Schedule, logs: pytest.LogCaptureFixture
) -> None:
    claims = Claims()
    clock = Clock(utc(2026, 3, 30, 3, 59))
    scheduler, sender = beat_on([nightly], clock, claims)
    sender.failures = 1
    run_until(clock, utc(2026, 3, 31, 4, 1), scheduler)
    first, second = "NIGHTLY:2026-03-30T04:00:00Z", "NIGHTLY:2026-03-31T04:00:00Z"
    assert claims.calls == [
        ("claim", first),
        ("release", first),
        ("claim", second),
        ("sent", second),
    ]
    assert [s.id for s in sender.sent] == [command_id("NIGHTLY", utc(2026, 3, 31, 4))]
    assert outcomes(logs.records) == [
        ("2026-03-30T04:00:00Z", "failed"),
        ("2026-03-31T04:00:00Z", "sent"),
    ]
    failed = next(r for r in logs.records if getattr(r, "outcome", "") == "failed")
    assert failed.levelno == logging.ERROR and "RabbitMQ went away" in failed.getMessage()


def test_each_fire_is_counted_by_outcome_and_the_last_sent_slot_kept(nightly: Schedule) -> None:
    claims = Claims()
    clock = Clock(utc(2026, 3, 30, 3, 59))
    with installed(Metrics()) as counted:
        one, sent_one = beat_on([nightly], clock, claims)
        two, _ = beat_on([nightly], clock, claims)
        sent_one.failures = 1  # Monday: one fails and releases the slot, two sends it
        run_until(clock, utc(2026, 3, 31, 4, 1), one, two)  # Tuesday: one sends, two skips
        clock.now = utc(2026, 4, 1, 4, 5)  # both frozen through Wednesday's fire
        run_until(clock, utc(2026, 4, 1, 4, 6), one, two)

    def fires(outcome: str) -> float | None:
        labels = {"schedule": "NIGHTLY", "outcome": outcome}
        return counted.registry.get_sample_value("flowgate_scheduler_fires_total", labels)

    assert {o: fires(o) for o in ("sent", "claimed", "failed", "missed")} == {
        "sent": 2,
        "claimed": 1,
        "failed": 1,
        "missed": 2,
    }
    last = counted.registry.get_sample_value(
        "flowgate_scheduler_last_fire_timestamp_seconds", {"schedule": "NIGHTLY"}
    )
    assert last == utc(2026, 3, 31, 4).timestamp()
