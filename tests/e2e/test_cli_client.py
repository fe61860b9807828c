"""`flowgate send`, `flowgate events` and `flowgate config check` as a user meets them: the
live `--wait` view in a real pseudo-terminal, the exit codes that say how a command ended,
events as a table or JSON lines, and the settings with their sources, secrets never shown."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import System
from workers.cli import EXIT_CANCELLED, EXIT_FAILED, EXIT_SUCCEEDED, EXIT_TIMEOUT
from workers.simulators._pbsm import PbsmSim

pytestmark = pytest.mark.e2e

FLOWGATE = [sys.executable, "-m", "workers.cli"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _env(amqp_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    return {**env, "FLOWGATE_AMQP_URL": amqp_url, "FLOWGATE_EVENT_LOOP": "asyncio", **extra}


def _read_terminal(master: int, timeout: float) -> bytes:
    """Everything the child writes to the terminal, until it closes it (or the deadline)."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every end of the terminal in the child is closed
            break
        if not chunk:
            break
        out += chunk
    return out


async def _send_in_a_terminal(amqp_url: str, *argv: str) -> tuple[int, str, str]:
    """(exit code, the screen's text without escape codes, the raw output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        *FLOWGATE,
        "send",
        *argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(amqp_url, TERM="xterm-256color", COLUMNS="140"),
        start_new_session=True,
    )
    os.close(slave)
    try:
        raw = await asyncio.to_thread(_read_terminal, master, 90)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        os.close(master)
        if proc.returncode is None:
            proc.kill()
    text = raw.decode(errors="replace")
    return code, _ANSI.sub("", text), text


async def _send(amqp_url: str, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *FLOWGATE,
        "send",
        *argv,
        env=_env(amqp_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _slow_pbsm(system: System, seconds: float) -> None:
    pbsm = system.sims.vendors["pbsm"]
    assert isinstance(pbsm, PbsmSim)
    pbsm.config.run_seconds = seconds


async def test_the_live_view_in_a_terminal(system: System, amqp_url: str) -> None:
    _slow_pbsm(system, 2.0)  # long enough for NOT_STARTED, then ONGOING, then the end
    code, screen, raw = await _send_in_a_terminal(
        amqp_url, "trigger-batch", "--data", '{"batch": "B2001"}', "--wait", "--timeout", "60"
    )
    assert code == EXIT_SUCCEEDED, screen
    assert "\x1b[" in raw, "a live view draws with escape codes"
    assert "waiting for the vendor" in screen, "the elapsed time while it runs"
    assert re.search(r"accepted\s+batch_run_id=B2001_", screen), screen
    assert re.search(r"progress\s+ONGOING", screen), "the vendor's own status words"
    assert re.search(r"succeeded\s+SUCCESSFUL", screen), screen
    assert re.search(r"succeeded after \d+\.\d s", screen), screen


async def test_exit_codes_say_how_it_ended(system: System, amqp_url: str) -> None:
    system.sims.set_outcome("pbsm", "FAILS", "FAILED")
    system.sims.set_outcome("pbsm", "STOPPED", "INTERRUPTED")
    failed, cancelled, refused, ok = await asyncio.gather(
        _send(amqp_url, "trigger-batch", "--data", '{"batch": "FAILS"}', "--wait"),
        _send(amqp_url, "trigger-batch", "--data", '{"batch": "STOPPED"}', "--wait"),
        _send(amqp_url, "trigger-batch", "--example", "--connection", "nope", "--wait"),
        _send(amqp_url, "add-paylink", "--example", "--wait"),
    )
    assert failed[0] == EXIT_FAILED, failed
    assert re.search(r"failed\s+vendor_failed", failed[1]), "plain lines when not a terminal"
    assert cancelled[0] == EXIT_CANCELLED, cancelled
    assert "cancelled after" in cancelled[1]
    assert refused[0] == EXIT_FAILED and "invalid" in refused[1], refused
    assert ok[0] == EXIT_SUCCEEDED and "succeeded after" in ok[1], ok
    assert "\x1b[" not in ok[1], "no escape codes into a pipe"


async def test_timeout_exit_code_and_send_without_wait(system: System, amqp_url: str) -> None:
    _slow_pbsm(system, 5.0)
    code, out, err = await _send(amqp_url, "trigger-batch", "--example", "--timeout", "0.5")
    assert code == EXIT_TIMEOUT, (out, err)
    assert "the command goes on" in out
    code, out, _ = await _send(amqp_url, "add-paylink", "--example")
    assert code == 0
    command_id = out.strip()
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.add-paylink.succeeded"


async def test_send_refuses_bad_data_before_connecting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"batch": ""}')
    proc = await asyncio.create_subprocess_exec(
        *FLOWGATE,
        "send",
        "trigger-batch",
        "--file",
        str(bad),
        "--wait",
        env=_env("amqp://guest:guest@h.invalid:5672/"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "--file is not a valid trigger-batch command: batch:" in err.decode()
    assert "cannot reach" not in err.decode()


async def test_events_as_json_lines(system: System, amqp_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *FLOWGATE,
        "events",
        "add-paylink.*",
        "--json",
        "--for",
        "15",
        env=_env(amqp_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Its queue is bound once the client is connected; send when a binding shows up.
    async with asyncio.timeout(30):
        while not await _bound(amqp_url, "add-paylink.*"):
            await asyncio.sleep(0.1)
    command_id = await system.publish(
        "add-paylink", {"business_id": "PR", "order_id": "O9", "payment_link": "p"}
    )
    await system.publish("trigger-batch", {"batch": "B2001"})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["routing_key"] for line in lines] == ["add-paylink.succeeded"]
    assert lines[0]["event"]["subject"] == command_id


async def _bound(amqp_url: str, key: str) -> bool:
    vhost = amqp_url.rsplit("/", 1)[1]
    out = await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "source_name", "routing_key"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return any(line.split("\t") == ["flowgate.events", key] for line in out.stdout.splitlines())


# ------------------------------------------------------------------------- config check


def _config_check(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    return subprocess.run(
        [*FLOWGATE, "config", "check", *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _shown(out: str) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        match = re.fullmatch(r"(\S+) = (.*?)  # (.*)", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_config_check_prints_every_value_with_its_source(tmp_path: Path) -> None:
    secret_file = tmp_path / "pbsm_password"
    secret_file.write_text("file-secret-5b1c\n")
    config = tmp_path / "flowgate.toml"
    config.write_text(
        "prefetch = 128\n"
        'default_connections = { pbsm = "prod" }\n'
        "[pbsm.prod]\n"
        'base_url = "https://pbsm.example.com"\n'
        'token_url = "https://idcs-1234.identity.oraclecloud.com/oauth2/v1/token"\n'
        f'password_file = "{secret_file}"\n'
    )
    done = _config_check(
        "--config",
        str(config),
        "--amqp-url",
        "amqp://flowgate:flag-secret-9a57@rabbit.internal:5672/prod",
        FLOWGATE_PBSM__PROD__CLIENT_SECRET="env-secret-3d1b",
        FLOWGATE_POLLER__HOLD="1.5",
        FLOWGATE_IDEMPOTENCY__REDIS_URL="redis://:redis-secret-0c0f@cache:6379/0",
    )
    assert done.returncode == 0, done.stderr
    for secret in ("flag-secret-9a57", "env-secret-3d1b", "file-secret-5b1c", "redis-secret-0c0f"):
        assert secret not in done.stdout + done.stderr
    rows = _shown(done.stdout)
    assert rows["amqp_url"] == (
        '"amqp://flowgate:***@rabbit.internal:5672/prod"',
        "flag --amqp-url",
    )
    assert rows["prefetch"] == ("128", f"file {config}")
    assert rows["poller.hold"] == ("1.5", "environment FLOWGATE_POLLER__HOLD")
    assert rows["poller.max_held"] == ("512", "default")
    assert rows["pbsm.prod.client_secret"] == (
        '"**********"',
        "environment FLOWGATE_PBSM__PROD__CLIENT_SECRET",
    )
    assert rows["pbsm.prod.password"] == ('"**********"', f"file {config} (via password_file)")
    assert rows["pbsm.prod.base_url"] == ('"https://pbsm.example.com"', f"file {config}")
    assert rows["idempotency.redis_url"][0] == '"redis://cache:6379/0"'
    assert "pbsm.default.base_url" not in rows, "named connections replace the default one"
    assert done.stdout.rstrip().endswith("ok: the settings are valid")


def test_config_check_names_the_line_of_a_toml_error(tmp_path: Path) -> None:
    config = tmp_path / "flowgate.toml"
    config.write_text('prefetch = 128\n[pbsm.prod]\nbase_url = "https://x\n')
    done = _config_check(FLOWGATE_CONFIG=str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"flowgate config check: {config}:3:"), done.stderr
    assert "Traceback" not in done.stderr


def test_config_check_names_an_invalid_setting_and_its_source(tmp_path: Path) -> None:
    config = tmp_path / "flowgate.toml"
    config.write_text('prefetch = 0\n[pbsm.prod]\nbase_url = "https://pbsm.example.com"\n')
    done = _config_check(
        "--config",
        str(config),
        FLOWGATE_PBSM__PROD__PASSWORD="never-shown-77",
        FLOWGATE_DEFAULT_CONNECTIONS__PBSM="prod",
    )
    assert done.returncode == 2
    assert f"prefetch: Input should be greater than or equal to 1 [file {config}]" in done.stderr
    # A section two sources set names both.
    assert "token_url is required" in done.stderr
    assert f"[environment FLOWGATE_PBSM__PROD__*, file {config}]" in done.stderr
    assert "never-shown-77" not in done.stderr + done.stdout
