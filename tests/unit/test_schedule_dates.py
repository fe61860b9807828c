"""Date expressions of a schedule's data (workers/schedule_dates.py)."""

from __future__ import annotations

from datetime import date

import pytest

from workers.schedule_dates import (
    EXPRESSIONS,
    DateExpressionError,
    business_day,
    render,
    render_data,
)

MONDAY = date(2026, 3, 30)
FRIDAY = date(2026, 3, 27)
SATURDAY = date(2026, 3, 28)
SUNDAY = date(2026, 3, 29)


@pytest.mark.parametrize(
    ("today", "previous", "following"),
    [
        (MONDAY, FRIDAY, date(2026, 3, 31)),
        (FRIDAY, date(2026, 3, 26), MONDAY),
        (SATURDAY, FRIDAY, MONDAY),
        (SUNDAY, FRIDAY, MONDAY),
        (date(2026, 3, 31), MONDAY, date(2026, 4, 1)),
    ],
    ids=["monday", "friday", "saturday", "sunday", "tuesday"],
)
def test_business_days_are_monday_to_friday(today: date, previous: date, following: date) -> None:
    assert render("{{ previous_business_day }}", today) == previous.isoformat()
    assert render("{{ next_business_day }}", today) == following.isoformat()


def test_holidays_are_not_business_days() -> None:
    easter_monday, good_friday = date(2026, 4, 6), date(2026, 4, 3)
    holidays = {easter_monday, good_friday}
    tuesday = date(2026, 4, 7)
    assert business_day(tuesday, -1, holidays) == date(2026, 4, 2)
    assert business_day(date(2026, 4, 2), 1, holidays) == tuesday
    # A holiday only changes business days: today, yesterday and tomorrow stay calendar days.
    assert render("{{ yesterday }}", tuesday, holidays) == "2026-04-06"


def test_calendar_days_and_formats() -> None:
    today = date(2026, 1, 1)
    assert render("{{ today }}", today) == "2026-01-01"
    assert render("{{yesterday}}", today) == "2025-12-31"
    assert render("{{ tomorrow | %d/%m/%Y }}", today) == "02/01/2026"
    assert render("{{ previous_business_day | %Y%m%d }}", today) == "20251231"
    assert render("run-{{ today | %Y-%m }}-{{ next_business_day|%a }}!", today) == (
        "run-2026-01-Fri!"
    )
    assert render("no expression, {single} braces", today) == "no expression, {single} braces"
    assert set(EXPRESSIONS) == {
        "today",
        "yesterday",
        "tomorrow",
        "previous_business_day",
        "next_business_day",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ previous_busines_day }}", "unknown date expression '{{ previous_busines_day }}'"),
        ("{{ now }}", "unknown date expression"),
        ("{{}}", "unknown date expression"),
        ("{{ today | }}", "no strftime format after '|'"),
        ("{{ today", "'{{' without its '}}'"),
        ("{{ today }} and {{ today", "'{{' without its '}}'"),
    ],
)
def test_a_bad_expression_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("|", r"\|").replace("{", r"\{")):
        render(text, MONDAY)


def test_render_data_renders_string_values_anywhere_and_says_where_it_failed() -> None:
    data = {
        "batch": "B{{ today | %d }}",
        "params": {"$FICMISDATE$": "{{ previous_business_day }}", "{{ today }}": "key stays"},
        "list": ["{{ tomorrow }}", 3, True, None, {"deep": "{{ yesterday }}"}],
        "count": 2,
    }
    assert render_data(data, MONDAY) == {
        "batch": "B30",
        "params": {"$FICMISDATE$": "2026-03-27", "{{ today }}": "key stays"},
        "list": ["2026-03-31", 3, True, None, {"deep": "2026-03-29"}],
        "count": 2,
    }
    with pytest.raises(DateExpressionError, match=r"^data\.list\[1\]\.x: unknown date"):
        render_data({"list": ["ok", {"x": "{{ someday }}"}]}, MONDAY, where="data")
