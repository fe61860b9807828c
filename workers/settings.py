"""The one typed settings object, built once at the entry point; nothing else reads the environment.

Sources, strongest first: keyword arguments (CLI flags), environment variables
(`FLOWGATE_AMQP_URL`, nested with `__`, e.g. `FLOWGATE_PBSM__PROD__CLIENT_SECRET`), the
settings file (TOML; `--config` or `FLOWGATE_CONFIG`), then defaults. Secrets may also come
from files: `FLOWGATE_AMQP_URL_FILE`, `FLOWGATE_IDEMPOTENCY__REDIS_URL_FILE`, or `<secret>_file`
inside any connection.

The default connections point at `flowgate simulate` on 127.0.0.1:8700 with the simulators'
own credentials, so a fresh checkout runs end to end with no configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from workers._redis import check_url
from workers.commands import COMMANDS
from workers.topology import DEFAULT_DELIVERY_LIMIT
from workers.vendors._connection import ConnectionBase

__all__ = [
    "IdempotencySettings",
    "InputSettings",
    "OperatorSettings",
    "PollerSettings",
    "SchedulerSettings",
    "Settings",
    "TracingSettings",
    "load_settings",
]


def secret_from_file(path: Path, setting: str) -> SecretStr:
    """A secret kept in a file (a mounted Kubernetes or compose secret), without its trailing
    newline; a file that cannot be read is a settings error naming `setting`."""
    try:
        return SecretStr(path.read_text().strip())
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read it: {exc.strerror}") from None


class InputSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_depth: int = Field(default=32, ge=2)


class PollerSettings(BaseModel):
    """Where a run waits between status calls: short waits in the poller, long ones in queues."""

    model_config = ConfigDict(extra="forbid")

    hold: float = Field(
        default=2.0,
        ge=0,
        description="A status call due within this many seconds is waited for in the poller, "
        "its poll request unacked (a crash gives it back to the queue), instead of a round "
        "through the delay queues. 0 sends every wait through the delay queues.",
    )
    max_held: int = Field(
        default=512,
        ge=0,
        description="Runs one poller holds at once; past it, waits go through the delay queues. "
        "The poll queue's prefetch is `prefetch` + this.",
    )


class IdempotencySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: Literal["redis", "memory"] = Field(
        default="redis", description="`memory` only for a single process (the embedded demo)."
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="redis://host:6379/0, or a primary watched by Redis Sentinel: "
        "redis+sentinel://[:password@]s1:26379,s2:26379,s3:26379/<service>[/<db>].",
    )
    redis_url_file: Path | None = Field(
        default=None,
        description="A file holding redis_url (a mounted secret: the URL may carry the "
        "password); wins over redis_url.",
    )
    replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas that must hold a claim before the vendor is called (Redis WAIT, "
        "in the claim's round trip). Redis replicates asynchronously: with a replica and "
        "Sentinel, 1 keeps a failover from losing a claim and a redelivery from triggering "
        "the vendor again. 0: no wait.",
    )
    replica_wait: float = Field(
        default=1.0,
        gt=0,
        description="Seconds a claim waits for `replicas`; short of them the claim is "
        "released and the command retried later (the vendor was not called).",
    )
    retention: float = Field(
        default=7 * 86400.0, gt=0, description="Seconds a command id is remembered."
    )
    key_prefix: str = "flowgate:"
    max_connections: int = Field(
        default=64, ge=1, description="Redis connections per process; callers wait for one."
    )

    @model_validator(mode="after")
    def _read_redis_url(self) -> IdempotencySettings:
        if self.redis_url_file is not None:
            self.redis_url = secret_from_file(self.redis_url_file, "idempotency.redis_url_file")
        if self.store == "redis":
            # Here rather than at the first connection: `flowgate config check` says it, and
            # a worker does not start only to fail on its first command.
            try:
                check_url(self.redis_url.get_secret_value())
            except ValueError as exc:
                via = "redis_url_file" if self.redis_url_file is not None else "redis_url"
                raise ValueError(f"idempotency.{via}: {exc}") from None
        return self


class SchedulerSettings(BaseModel):
    """`flowgate scheduler` (its schedules are a file of their own, `--schedules`)."""

    model_config = ConfigDict(extra="forbid")

    grace: float = Field(
        default=60.0,
        ge=0,
        description="A fire time at most this many seconds past is still sent (it fell due "
        "while the scheduler was starting or restarting); a later one is logged as missed.",
    )


class TracingSettings(BaseModel):
    """OpenTelemetry traces (`workers.tracing`): off unless enabled."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="Record spans (consume, vendor call, publish, poll) and export them over "
        "OTLP/HTTP; off, tracing costs one check per span that would have been.",
    )
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="The OTLP/HTTP traces endpoint (an OpenTelemetry Collector, Jaeger, Tempo).",
    )
    service_name: str | None = Field(
        default=None, description="Default: flowgate-<role> (flowgate-worker, flowgate-poller)."
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded; a command's own sampled flag is followed.",
    )


class OperatorSettings(BaseModel):
    """The operator page (`workers.operator`): off unless `port` is set, and never without a
    token, since whoever holds it can replay dead letters and cancel runs."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve the operator page here (off: None)."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address of the operator page: this machine only, unless set otherwise.",
    )
    token: SecretStr | None = Field(
        default=None, description="What an operator types to sign in (at least 16 characters)."
    )
    token_file: Path | None = Field(
        default=None, description="A file holding the token (a mounted secret); wins over token."
    )

    @model_validator(mode="after")
    def _token_required(self) -> OperatorSettings:
        if self.token_file is not None:
            self.token = secret_from_file(self.token_file, "operator.token_file")
        if self.port is None:
            return self
        token = self.token.get_secret_value() if self.token is not None else ""
        if len(token) < 16:
            raise ValueError(
                "operator.port is set but operator.token is "
                f"{'missing' if not token else 'shorter than 16 characters'}: the page can "
                "replay dead letters and cancel runs, so it needs a token (for example "
                "`openssl rand -hex 24`, in FLOWGATE_OPERATOR__TOKEN or operator.token_file)"
            )
        return self


class _Settings(BaseSettings):
    """Everything but the vendors' sections; `Settings` adds one per vendor of the table."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWGATE_", env_nested_delimiter="__", extra="forbid"
    )

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    amqp_url_file: Path | None = None
    amqp_ca_file: Path | None = Field(
        default=None,
        description="CA bundle for amqps:// (certificates are always verified; default: the "
        "system's CAs).",
    )
    prefetch: int = Field(
        default=256,
        ge=1,
        description="Unacked messages a worker holds, shared among its command queues (each "
        "at least 16); the poller holds this many plus poller.max_held.",
    )
    delivery_limit: int = Field(
        default=DEFAULT_DELIVERY_LIMIT,
        ge=1,
        description="Quorum x-delivery-limit of the work queues: deliveries no process settled "
        "(crashes included) before RabbitMQ dead-letters a message; a worker then answers it.",
    )
    http_transport: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp", description="httpx transport for vendor calls (see BENCHMARKS.md)."
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="uvloop cuts the CPU per message (see BENCHMARKS.md)."
    )
    shutdown_grace: float = Field(default=30.0, ge=0, description="Seconds to finish in-flight.")
    input: InputSettings = Field(default_factory=InputSettings)
    poller: PollerSettings = Field(default_factory=PollerSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="JSON lines, or text for a person; auto: text when stderr is a terminal.",
    )
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    health_host: str = Field(
        default="127.0.0.1", description="Address of the /healthz and /readyz endpoint."
    )
    health_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve /healthz and /readyz here (off: None)."
    )
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    default_connections: dict[str, str] = Field(
        default_factory=dict,
        description="Per vendor, the connection a command that names none uses (default: "
        "`default`); an empty name makes every command of that vendor name its connection.",
    )

    @model_validator(mode="after")
    def _read_amqp_url_file(self) -> _Settings:
        if self.amqp_url_file is not None:
            self.amqp_url = secret_from_file(self.amqp_url_file, "amqp_url_file")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CONFIG_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _check_default_connections(self) -> _Settings:
        vendors = [v.name for v in COMMANDS.vendors]
        unknown = sorted(set(self.default_connections) - set(vendors))
        if unknown:
            raise ValueError(
                f"default_connections names no vendor: {', '.join(unknown)} "
                f"(vendors: {', '.join(vendors)})"
            )
        for vendor in vendors:
            name = self.default_connection(vendor)
            configured = self.connections(vendor)
            if name is not None and name not in configured:
                raise ValueError(
                    f"{vendor}: a command that names no connection uses {name!r}, which is not "
                    f"configured (configured: {', '.join(sorted(configured)) or 'none'}). Set "
                    f'default_connections.{vendor} = "<name>" to pick one, or "" to make every '
                    f"{vendor} command name its connection"
                )
        return self

    @property
    def command_types(self) -> list[str]:
        return sorted(COMMANDS)

    def connections(self, vendor: str) -> Mapping[str, ConnectionBase]:
        """The named connections of `vendor` (a section of the settings, e.g. `[pbsm.prod]`)."""
        return cast(Mapping[str, ConnectionBase], getattr(self, vendor))

    def default_connection(self, vendor: str) -> str | None:
        """The connection a command that names none uses; None when it must name one."""
        return self.default_connections.get(vendor, "default") or None


def _vendor_sections() -> dict[str, Any]:
    """One `dict[str, <vendor's connection model>]` field per vendor of the command table,
    holding a `default` connection (on the simulators) unless the settings name others."""
    return {
        vendor.name: (
            dict[str, vendor.connection],  # type: ignore[name-defined]
            Field(default_factory=lambda v=vendor: {"default": v.connection()}),
        )
        for vendor in COMMANDS.vendors
    }


if TYPE_CHECKING:
    # Checkers see the static part and take the vendors' sections (`pbsm={...}`) as keyword
    # arguments; the sections are read through `connections()`.

    class Settings(_Settings):
        def __init__(self, **values: Any) -> None: ...

else:
    Settings = create_model(
        "Settings", __base__=_Settings, __module__=__name__, **_vendor_sections()
    )


_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; `config_file` falls back to $FLOWGATE_CONFIG (read here, once)."""
    import os

    path = config_file or (
        Path(os.environ["FLOWGATE_CONFIG"]) if os.environ.get("FLOWGATE_CONFIG") else None
    )
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"settings file {path} does not exist")
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE["path"] = None
