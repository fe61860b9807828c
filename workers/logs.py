"""Log lines: one per thing that happened to a command, with who it is about as fields.

Each line a command causes carries `command_id`, `command_type`, `connection`, `vendor_ref`
and `attempt`: the settler binds the message it is settling (`bind`), and `fields()` (at the
call sites) or `CommandFields` (on the process's handler, for every other line) read them
from it. The lines themselves say what happened, with an `event` field:

    consumed      a command was taken from its queue (worker)
    vendor_call   one HTTP call: `vendor`, `operation`, `status`, `duration`
    accepted, progress, succeeded, failed, cancelled
                  an event published (`status`, `error_kind`)
    retry         sent round the delay queues: `reason`, `delay`
    dead_letter   kept in flowgate.dead-letters: `error_kind`, `reason`

`configure` (called once, by the entry point) writes JSON lines (`JsonFormatter`) unless
stderr is a terminal (`log_format = "auto"`), a readable line there (`TextFormatter`).
A line never holds a secret: messages are built from statuses and error texts, never from
headers, bodies or URLs with credentials, and events' results (a PAR URL) are never logged.

A small formatter of our own rather than python-json-logger: it is twenty lines, and the
library's extra (renaming, timestamp and serializer options) is nothing flowgate uses.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TextIO

__all__ = [
    "CommandFields",
    "JsonFormatter",
    "TextFormatter",
    "bind",
    "configure",
    "fields",
    "unbind",
]

LogFormat = Literal["auto", "json", "text"]


class _Subject(Protocol):
    def log_fields(self) -> dict[str, Any]: ...


_SUBJECT: ContextVar[_Subject | None] = ContextVar("flowgate_log_subject", default=None)

# What every LogRecord has; anything else on a record is a field of ours (`extra=`).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# The libraries whose INFO and DEBUG chatter stays out unless asked for with DEBUG.
_THIRD_PARTY = (
    "aio_pika",
    "aiormq",
    "celery",
    "kombu",
    "amqp",
    "redis",
    "uvicorn",
    "asyncio",
    "urllib3",
    "opentelemetry",
)
# Log every request's URL at INFO, and their DEBUG is the wire: never, whatever the level.
_HTTP_CLIENTS = ("httpx", "httpcore")


def bind(subject: _Subject) -> Token[_Subject | None]:
    """Lines logged from here on (in this task) are about `subject` (a `Work`)."""
    return _SUBJECT.set(subject)


def unbind(token: Token[_Subject | None]) -> None:
    _SUBJECT.reset(token)


def fields(**more: Any) -> dict[str, Any]:
    """`extra=` for a line about the message being settled, plus `more`."""
    subject = _SUBJECT.get()
    if subject is None:
        return more
    found = subject.log_fields()
    found.update(more)
    return found


class CommandFields(logging.Filter):
    """Adds the bound message's fields to every record that does not have them."""

    def filter(self, record: logging.LogRecord) -> bool:
        subject = _SUBJECT.get()
        if subject is not None:
            for name, value in subject.log_fields().items():
                if name not in record.__dict__:
                    setattr(record, name, value)
        return True


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields, what happened (`event`) first; an empty one (no status yet,
    no error) says nothing."""
    found = {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None and v != ""
    }
    if "event" in found:
        found = {"event": found.pop("event"), **found}
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC), level, logger, msg, the record's fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in _extra(record).items():
            line.setdefault(name, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message  key=value ...` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        extra = _extra(record)
        if extra:
            text += "  " + " ".join(f"{k}={_shown(v)}" for k, v in extra.items())
        return text


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def configure(
    level: str,
    log_format: LogFormat = "auto",
    *,
    quiet_amqp: bool = False,
    stream: TextIO | None = None,
    force: bool = False,
) -> logging.Handler | None:
    """The process's logging, once, at its entry point: one handler on stderr, JSON lines or
    text, third-party loggers at WARNING unless `level` is DEBUG (the AMQP client's at
    CRITICAL with `quiet_amqp`: a one-shot command says what went wrong in a line of its own).

    As `logging.basicConfig`, a root logger that already has handlers (whoever called `main`
    in process, a test runner) is left as it is, unless `force`; the handler added, or None."""
    debug = level.upper() == "DEBUG"
    for name in _THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    if quiet_amqp and not debug:
        for name in ("aio_pika", "aiormq"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in _HTTP_CLIENTS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if root.handlers and not force:
        return None
    stream = stream if stream is not None else sys.stderr
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(CommandFields())
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
