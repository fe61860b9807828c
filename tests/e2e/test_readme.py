"""Every shell example in README.md, run for real, so none of them can rot.

Every fenced block marked `sh` (or `shell`, `bash`, `console`) is split into commands: a command
goes on over the next line after a trailing backslash or while a quote is open. Each command runs
through the handler registered for its program in `HANDLERS`; any other command runs as written
(`sh -c`, from the repository root) and must exit 0 within `GENERIC_TIMEOUT` seconds. So a block
added to the README later is picked up without touching this file, and one that cannot run here
fails the test; nothing is skipped.

Allowlist (`NOT_RUN_AS_WRITTEN`), each entry with the check that replaces running it:

- `scripts/test`: the test command is this suite, and cannot run inside itself. Instead the test
  asserts that `.ci/run`, what CI runs on every push, calls `scripts/test`.

Long-running commands run in the background, bounded by timeouts: `amqp-consume` until it has
printed the event it is waiting for, `flowgate worker|poller|simulate|scheduler` until they log
that they are serving (with `--check` or `--help`, a role is a one-shot command). Then they get
SIGTERM (only processes this test started), and a flowgate role must exit 0.

RabbitMQ: every AMQP URL in a command must be exactly `README_AMQP_URL` (the local broker's
default vhost, as the README's examples write it). It is replaced, in the command's text, by the
session's private vhost (the `amqp_url` fixture) before the command runs; a command with any other
URL, or an `amqp-*` command without one, fails the test rather than touch the default vhost. Every
command also gets `FLOWGATE_AMQP_URL` (the private vhost), the simulators as every vendor's
default connection and an idempotency key prefix of its own. Programs that act on the shared
services directly (`REFUSED`) are never run: a README block using one needs a handler here.

The `amqp-publish` example runs against flowgate's worker and poller (in this process, on the
private vhost, against the simulators) and must end in a `succeeded` event; the `amqp-consume`
example is started first, the README's `amqp-publish` examples are published, and it must print
that `succeeded` event on a line of its own.

Two checks keep the prose honest too: every relative link in README.md and docs/*.md names a file
of this repository, and the status-call counts in `PollPolicy`'s docstring are the poller's own
(`next_poll_delay` with the defaults).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import fast_settings, running_system
from workers.poller.request import next_poll_delay
from workers.simulators import RunningSimulators
from workers.vendors._connection import PollPolicy

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SHELL_LANGUAGES = frozenset({"sh", "shell", "bash", "console"})

README_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"
"""How the README's examples reach the local broker; rewritten to the private vhost."""
_AMQP_URL = re.compile(r"amqps?://[^\s'\"]*")

GENERIC_TIMEOUT = 120.0
DEMO_TIMEOUT = 600.0  # scripts/demo installs first
EVENT_TIMEOUT = 60.0

NOT_RUN_AS_WRITTEN = {
    "scripts/test": "the test command is this suite; `.ci/run` must call it instead",
}
REFUSED = frozenset(
    {
        "rabbitmqctl",
        "rabbitmq-server",
        "rabbitmq-plugins",
        "rabbitmqadmin",
        "redis-cli",
        "docker",
        "podman",
        "systemctl",
        "service",
        "sudo",
        "kill",
        "pkill",
        "killall",
    }
)
# flowgate roles that serve until stopped, and the line each prints once it is serving.
SERVING = {
    "worker": "worker consuming",
    "poller": "poller consuming",
    "simulate": "serving on",
    "scheduler": "scheduler running",
}
# With one of these a serving role checks and exits instead.
ONE_SHOT = frozenset({"--check", "--help"})


# ------------------------------------------------------------------------------ the examples


@dataclass(frozen=True)
class ShellCommand:
    line: int
    text: str
    argv: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"

    @property
    def program(self) -> str:
        """The program run, past `VAR=value` assignments and `exec`; `./x` is `x`."""
        for word in self.argv:
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word) or word == "exec":
                continue
            return word.removeprefix("./")
        return ""

    def option(self, *names: str) -> str | None:
        """The value of the first of `names` given (`-e X`, `--exchange X`, `--exchange=X`)."""
        for index, word in enumerate(self.argv):
            for name in names:
                if word == name and index + 1 < len(self.argv):
                    return self.argv[index + 1]
                if name.startswith("--") and word.startswith(name + "="):
                    return word[len(name) + 1 :]
        return None


def _words(text: str) -> list[str]:
    # A backslash-newline is a line continuation to the shell: it vanishes.
    return shlex.split(text.replace("\\\n", ""), comments=True)


def _split(lines: list[str], first: int) -> list[ShellCommand]:
    commands: list[ShellCommand] = []
    pending: list[str] = []
    start = first
    for number, line in enumerate(lines, first):
        if not pending and not line.strip():
            continue
        if not pending:
            start = number
        pending.append(line)
        text = "\n".join(pending)
        if text.endswith("\\"):
            continue
        try:
            argv = _words(text)
        except ValueError:  # an open quote: the command goes on
            continue
        pending = []
        if argv:
            commands.append(ShellCommand(start, text, tuple(argv)))
    if pending:
        raise ValueError(f"README.md:{start}: shell command never ends (open quote?)")
    return commands


def readme_commands(text: str) -> list[ShellCommand]:
    """Every command of every shell block, with the README line it starts on."""
    commands: list[ShellCommand] = []
    block: list[str] | None = None
    language, first = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```\s*([\w+-]*)", line)
        if block is None:
            if fence:
                block, language, first = [], fence.group(1).lower(), number + 1
        elif fence and not fence.group(1):
            if language in SHELL_LANGUAGES:
                commands.extend(_split(block, first))
            block = None
        else:
            block.append(line)
    if block is not None:
        raise ValueError(f"README.md:{first - 1}: code block never closed")
    return commands


COMMANDS = readme_commands(README.read_text())


# ----------------------------------------------------------------------- running a command


@dataclass
class Context:
    amqp_url: str
    sims: RunningSimulators
    tmp_path: Path

    @property
    def vhost(self) -> str:
        return urlsplit(self.amqp_url).path.lstrip("/")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env["FLOWGATE_AMQP_URL"] = self.amqp_url
        env["FLOWGATE_IDEMPOTENCY__KEY_PREFIX"] = f"flowgate-test:{uuid.uuid4().hex[:8]}:"
        for vendor in ("INFORMATICA", "ROBUSTA", "TMF622", "PBSM"):
            env[f"FLOWGATE_{vendor}__DEFAULT__BASE_URL"] = self.sims.base_url
        return env

    def private(self, command: ShellCommand) -> str:
        """The command's text with every AMQP URL pointed at the private vhost."""
        assert self.vhost and self.vhost.lower() not in ("/", "%2f"), self.amqp_url
        found = _AMQP_URL.findall(command.text)
        for url in found:
            if url != README_AMQP_URL:
                pytest.fail(
                    f"{command.where}: AMQP URL {url!r} is not {README_AMQP_URL!r}, the form this "
                    "test rewrites to a private vhost; update README_AMQP_URL in "
                    "tests/e2e/test_readme.py if the README's form changed on purpose",
                    pytrace=False,
                )
        uses_amqp_tools = any(word.startswith("amqp-") for word in command.argv)
        if uses_amqp_tools and not found:
            pytest.fail(
                f"{command.where}: an amqp-tools command without --url would use the default "
                "vhost; give it the URL",
                pytrace=False,
            )
        text = _AMQP_URL.sub(lambda _: self.amqp_url, command.text)
        assert text.count(self.amqp_url) == len(found)
        return text


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the process group this test started (the command and its children)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    _signal_group(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        _signal_group(proc, signal.SIGKILL)
        await proc.wait()


async def _run(text: str, ctx: Context, *, timeout: float, where: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        text,
        cwd=REPO,
        env=ctx.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out = err = None
    with suppress(TimeoutError):
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if out is None or err is None or proc.returncode is None:
        await _stop(proc)
        pytest.fail(f"{where}: still running after {timeout:.0f} s", pytrace=False)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@asynccontextmanager
async def _background(
    text: str, ctx: Context, stderr_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The command in its own process group, stdout piped; stopped (SIGTERM) on the way out."""
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            text,
            cwd=REPO,
            env=ctx.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            await _stop(proc)


class Lines:
    """A background command's stdout, line by line, each read bounded by a deadline."""

    def __init__(self, proc: asyncio.subprocess.Process, where: str) -> None:
        assert proc.stdout is not None
        self._proc, self._stream, self._where = proc, proc.stdout, where
        self._buffer = b""

    async def next(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            chunk: bytes | None = None
            left = deadline - asyncio.get_running_loop().time()
            if left > 0:
                with suppress(TimeoutError):
                    chunk = await asyncio.wait_for(self._stream.read(65536), left)
            if not chunk:
                ended = "" if chunk is None else f" (it exited: {await self._proc.wait()})"
                pytest.fail(
                    f"{self._where}: no complete line in time{ended}; printed since the last "
                    f"newline: {self._buffer[-600:]!r}",
                    pytrace=False,
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace")


def _bindings(vhost: str, exchange: str) -> set[tuple[str, str]]:
    """(queue, routing key) of every binding from `exchange` in `vhost`."""
    columns = ("source_name", "destination_name", "routing_key")
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, *columns],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {(row[1], row[2]) for row in rows if len(row) == 3 and row[0] == exchange}


async def _wait_bound(vhost: str, exchange: str, key: str, before: set[tuple[str, str]]) -> None:
    """Wait until a queue that was not there `before` is bound to `exchange` with `key`."""
    async with asyncio.timeout(30):
        while True:
            new = await asyncio.to_thread(_bindings, vhost, exchange) - before
            if any(bound_key == key for _, bound_key in new):
                return
            await asyncio.sleep(0.2)


# -------------------------------------------------------------------------------- handlers


async def _ci_runs_it(command: ShellCommand, ctx: Context) -> None:
    """Allowlisted: not run here (see NOT_RUN_AS_WRITTEN); CI must run it."""
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK), f"{ci} is missing or not executable"
    calls = [ShellCommand(0, line, tuple(_words(line))) for line in ci.read_text().splitlines()]
    called = [call for call in calls if call.argv and call.program == command.program]
    assert called, (
        f"{command.where}: `{command.program}` is not run as written here "
        f"({NOT_RUN_AS_WRITTEN[command.program]}), and .ci/run does not call it"
    )


async def _demo(command: ShellCommand, ctx: Context) -> None:
    code, out, err = await _run(
        ctx.private(command), ctx, timeout=DEMO_TIMEOUT, where=command.where
    )
    assert code == 0, f"{command.where}: exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    assert "succeeded" in out, f"{command.where}: no succeeded event printed\n{out[-3000:]}"


def _published(command: ShellCommand) -> tuple[str, str]:
    """(command id, routing key) of an amqp-publish example."""
    body = command.option("-b", "--body")
    routing_key = command.option("-r", "--routing-key")
    assert body is not None and routing_key, f"{command.where}: no -b body or -r routing key"
    try:
        event = json.loads(body)
    except ValueError as exc:
        pytest.fail(f"{command.where}: the body is not JSON: {exc}", pytrace=False)
    assert event.get("type") == f"flowgate.{routing_key}", f"{command.where}: type/routing key"
    return str(event["id"]), routing_key


async def _publish(command: ShellCommand, ctx: Context) -> tuple[str, str]:
    """Run an amqp-publish example; its command id and type."""
    command_id, command_type = _published(command)
    code, out, err = await _run(ctx.private(command), ctx, timeout=60, where=command.where)
    assert code == 0, f"{command.where}: exit {code}\n{out}\n{err}"
    return command_id, command_type


async def _amqp_publish(command: ShellCommand, ctx: Context) -> None:
    settings = fast_settings(ctx.amqp_url, ctx.sims.base_url, store="redis")
    async with running_system(settings, ctx.sims.sims) as system:
        command_id, command_type = await _publish(command, ctx)
        terminal = await system.events.terminal(command_id, timeout=EVENT_TIMEOUT)
    assert terminal["type"] == f"flowgate.{command_type}.succeeded", terminal
    assert terminal["subject"] == command_id


async def _amqp_consume(command: ShellCommand, ctx: Context) -> None:
    publishes = [c for c in COMMANDS if c.program == "amqp-publish"]
    assert publishes, f"{command.where}: no amqp-publish example in the README to watch"
    exchange = command.option("-e", "--exchange")
    key = command.option("-r", "--routing-key")
    assert exchange and key, f"{command.where}: cannot tell which exchange and key it binds"
    settings = fast_settings(ctx.amqp_url, ctx.sims.base_url, store="redis")
    before = await asyncio.to_thread(_bindings, ctx.vhost, exchange)
    stderr = ctx.tmp_path / "amqp-consume.stderr"
    async with (
        running_system(settings, ctx.sims.sims) as system,
        _background(ctx.private(command), ctx, stderr) as consumer,
    ):
        await _wait_bound(ctx.vhost, exchange, key, before)
        waiting: dict[str, str] = {}
        for publish in publishes:
            command_id, command_type = await _publish(publish, ctx)
            waiting[command_id] = f"flowgate.{command_type}.succeeded"
        for command_id, expected in waiting.items():
            terminal = await system.events.terminal(command_id, timeout=EVENT_TIMEOUT)
            assert terminal["type"] == expected, terminal
        deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
        printed: list[str] = []
        lines = Lines(consumer, command.where)
        while waiting:
            line = await lines.next(deadline)
            printed.append(line)
            try:
                event = json.loads(line)  # one body per line, or this fails
            except ValueError:
                pytest.fail(
                    f"{command.where}: printed a line that is not one event: {line[:300]!r}\n"
                    f"stderr: {stderr.read_text()[-1000:]}",
                    pytrace=False,
                )
            assert isinstance(event, dict) and "type" in event, line
            if waiting.get(event.get("subject", "")) == event["type"]:
                del waiting[event["subject"]]
    assert printed


async def _flowgate(command: ShellCommand, ctx: Context) -> None:
    """A role that serves until stopped runs until it says it is serving, then gets SIGTERM
    and must exit 0; any other flowgate command runs as a generic one."""
    role = next((word for word in command.argv[1:] if word in SERVING), None)
    if ONE_SHOT.intersection(command.argv):
        role = None
    if role is None:
        await _generic(command, ctx)
        return
    text = ctx.private(command)
    shell = shlex.shlex(text.replace("\\\n", ""), posix=True, punctuation_chars=True)
    shell.commenters = "#"
    words = list(shell)
    assert not [w for w in words if w and set(w) <= set("();<>|&")], (
        f"{command.where}: a serving flowgate role with shell syntax needs a handler of its own"
    )
    env = ctx.env()
    while re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    # Run without a shell, so the signal and the exit code are flowgate's own.
    proc = await asyncio.create_subprocess_exec(
        *words,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = asyncio.get_running_loop().time() + GENERIC_TIMEOUT
        lines = Lines(proc, command.where)
        while SERVING[role] not in await lines.next(deadline):
            pass
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            await _stop(proc)
    assert code == 0, f"{command.where}: exit {code} after SIGTERM"


async def _generic(command: ShellCommand, ctx: Context) -> None:
    refused = REFUSED.intersection(command.argv)
    if refused:
        pytest.fail(
            f"{command.where}: {', '.join(sorted(refused))} acts on the shared services; "
            "give this command a handler in tests/e2e/test_readme.py",
            pytrace=False,
        )
    code, out, err = await _run(
        ctx.private(command), ctx, timeout=GENERIC_TIMEOUT, where=command.where
    )
    assert code == 0, f"{command.where}: exit {code}\n{out[-3000:]}\n{err[-3000:]}"


Handler = Callable[[ShellCommand, Context], Awaitable[None]]
HANDLERS: dict[str, Handler] = {
    "scripts/test": _ci_runs_it,
    "scripts/demo": _demo,
    "amqp-consume": _amqp_consume,
    "amqp-publish": _amqp_publish,
    "flowgate": _flowgate,
}
assert set(NOT_RUN_AS_WRITTEN) <= set(HANDLERS)


# ----------------------------------------------------------------------------------- tests


def test_readme_has_the_examples() -> None:
    programs = {command.program for command in COMMANDS}
    assert {"scripts/demo", "scripts/test", "amqp-publish", "amqp-consume"} <= programs, programs


def test_example_parsing() -> None:
    text = "\n".join(
        [
            "intro",
            "```sh",
            "a one  # comment",
            "",
            "b --x \\",
            "  'two",
            "lines' c",
            "```",
            "```toml",
            "x = 1",
            "```",
            "```",
            "not shell",
            "```",
        ]
    )
    commands = readme_commands(text)
    assert [(c.line, c.argv) for c in commands] == [
        (3, ("a", "one")),
        (5, ("b", "--x", "two\nlines", "c")),
    ]
    with pytest.raises(ValueError, match="never ends"):
        readme_commands("```sh\necho 'open\n```\n")


@pytest.mark.timeout(DEMO_TIMEOUT + 120)
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where}-{c.program}" for c in COMMANDS])
async def test_readme_shell_command(
    command: ShellCommand, amqp_url: str, sims: RunningSimulators, tmp_path: Path
) -> None:
    handler = HANDLERS.get(command.program, _generic)
    await handler(command, Context(amqp_url, sims, tmp_path))


def test_doc_links_stay_in_the_repository() -> None:
    """Every relative link in README.md and docs/*.md names a file of this repository."""
    for doc in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(REPO) and path.exists(), f"{doc.name}: link {target}"


def _calls_until_seen(run: float, policy: PollPolicy) -> int:
    """Status calls until a run of exactly `run` seconds is seen finished (workers/poller)."""
    at, calls = policy.first_delay, 1
    while at < run:
        at += next_poll_delay(
            calls, first=policy.first_delay, factor=policy.factor, maximum=policy.max_delay
        )
        calls += 1
    return calls


def test_poll_policy_docstring_counts() -> None:
    doc = " ".join((PollPolicy.__doc__ or "").split())
    minute = re.search(r"(\d+) status calls to see a 1-minute run finished", doc)
    hour = re.search(r"(\d+) for a 1-hour run", doc)
    assert minute and hour, doc
    policy = PollPolicy()
    assert int(minute.group(1)) == _calls_until_seen(60.0, policy)
    assert int(hour.group(1)) == _calls_until_seen(3600.0, policy)
