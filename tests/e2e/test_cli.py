"""The `flowgate` command as a user meets it: global options anywhere, `--version`, `--help`
with an example everywhere, and one line naming the cause instead of a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.conftest import RABBIT_HOST, _rabbitmqctl
from workers.cli import _parser, main
from workers.commands import COMMANDS

FLOWGATE = [sys.executable, "-m", "workers.cli"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOWGATE, *argv], capture_output=True, text=True, timeout=60)


def _subcommands() -> list[list[str]]:
    parser = _parser()
    found: list[list[str]] = []

    def walk(p: object, path: list[str]) -> None:
        for action in getattr(p, "_actions", []):
            choices = getattr(action, "choices", None)
            for name, child in choices.items() if isinstance(choices, dict) else []:
                if hasattr(child, "_actions"):
                    found.append([*path, name])
                    walk(child, [*path, name])

    walk(parser, [])
    return found


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"flowgate \d+\.\d+\.\d+\n", result.stdout)


@pytest.mark.parametrize("path", _subcommands(), ids=" ".join)
def test_every_command_has_a_description_and_an_example(
    path: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert re.search(r"\nexamples?:\n", text), "an example in the help"
    assert f"flowgate {' '.join(path)}" in re.split(r"\nexamples?:\n", text)[1]
    # The global options are accepted after any sub-command too.
    assert "--amqp-url" in text and "--config" in text


def test_global_options_before_or_after_the_subcommand(amqp_url: str) -> None:
    for argv in (["--amqp-url", amqp_url, "declare"], ["declare", "--amqp-url", amqp_url]):
        result = _run(*argv)
        assert result.returncode == 0, result.stderr
        assert "topology declared" in result.stdout


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["--log-level", "LOUD", "declare"], 2, "'LOUD' is not one of DEBUG, INFO, WARNING"),
        (["publish", "trigger-batch", "--data", "[1,2]"], 2, "must be a JSON object, not list"),
        (["publish", "trigger-batch", "--data", "{"], 2, "--data is not JSON"),
        (
            ["publish", "trigger-batch", "--data", "{}"],
            2,
            "not a valid trigger-batch command: batch: Field required",
        ),
        (
            ["declare", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/"],
            1,
            "cannot reach RabbitMQ at amqp://guest@127.0.0.1:1/",
        ),
        (
            ["declare", "--amqp-url", "amqp://guest:not-the-password@127.0.0.1:5672/"],
            1,
            "refused the user name or password",
        ),
        (
            ["declare", "--amqp-url", "amqp://guest:guest@127.0.0.1:5672/no-such-vhost"],
            1,
            "the vhost does not exist, or this user may not use it",
        ),
    ],
)
def test_a_users_mistake_is_one_line_naming_the_cause(
    argv: list[str], code: int, says: str
) -> None:
    result = _run(*argv)
    assert result.returncode == code, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-the-password" not in result.stderr, "no secret in a message"


def test_bad_data_never_leaves_the_machine() -> None:
    # An address where nothing listens: a refused command exits before any connection.
    result = _run(
        "publish", "trigger-batch", "--data", '{"batch": ""}', "--amqp-url", "amqp://h.invalid/"
    )
    assert result.returncode == 2
    assert "cannot reach" not in result.stderr and "batch:" in result.stderr


def test_publish_example_of_every_type_is_valid() -> None:
    for registration in COMMANDS.values():
        registration.model.model_validate(registration.example)


def test_a_changed_delivery_limit_says_what_to_do() -> None:
    """Queue arguments cannot change: a queue declared with another limit (flowgate 0.1's
    default was 5) is refused by RabbitMQ, and the user is told the two ways out."""
    vhost = f"flowgate-test-limit-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"
        env = {**os.environ, "FLOWGATE_DELIVERY_LIMIT": "5"}
        argv = [*FLOWGATE, "declare", "--amqp-url", url]
        first = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert first.returncode == 0, first.stderr
        result = _run("declare", "--amqp-url", url)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "x-delivery-limit" in result.stderr
        assert "Set delivery_limit in the settings to the queue's current value" in result.stderr
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60, check=False)


def test_declare_permissions_prints_the_rabbitmqctl_command() -> None:
    result = _run(
        "declare",
        "--permissions",
        "publisher",
        "--user",
        "billing",
        "--amqp-url",
        "amqp://ops:pw@rabbit:5672/prod",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rabbitmqctl set_permissions -p prod billing ")
    assert "pw" not in result.stdout
    # The URL's own user when --user is not given.
    result = _run("declare", "--permissions", "worker", "--amqp-url", "amqp://svc:pw@h/")
    assert result.stdout.startswith("rabbitmqctl set_permissions -p / svc ")
    bad = _run("declare", "--permissions", "admin")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
