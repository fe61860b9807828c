"""Date expressions in a schedule's data: `{{ previous_business_day }}`, `{{ today | %Y%m%d }}`.

A string value anywhere in a schedule's `data` may hold any number of expressions, with text
around them (`"run-{{ today | %Y%m%d }}"`). Each is `{{ NAME }}` or `{{ NAME | FORMAT }}`,
FORMAT a `strftime` format (default `%Y-%m-%d`, the form PBSM's `$FICMISDATE$` takes). NAME is
one of `EXPRESSIONS`, a date counted from the fire time's date in the schedule's time zone,
never from the moment the scheduler evaluates it:

- `today`, `yesterday`, `tomorrow`: the fire date, the day before, the day after;
- `previous_business_day`, `next_business_day`: the nearest business day strictly before or
  after the fire date. Business days are Monday to Friday, less the schedule's `holidays` (a
  list of dates; no built-in calendar). From a Monday the previous one is the Friday before;
  from a Friday the next one is the Monday after.

`{{` always opens an expression: a string with `{{` that is not one is refused when the
schedule file is loaded, as is an unknown NAME.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import date, timedelta
from typing import Any

__all__ = [
    "DEFAULT_FORMAT",
    "EXPRESSIONS",
    "DateExpressionError",
    "business_day",
    "render",
    "render_data",
]

DEFAULT_FORMAT = "%Y-%m-%d"

_SATURDAY = 5


class DateExpressionError(ValueError):
    """A string of a schedule's data holds an expression that is not one of ours; the message
    starts with where it is (`data.params.$FICMISDATE$`)."""


def business_day(day: date, step: int, holidays: Collection[date] = ()) -> date:
    """The first business day `step` days (1 or -1) on from `day`, `day` itself excluded."""
    found = day + timedelta(days=step)
    while found.weekday() >= _SATURDAY or found in holidays:
        found += timedelta(days=step)
    return found


_Expression = Callable[[date, Collection[date]], date]

EXPRESSIONS: dict[str, _Expression] = {
    "today": lambda day, _: day,
    "yesterday": lambda day, _: day - timedelta(days=1),
    "tomorrow": lambda day, _: day + timedelta(days=1),
    "previous_business_day": lambda day, holidays: business_day(day, -1, holidays),
    "next_business_day": lambda day, holidays: business_day(day, 1, holidays),
}

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def render(text: str, today: date, holidays: Collection[date] = ()) -> str:
    """`text` with each expression replaced by its date; ValueError naming a bad one."""

    def one(match: re.Match[str]) -> str:
        name, bar, form = (part.strip() for part in match.group(1).partition("|"))
        if name not in EXPRESSIONS:
            raise ValueError(
                f"unknown date expression {match.group(0)!r} "
                f"(known: {', '.join(EXPRESSIONS)}, each with an optional '| FORMAT')"
            )
        if bar and not form:
            raise ValueError(f"{match.group(0)!r}: no strftime format after '|'")
        return EXPRESSIONS[name](today, holidays).strftime(form or DEFAULT_FORMAT)

    rendered = _EXPRESSION.sub(one, text)
    # What is left of `{{` was never closed: a typo, not text to send as it is.
    if "{{" in _EXPRESSION.sub("", text):
        raise ValueError("'{{' without its '}}'")
    return rendered


def render_data(value: Any, today: date, holidays: Collection[date] = (), where: str = "") -> Any:
    """`value` (a schedule's data) with every string value rendered; keys stay as they are.
    DateExpressionError says where a bad expression is."""
    if isinstance(value, str):
        try:
            return render(value, today, holidays)
        except ValueError as exc:
            raise DateExpressionError(f"{where}: {exc}" if where else str(exc)) from None
    if isinstance(value, dict):
        return {
            key: render_data(item, today, holidays, f"{where}.{key}" if where else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            render_data(item, today, holidays, f"{where}[{index}]")
            for index, item in enumerate(value)
        ]
    return value
