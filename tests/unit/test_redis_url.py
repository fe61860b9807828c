"""The Redis URL names a server or a Sentinel-watched primary; a malformed one is refused with
what is wrong, by `flowgate config check` too, never with its password."""

from __future__ import annotations

import os

import pytest

from workers._redis import SentinelTarget, check_url, sentinel_target
from workers.cli import main
from workers.runs import _redis_shown


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db() -> None:
    url = "redis+sentinel://:pw@s1:26379,s2:26380,[::1]:26381/flowgate/2"
    assert sentinel_target(url) == SentinelTarget(
        [("s1", 26379), ("s2", 26380), ("::1", 26381)], "flowgate", 2, None, "pw"
    )
    assert sentinel_target("redis+sentinel://s1:26379/mymaster").db == 0  # type: ignore[union-attr]
    assert sentinel_target("redis://127.0.0.1:6379/0") is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "name the service"),
        ("redis+sentinel://s1/mymaster", "is not host:port"),
        ("redis+sentinel://s1:26379/mymaster/x", "is not a number"),
    ],
)
def test_a_malformed_sentinel_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        sentinel_target(url)
    with pytest.raises(ValueError, match=says):
        check_url(url)


def test_a_url_redis_py_cannot_read_is_refused() -> None:
    for url in ("redis://:pw@cache:6379/0", "rediss://cache", "unix:///run/redis.sock"):
        check_url(url)
    with pytest.raises(ValueError, match=r"or redis\+sentinel://, not amqp://$"):
        check_url("amqp://guest:guest@cache/")
    with pytest.raises(ValueError, match="this one has no scheme"):
        check_url("cache:6379")


@pytest.fixture
def no_flowgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("FLOWGATE_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_flowgate_env")
def test_config_check_says_a_sentinel_url_is_malformed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWGATE_IDEMPOTENCY__REDIS_URL", "redis+sentinel://:pw-51c2@s1/flowgate")
    assert main(["config", "check"]) == 2
    out, err = capsys.readouterr()
    assert "idempotency.redis_url: redis+sentinel URL: 's1' is not host:port of a sentinel" in err
    assert "[environment FLOWGATE_IDEMPOTENCY__*]" in err
    # A process started with it says the same, and neither repeats the password.
    assert main(["worker"]) == 2
    again = capsys.readouterr()
    assert "idempotency.redis_url: redis+sentinel URL" in again.err
    assert "pw-51c2" not in out + err + again.out + again.err


@pytest.mark.usefixtures("no_flowgate_env")
def test_config_check_shows_every_sentinel_of_a_sentinel_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "redis+sentinel://:pw-9d0e@s1:26379,s2:26380,[::1]:26381/flowgate/1"
    monkeypatch.setenv("FLOWGATE_IDEMPOTENCY__REDIS_URL", url)
    assert main(["config", "check"]) == 0
    out, err = capsys.readouterr()
    shown = '"redis+sentinel://s1:26379,s2:26380,[::1]:26381/flowgate/1"'
    assert f"idempotency.redis_url = {shown}" in out
    assert "pw-9d0e" not in out + err
    # `flowgate runs` names the store the same way when it cannot read it.
    assert _redis_shown(url) == shown.strip('"')
