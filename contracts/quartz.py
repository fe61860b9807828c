"""Quartz cron expressions, checked before a command is sent.

Robusta's `quartzDef` is a Quartz cron expression: the field is named after Quartz, and the
example in Robusta's document, `0 6 6 ? * FR`, has Quartz's seconds field and `?`. Its `FR` is
not a Quartz day name, though (Quartz reads three letters, SUN-SAT, and refuses `FR`), so that
example is refused here, with a hint: `FRI`. This module checks an expression against Quartz's
own rules (the `CronExpression` documentation of the Quartz scheduler): 6 or 7 fields separated
by spaces or tabs, in this order,

    seconds  minutes  hours  day-of-month  month  day-of-week  [year]
    0-59     0-59     0-23   1-31          1-12   1-7          1970-2199
                                           JAN-DEC SUN-SAT (1 = SUN)

each a comma-separated list of `*`, a value, a range `a-b` (a range may wrap: `22-2`,
`NOV-FEB`) or a step (`*/n`, `a/n`, `a-b/n`), plus the special forms: `?` (no specific value,
day-of-month or day-of-week only, and exactly one of the two must be `?`), in day-of-month
`L`, `L-n` (n <= 30), `nW`, `LW` and `L-nW`, in day-of-week `L`, `nL` and `n#k` (k 1-5).
Names and letters are case-insensitive.

Where Quartz's documentation forbids something its parser lets through, the documentation wins,
so an expression never means something other than what it says:
- `W` only with a single day ("not a range or list of days");
- `L` and `#` not in a list ("confusing/unexpected results"; "only one expression");
- no step after a name (`MON-FRI/2`): Quartz's parser silently drops it.

A year range must not wrap (Quartz refuses it). The error says which field and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["QuartzCronError", "check_quartz_cron"]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_NUMBER = re.compile(r"[0-9]+")
_WORD = re.compile(r"[A-Z]+")
_SEPARATORS = re.compile(r"[ \t]+")


class QuartzCronError(ValueError):
    """Why an expression is not a Quartz cron expression (which field, and what is wrong)."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    max_step: int
    names: tuple[str, ...] = ()  # names[0] is `low`, names[1] is `low + 1`, ...
    question: bool = False  # `?` allowed
    wraps: bool = True  # a range a-b with a > b wraps round
    note: str = ""

    def number_of(self, name: str) -> int | None:
        return self.low + self.names.index(name) if name in self.names else None

    def describe(self) -> str:
        text = f"{self.low}-{self.high}{self.note}"
        if self.names:
            text += f" or {self.names[0]}-{self.names[-1]}"
        return text


_FIELDS = (
    _Field("seconds", 0, 59, 59),
    _Field("minutes", 0, 59, 59),
    _Field("hours", 0, 23, 23),
    _Field("day-of-month", 1, 31, 31, question=True),
    _Field("month", 1, 12, 12, names=_MONTHS),
    _Field("day-of-week", 1, 7, 7, names=_DAYS, question=True, note=" (1 = SUN)"),
    _Field("year", 1970, 2199, 229, wraps=False),
)
_DAY_OF_MONTH, _DAY_OF_WEEK = _FIELDS[3], _FIELDS[5]


class _Refused(Exception):
    """One field's reason; `check_quartz_cron` adds which field it was."""


def check_quartz_cron(expression: str) -> str:
    """`expression` unchanged when Quartz would read it as written, else `QuartzCronError`."""
    parts = [p for p in _SEPARATORS.split(expression.strip(" \t")) if p]
    if len(parts) not in (6, 7):
        raise QuartzCronError(
            f"a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month "
            f"month day-of-week [year]), not {len(parts)}"
        )
    for number, (spec, text) in enumerate(zip(_FIELDS, parts, strict=False), start=1):
        try:
            _check_field(spec, text.upper())
        except _Refused as why:
            raise QuartzCronError(f"field {number} ({spec.name}) {text!r}: {why}") from None
    day_of_month, day_of_week = parts[3], parts[5]
    if day_of_month == day_of_week == "?":
        raise QuartzCronError("day-of-month and day-of-week are both '?': give one of them")
    if "?" not in (day_of_month, day_of_week):
        raise QuartzCronError(
            f"one of day-of-month ({day_of_month!r}) and day-of-week ({day_of_week!r}) must "
            "be '?': Quartz does not support giving both"
        )
    return expression


def _check_field(spec: _Field, text: str) -> None:
    if text == "?":
        if not spec.question:
            raise _Refused("'?' is allowed only in day-of-month and day-of-week")
        return
    items = text.split(",")
    if any(not item for item in items):
        raise _Refused("an empty item in the list")
    for item in items:
        if item == "?":
            raise _Refused("'?' must stand alone")
        if len(items) > 1:
            _alone(spec, item)
        if spec is _DAY_OF_MONTH and _day_of_month_special(item):
            continue
        if spec is _DAY_OF_WEEK and _day_of_week_special(item):
            continue
        _plain(spec, item)


def _alone(spec: _Field, item: str) -> None:
    """The special forms Quartz's documentation allows only as the field's one item."""
    if spec is _DAY_OF_MONTH and "W" in item:
        raise _Refused(f"'W' needs a single day, not a list ({item!r})")
    if spec in (_DAY_OF_MONTH, _DAY_OF_WEEK) and "L" in item:
        raise _Refused(f"'L' cannot be combined with other values in a list ({item!r})")
    if spec is _DAY_OF_WEEK and "#" in item:
        raise _Refused(f"'#' cannot be combined with other days in a list ({item!r})")


def _day_of_month_special(item: str) -> bool:
    """`L`, `L-n`, `LW`, `L-nW`, `nW`: True when `item` is one of them (and valid)."""
    if item.startswith("L"):
        rest = item[1:]
        if rest.endswith("W"):
            rest = rest[:-1]
        if rest == "":
            return True
        if rest.startswith("-") and _NUMBER.fullmatch(rest[1:]):
            if int(rest[1:]) > 30:
                raise _Refused("the offset from the last day ('L-n') must be at most 30")
            return True
        raise _Refused("'L' in day-of-month is 'L', 'L-n', 'LW' or 'L-nW'")
    if item.endswith("W"):
        day = item[:-1]
        if not _NUMBER.fullmatch(day):
            raise _Refused("'W' needs a single day of the month before it (e.g. '15W')")
        _bounded(_DAY_OF_MONTH, int(day))
        return True
    return False


def _day_of_week_special(item: str) -> bool:
    """`L`, `nL`, `n#k` (n a number 1-7 or a day name): True when `item` is one of them."""
    if item == "L":
        return True
    if "#" in item:
        day, _, nth = item.partition("#")
        _value(_DAY_OF_WEEK, day)
        if not _NUMBER.fullmatch(nth) or not 1 <= int(nth) <= 5:
            raise _Refused("'#' must be followed by a number 1-5 (the nth day of the month)")
        return True
    if item.endswith("L") and item[:-1] and "-" not in item and "/" not in item:
        _value(_DAY_OF_WEEK, item[:-1])
        return True
    return False


def _plain(spec: _Field, item: str) -> None:
    """`*`, `v`, `a-b`, each optionally followed by `/step`."""
    base, slash, step = item.partition("/")
    if slash:
        if not _NUMBER.fullmatch(step):
            raise _Refused(f"'/' must be followed by a number ({item!r})")
        if not 1 <= int(step) <= spec.max_step:
            raise _Refused(f"the step /{step} must be 1-{spec.max_step}")
        if _WORD.search(base):
            raise _Refused(
                f"a step after a name ({item!r}) is silently ignored by Quartz: "
                "write the range in numbers"
            )
    if base == "*":
        return
    if not base:
        raise _Refused(f"'/' needs '*' or a start value before it ({item!r})")
    first, dash, last = base.partition("-")
    start = _value(spec, first)
    if not dash:
        return
    if not last:
        raise _Refused(f"the range {base!r} has no end")
    if bool(_WORD.fullmatch(first)) != bool(_WORD.fullmatch(last)):
        raise _Refused(f"a range is two names or two numbers, not both ({base!r})")
    end = _value(spec, last)
    if end < start and not spec.wraps:
        raise _Refused(f"the range {base} ends before it starts")


def _value(spec: _Field, text: str) -> int:
    if _NUMBER.fullmatch(text):
        return _bounded(spec, int(text))
    number = spec.number_of(text)
    if number is not None:
        return number
    if not text:
        raise _Refused("a value is missing")
    if spec.names and _WORD.fullmatch(text):
        raise _Refused(f"{text!r} is not {spec.describe()}{_did_you_mean(spec, text)}")
    raise _Refused(f"{text!r} is not a value: {spec.describe()}")


def _bounded(spec: _Field, value: int) -> int:
    if not spec.low <= value <= spec.high:
        raise _Refused(f"{value} is out of range: {spec.describe()}")
    return value


def _did_you_mean(spec: _Field, text: str) -> str:
    """A hint for a name spelt otherwise (`FR`, `FRIDAY`): Quartz reads three letters only."""
    close = [n for n in spec.names if n.startswith(text[:3])] if len(text) >= 2 else []
    return f" (did you mean {close[0]}?)" if len(close) == 1 else ""
