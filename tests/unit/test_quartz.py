"""The Quartz cron check behind `schedule.quartz_cron` (Robusta's `quartzDef`)."""

from __future__ import annotations

import pytest

from contracts.quartz import QuartzCronError, check_quartz_cron

# Every example of the Quartz scheduler's CronTrigger tutorial, and the forms its
# CronExpression documentation describes (wrapping ranges, names, `L-n`, `nL`, `n#k`).
QUARTZ_EXAMPLES = [
    "0 0 12 * * ?",
    "0 15 10 ? * *",
    "0 15 10 * * ?",
    "0 15 10 * * ? *",
    "0 15 10 * * ? 2005",
    "0 * 14 * * ?",
    "0 0/5 14 * * ?",
    "0 0/5 14,18 * * ?",
    "0 0-5 14 * * ?",
    "0 10,44 14 ? 3 WED",
    "0 15 10 ? * MON-FRI",
    "0 15 10 15 * ?",
    "0 15 10 L * ?",
    "0 15 10 L-2 * ?",
    "0 15 10 ? * 6L",
    "0 15 10 ? * 6L 2002-2005",
    "0 15 10 ? * 6#3",
    "0 0 12 1/5 * ?",
    "0 11 11 11 11 ?",
    "0 15 10 LW * ?",
    "0 15 10 L-3W * ?",
    "0 15 10 15W * ?",
    "0 0 14-6 ? * FRI-MON",
    "0 0 0 ? NOV-FEB SUN",
    "0 0 12 ? jan-dec sun",
    "0 0 12 ? * FRIL",
    "0 0 12 ? * fri#2",
    "0 0 12 ? * L",
    "*/15 * * * * ?",
    "0 0 12 ? * 2-6/2",
    "0 0 12 1,15 JAN,JUL ? 2030/2",
    "0  0\t12 * * ?",
    "0 6 6 ? * FRI",
]


@pytest.mark.parametrize("expression", QUARTZ_EXAMPLES)
def test_quartz_documentation_examples_pass_unchanged(expression: str) -> None:
    assert check_quartz_cron(expression) == expression


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        # Robusta's own example: Quartz reads three-letter day names only.
        ("0 6 6 ? * FR", "field 6 (day-of-week) 'FR': 'FR' is not 1-7 (1 = SUN) or SUN-SAT "
         "(did you mean FRI?)"),
        ("0 0 0 ? * FRIDAY", "did you mean FRI?"),
        ("0 0 0 * JUNE ?", "field 5 (month) 'JUNE': 'JUNE' is not 1-12 or JAN-DEC "
         "(did you mean JUN?)"),
        # Unix cron: five fields, no seconds.
        ("* * * * *", "has 6 or 7 fields (seconds minutes hours day-of-month month "
         "day-of-week [year]), not 5"),
        ("0 0 0 * * ? 2030 1", "not 8"),
        ("", "not 0"),
        ("0 0 12 * * *", "one of day-of-month ('*') and day-of-week ('*') must be '?'"),
        ("0 0 12 ? * ?", "day-of-month and day-of-week are both '?'"),
        ("0 ? * * * ?", "field 2 (minutes) '?': '?' is allowed only in day-of-month and "
         "day-of-week"),
        ("0 0 0 ?,1 * ?", "'?' must stand alone"),
        ("60 * * * * ?", "field 1 (seconds) '60': 60 is out of range: 0-59"),
        ("0 60 * * * ?", "field 2 (minutes) '60': 60 is out of range: 0-59"),
        ("0 0 24 * * ?", "field 3 (hours) '24': 24 is out of range: 0-23"),
        ("0 0 0 0 * ?", "field 4 (day-of-month) '0': 0 is out of range: 1-31"),
        ("0 0 0 ? 13 *", "field 5 (month) '13': 13 is out of range: 1-12"),
        ("0 0 0 ? * 0", "field 6 (day-of-week) '0': 0 is out of range: 1-7 (1 = SUN)"),
        ("0 0 0 ? * * 1969", "field 7 (year) '1969': 1969 is out of range: 1970-2199"),
        ("0 0 0 ? * * 2010-2005", "the range 2010-2005 ends before it starts"),
        ("0 0/60 * * * ?", "the step /60 must be 1-59"),
        ("0 0 0/0 * * ?", "the step /0 must be 1-23"),
        ("0 0 0 ? * 1/8", "the step /8 must be 1-7"),
        ("0 /5 * * * ?", "'/' needs '*' or a start value before it"),
        ("0 5/ * * * ?", "'/' must be followed by a number"),
        ("0 5- * * * ?", "the range '5-' has no end"),
        ("0 0 0 ,1 * ?", "an empty item in the list"),
        ("0 0 0 1W,15 * ?", "'W' needs a single day, not a list"),
        ("0 0 0 1-5W * ?", "'W' needs a single day of the month before it"),
        ("0 0 0 32W * ?", "32 is out of range: 1-31"),
        ("0 0 0 L-31 * ?", "the offset from the last day ('L-n') must be at most 30"),
        ("0 0 0 LX * ?", "'L' in day-of-month is 'L', 'L-n', 'LW' or 'L-nW'"),
        ("0 0 0 1,L * ?", "'L' cannot be combined with other values in a list"),
        ("0 0 0 ? * 6L,2", "'L' cannot be combined with other values in a list"),
        ("0 0 0 ? * 6#6", "'#' must be followed by a number 1-5"),
        ("0 0 0 ? * 6#1,2#1", "'#' cannot be combined with other days in a list"),
        ("0 0 0 ? * #3", "a value is missing"),
        ("0 0 0 15# * ?", "'15#' is not a value"),
        ("0 0 0 ? * MON-FRI/2", "a step after a name ('MON-FRI/2') is silently ignored"),
        ("0 0 0 ? * MON-5", "a range is two names or two numbers, not both"),
        ("L 0 0 * * ?", "field 1 (seconds) 'L': 'L' is not a value: 0-59"),
        ("0 0 0 ? * MON\n", "is not a value"),
        ("0 0 0 ? * \u0661", "is not a value"),  # ARABIC-INDIC DIGIT ONE: a digit, not ASCII
    ],
)  # fmt: skip
def test_bad_expressions_say_which_field_and_why(expression: str, reason: str) -> None:
    with pytest.raises(QuartzCronError) as raised:
        check_quartz_cron(expression)
    assert reason in str(raised.value)
    assert isinstance(raised.value, ValueError)  # pydantic turns it into a validation error
