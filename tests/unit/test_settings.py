"""`load_settings`: defaults, env vars with `__` nesting, TOML files, secret files, redaction."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from contracts import COMMAND_TYPES
from workers.settings import Settings, load_settings
from workers.vendors.pbsm import PbsmConnection
from workers.vendors.robusta import RobustaConnection
from workers.vendors.tmf622 import Tmf622Connection

VENDORS = ("informatica", "robusta", "tmf622", "pbsm")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No FLOWGATE_* from the developer's shell may leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("FLOWGATE_"):
            monkeypatch.delenv(name)
    yield


def test_defaults_give_a_default_connection_per_vendor() -> None:
    settings = load_settings()
    for vendor in VENDORS:
        connections = settings.connections(vendor)
        assert list(connections) == ["default"]
        assert settings.default_connection(vendor) == "default"
        assert connections["default"].base_url == "http://127.0.0.1:8700"
    assert settings.amqp_url.get_secret_value().startswith("amqp://")
    assert settings.command_types == sorted(settings.command_types)
    assert settings.command_types == sorted(COMMAND_TYPES)
    # RabbitMQ 4.0's own default: a held message survives this many crashed consumers.
    assert settings.delivery_limit == 20


def test_env_vars_build_a_named_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWGATE_PBSM__PROD__CLIENT_SECRET", "s3cr3t-prod")
    monkeypatch.setenv("FLOWGATE_PBSM__PROD__BASE_URL", "https://pbsm.example.com")
    monkeypatch.setenv("FLOWGATE_PBSM__PROD__TOKEN_URL", "https://iam.example.com/oauth2/v1/token")
    monkeypatch.setenv("FLOWGATE_PBSM__PROD__RETRY__MAX_ATTEMPTS", "9")
    monkeypatch.setenv("FLOWGATE_PREFETCH", "17")
    monkeypatch.setenv("FLOWGATE_AMQP_URL", "amqp://u:p@rabbit:5672/v")
    monkeypatch.setenv("FLOWGATE_DEFAULT_CONNECTIONS__PBSM", "prod")
    settings = load_settings()
    prod = settings.connections("pbsm")["prod"]
    assert isinstance(prod, PbsmConnection)
    assert settings.default_connection("pbsm") == "prod"
    assert prod.client_secret.get_secret_value() == "s3cr3t-prod"
    assert prod.base_url == "https://pbsm.example.com"
    assert prod.retry.max_attempts == 9
    assert prod.client_id == "pbsm-client"  # unset fields keep their defaults
    assert settings.prefetch == 17
    assert settings.amqp_url.get_secret_value() == "amqp://u:p@rabbit:5672/v"


def test_bad_env_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWGATE_PREFETCH", "0")
    with pytest.raises(ValidationError, match="prefetch"):
        load_settings()


def test_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flowgate.toml"
    path.write_text(
        'prefetch = 32\nhttp_transport = "httpx"\ndefault_connections = { robusta = "east" }\n\n'
        "[input]\nmax_depth = 8\n\n"
        '[robusta.east]\nbase_url = "https://robusta-east.example.com"\n'
        'username = "svc"\npassword = "from-toml"\n\n'
        "[robusta.east.poll]\nfirst_delay = 5.0\n"
    )
    settings = load_settings(path)
    assert settings.prefetch == 32
    assert settings.http_transport == "httpx"
    assert settings.input.max_depth == 8
    east = settings.connections("robusta")["east"]
    assert isinstance(east, RobustaConnection)
    assert (east.base_url, east.username) == ("https://robusta-east.example.com", "svc")
    assert east.password.get_secret_value() == "from-toml"
    assert east.poll.first_delay == 5.0
    # Environment beats the file, keyword arguments beat both.
    monkeypatch.setenv("FLOWGATE_PREFETCH", "48")
    assert load_settings(path).prefetch == 48
    assert load_settings(path, prefetch=64).prefetch == 64
    # The file is read for that call only.
    assert "east" not in load_settings().connections("robusta")


def test_toml_file_from_env_and_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf.toml"
    path.write_text("delivery_limit = 3\n")
    monkeypatch.setenv("FLOWGATE_CONFIG", str(path))
    assert load_settings().delivery_limit == 3
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")


def test_unknown_key_in_toml_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("prefech = 3\n")
    with pytest.raises(ValidationError, match="prefech"):
        load_settings(path)


def test_secret_file_read_for_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "client_secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("FLOWGATE_PBSM__PROD__CLIENT_SECRET_FILE", str(secret))
    settings = load_settings(default_connections={"pbsm": "prod"})
    prod = settings.connections("pbsm")["prod"]
    assert isinstance(prod, PbsmConnection)
    assert prod.client_secret.get_secret_value() == "from-a-file"
    amqp = tmp_path / "amqp"
    amqp.write_text("amqp://file:secret@h/\n")
    settings = load_settings(amqp_url_file=amqp, default_connections={"pbsm": "prod"})
    assert settings.amqp_url.get_secret_value() == "amqp://file:secret@h/"


def test_redis_url_read_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A mounted secret: the URL carries the password, and the file ends with a newline.
    redis = tmp_path / "redis_url"
    redis.write_text("redis+sentinel://:file-pw@s1:26379,s2:26379/flowgate\n")
    monkeypatch.setenv("FLOWGATE_IDEMPOTENCY__REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("FLOWGATE_IDEMPOTENCY__REDIS_URL_FILE", str(redis))
    settings = load_settings()
    url = settings.idempotency.redis_url.get_secret_value()
    assert url == "redis+sentinel://:file-pw@s1:26379,s2:26379/flowgate"  # the file wins
    assert "file-pw" not in repr(settings) + str(settings)
    with pytest.raises(ValidationError, match="redis_url_file: cannot read it"):
        load_settings(idempotency={"redis_url_file": str(tmp_path / "absent")})


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://:pw-7e1d@s1/flowgate", "'s1' is not host:port of a sentinel"),
        ("redis+sentinel://:pw-7e1d@s1:26379", "name the service"),
        ("http://:pw-7e1d@cache:6379/0", "not http://"),
        ("cache:6379", "this one has no scheme"),
    ],
)
def test_a_malformed_redis_url_is_refused_at_start(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(ValidationError, match=f"idempotency.redis_url: .*{says}"):
        load_settings(idempotency={"redis_url": url})
    from_file = tmp_path / "redis_url"
    from_file.write_text(url)
    with pytest.raises(ValidationError, match=f"idempotency.redis_url_file: .*{says}"):
        load_settings(idempotency={"redis_url_file": str(from_file)})
    # The in-memory store reads no URL.
    assert load_settings(idempotency={"store": "memory", "redis_url": url})


def test_missing_secret_file_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(tmf622={"x": {"client_secret_file": missing}})


def test_file_for_non_secret_field_refused(tmp_path: Path) -> None:
    target = tmp_path / "url"
    target.write_text("https://evil.example.com")
    with pytest.raises(ValidationError, match="not a secret"):
        Settings(pbsm={"prod": {"base_url_file": str(target)}})
    with pytest.raises(ValidationError, match="not a secret"):
        Settings(pbsm={"prod": {"nonexistent_file": str(target)}})


def test_secrets_never_in_repr_or_str(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "FLOWGATE_AMQP_URL": "amqp://user:amqp-pass-123@rabbit/",
        "FLOWGATE_PBSM__PROD__CLIENT_SECRET": "pbsm-secret-456",
        "FLOWGATE_PBSM__PROD__PASSWORD": "pbsm-pass-789",
        "FLOWGATE_INFORMATICA__EU__PASSWORD": "iics-pass-000",
        "FLOWGATE_ROBUSTA__EU__PASSWORD": "robusta-pass-111",
        "FLOWGATE_TMF622__EU__CLIENT_SECRET": "tmf-secret-222",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    # Named connections only: every command must name its connection.
    no_defaults = {v: "" for v in VENDORS}
    settings = load_settings(default_connections=no_defaults)
    eu = settings.connections("tmf622")["eu"]
    assert isinstance(eu, Tmf622Connection)
    texts = [repr(settings), str(settings), repr(settings.connections("pbsm")), str(eu)]
    for text in texts:
        for value in secrets.values():
            assert value not in text
    assert "pbsm-secret-456" not in settings.model_dump_json()
    assert isinstance(eu.client_secret, SecretStr)


def test_poller_hold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().poller.hold == 2.0
    monkeypatch.setenv("FLOWGATE_POLLER__HOLD", "0")
    monkeypatch.setenv("FLOWGATE_POLLER__MAX_HELD", "10")
    settings = load_settings()
    assert (settings.poller.hold, settings.poller.max_held) == (0.0, 10)
    monkeypatch.setenv("FLOWGATE_POLLER__HOLD", "-1")
    with pytest.raises(ValidationError):
        load_settings()


def test_a_vendor_whose_default_connection_is_not_configured_is_refused_at_start() -> None:
    """Configuring `[pbsm.prod]` replaces the built-in `default`: commands that name no
    connection would all fail, so the settings say so at start, with the fix."""
    with pytest.raises(ValidationError) as info:
        Settings(pbsm={"prod": {}})
    message = str(info.value)
    assert "pbsm: a command that names no connection uses 'default'" in message
    assert "configured: prod" in message
    assert 'default_connections.pbsm = "<name>"' in message
    chosen = Settings(pbsm={"prod": {}}, default_connections={"pbsm": "prod"})
    assert chosen.default_connection("pbsm") == "prod"
    # An empty name: every pbsm command must name its connection.
    assert (
        Settings(pbsm={"prod": {}}, default_connections={"pbsm": ""}).default_connection("pbsm")
        is None
    )
    with pytest.raises(ValidationError, match="names no vendor: pbms"):
        Settings(default_connections={"pbms": "prod"})


def test_the_readme_settings_example_loads(tmp_path: Path) -> None:
    """The README's TOML example is a working settings file (its secret files made here);
    the other TOML example, of a schedule file, is tests/unit/test_scheduler.py's."""
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    blocks = [block for block in blocks if "amqp_url" in block]
    assert len(blocks) == 1, "one settings example in the README"
    text = blocks[0]
    for path in re.findall(r'_file = "([^"]+)"', text):
        target = tmp_path / Path(path).name
        target.write_text("from-a-file\n")
        text = text.replace(f'"{path}"', f'"{target}"')
    config = tmp_path / "flowgate.toml"
    config.write_text(text)
    settings = load_settings(config)
    assert settings.default_connection("pbsm") == "prod"
    prod = settings.connections("pbsm")["prod"]
    assert isinstance(prod, PbsmConnection)
    assert prod.client_secret.get_secret_value() == "from-a-file"
    assert set(settings.connections("informatica")) == {"eu"}


def test_a_worker_shares_its_prefetch_among_its_command_queues() -> None:
    """Quorum queues count the deliveries a dead consumer hands back: a worker must not hold
    a full prefetch on each of its many queues (16 x 256), or a few crashes in a row
    dead-letter commands that were only waiting."""
    from workers.app import worker_prefetch

    assert worker_prefetch(256, 1) == 256
    assert worker_prefetch(256, 4) == 64
    assert worker_prefetch(256, 16) == 16
    assert worker_prefetch(256, 64) == 16, "each queue keeps a few in flight"
    assert worker_prefetch(10, 0) == 16


def test_the_operator_page_is_off_and_needs_a_token_when_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    assert settings.operator.port is None and settings.operator.host == "127.0.0.1"
    with pytest.raises(ValidationError, match=r"operator.token is missing.*openssl rand"):
        load_settings(operator={"port": 8090})
    with pytest.raises(ValidationError, match="shorter than 16 characters"):
        load_settings(operator={"port": 8090, "token": "short"})
    token = tmp_path / "token"
    token.write_text("a-token-read-from-a-file\n")
    monkeypatch.setenv("FLOWGATE_OPERATOR__PORT", "8090")
    monkeypatch.setenv("FLOWGATE_OPERATOR__TOKEN_FILE", str(token))
    operator = load_settings().operator
    assert operator.port == 8090
    assert operator.token is not None
    assert operator.token.get_secret_value() == "a-token-read-from-a-file"
    assert "a-token-read" not in repr(operator), "the token is a secret"
    monkeypatch.setenv("FLOWGATE_OPERATOR__TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match=r"operator\.token_file: cannot read it"):
        load_settings()
