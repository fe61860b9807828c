"""Log lines (`workers/logs.py`): JSON lines or text, the command's fields on every line about
it, third-party loggers kept quiet, and one line per thing that happened to a command."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from contracts import ErrorInfo, ErrorKind, EventData, EventKind
from tests.unit.test_mutants_settlement import answer, kit
from workers import logs
from workers.errors import VendorUnavailable
from workers.outcome import Fail
from workers.publisher import Context, Publisher
from workers.settlement import Work


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restored() -> Iterator[None]:
    """`configure` changes the root logger and some others: put them back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = (*logs._THIRD_PARTY, *logs._HTTP_CLIENTS)
    named = {n: logging.getLogger(n).level for n in names}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in named.items():
            logging.getLogger(name).setLevel(old)


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("flowgate.worker", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_message_and_every_field() -> None:
    line = logs.JsonFormatter().format(
        _record("consumed %s", "trigger-batch", command_id="c-1", vendor_ref={"run": "7"})
    )
    parsed = json.loads(line)
    assert parsed["msg"] == "consumed trigger-batch"
    assert (parsed["level"], parsed["logger"]) == ("INFO", "flowgate.worker")
    assert parsed["command_id"] == "c-1" and parsed["vendor_ref"] == {"run": "7"}
    assert parsed["ts"].endswith("+00:00")
    assert "args" not in parsed and "\n" not in line


def test_a_json_line_carries_the_traceback_inside_the_line() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        record = logging.LogRecord(
            "flowgate", logging.ERROR, __file__, 1, "bug", (), exc_info=sys.exc_info()
        )
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and "KeyError" in json.loads(line)["exc"]


def test_a_text_line_reads_well_with_its_fields_after_it() -> None:
    text = logs.TextFormatter().format(
        _record("consumed", command_id="c-1", attempt=2, vendor_ref={"run": "7"})
    )
    assert "INFO flowgate.worker: consumed  command_id=c-1 attempt=2 vendor_ref=run:7" in text


@pytest.mark.usefixtures("restored")
@pytest.mark.parametrize(
    ("log_format", "stream", "json_lines"),
    [
        ("auto", io.StringIO(), True),
        ("auto", _Tty(), False),
        ("json", _Tty(), True),
        ("text", io.StringIO(), False),
    ],
)
def test_auto_is_json_unless_stderr_is_a_terminal(
    log_format: logs.LogFormat, stream: io.StringIO, json_lines: bool
) -> None:
    logs.configure("INFO", log_format, stream=stream, force=True)
    logging.getLogger("flowgate.test").info("one line")
    # This test's lines only: under mutmut's order, another test's leftovers logged beside it
    # (and once the same record twice), which says nothing of the format.
    lines = [x for x in stream.getvalue().splitlines() if "flowgate.test" in x]
    assert lines
    for line in lines:
        if json_lines:
            assert json.loads(line)["msg"] == "one line"
        else:
            assert line.endswith("INFO flowgate.test: one line")


@pytest.mark.usefixtures("restored")
def test_third_party_loggers_are_quiet_unless_debug() -> None:
    logs.configure("INFO", "json", stream=io.StringIO(), force=True)
    assert logging.getLogger("aio_pika").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("celery").getEffectiveLevel() == logging.WARNING
    logs.configure("DEBUG", "json", stream=io.StringIO(), force=True)
    assert logging.getLogger("aio_pika").getEffectiveLevel() == logging.DEBUG
    # Request URLs and wire dumps: never, whatever the level.
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    logs.configure("INFO", "json", quiet_amqp=True, stream=io.StringIO(), force=True)
    assert logging.getLogger("aiormq").getEffectiveLevel() == logging.CRITICAL


@pytest.mark.usefixtures("restored")
def test_logging_set_up_already_is_left_alone_as_basicconfig_would() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    assert before, "pytest's own handlers"
    assert logs.configure("INFO", "json", stream=io.StringIO()) is None
    assert root.handlers == before
    assert logging.getLogger("celery").getEffectiveLevel() == logging.WARNING


@pytest.mark.usefixtures("restored")
def test_every_line_logged_while_a_message_is_settled_has_its_fields() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream, force=True)
    work = Work(None, "flowgate.cmd.trigger-batch", attempt=3)  # type: ignore[arg-type]
    work.answer = answer(vendor_ref={"batch_run_id": "B1_1"})
    token = logs.bind(work)
    try:
        logging.getLogger("flowgate.anything").info("said inside")
    finally:
        logs.unbind(token)
    logging.getLogger("flowgate.anything").info("said outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["command_id"] == answer().command_id
    assert inside["command_type"] == "trigger-batch" and inside["connection"] == "pbsm-prod"
    assert inside["attempt"] == 3 and inside["vendor_ref"] == {"batch_run_id": "B1_1"}
    assert "command_id" not in outside


# --- one line per thing that happened ---------------------------------------------------------


def _events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, int]]:
    return [
        (r.__dict__["event"], r.name, r.levelno) for r in caplog.records if "event" in r.__dict__
    ]


async def test_a_retry_and_a_dead_letter_are_each_one_line_with_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    k = kit()
    await k.run(VendorUnavailable("503", http_status=503), answer=answer(), attempt=2)
    rejected = Fail(ErrorInfo(kind=ErrorKind.REJECTED, message="400 nope"), dead_letter=True)
    await k.run(rejected, answer=answer())
    assert _events(caplog) == [
        ("retry", "flowgate", logging.INFO),
        ("dead_letter", "flowgate.publisher", logging.WARNING),
        ("failed", "flowgate.publisher", logging.WARNING),
    ]
    retry, letter, failed = (r for r in caplog.records if "event" in r.__dict__)
    assert retry.__dict__["reason"] == "http_503" and retry.__dict__["delay"] > 0
    assert retry.__dict__["attempt"] == 2
    assert retry.__dict__["command_id"] == answer().command_id
    assert letter.__dict__["error_kind"] == "rejected"
    assert failed.__dict__["error_kind"] == "rejected"


async def test_an_event_line_never_holds_the_result(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    par = "https://objectstorage.example.com/p/SECRET-PAR-TOKEN/n/ns/b/bucket/o/report.csv"
    data = EventData(
        command_id="c-9",
        command_type="generate-report",
        connection="default",
        vendor_ref={"report_instance_id": "9"},
        status="COMPLETE",
        result={"url": par},
    )
    await Publisher(kit().broker).event(EventKind.SUCCEEDED, data, context=Context())
    [record] = caplog.records
    assert record.__dict__["event"] == "succeeded" and record.__dict__["status"] == "COMPLETE"
    assert "SECRET-PAR-TOKEN" not in logs.JsonFormatter().format(record)
    assert "SECRET-PAR-TOKEN" not in logs.TextFormatter().format(record)
