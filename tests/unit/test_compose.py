"""compose.yaml would work: it is valid Compose, runs real `flowgate` commands with real
settings, and wires every flowgate process to the services it talks to.

Each check is a function returning the problems it finds, run on compose.yaml (no problems)
and on broken copies of it (the problem found), so no check can pass by checking nothing.
No Docker engine is needed: the schema is the Compose specification's own, vendored by
check-jsonschema (`check-jsonschema --builtin-schema vendor.compose-spec compose.yaml`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import io
import json
import os
import re
import shlex
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, SecretStr

from workers.settings import Settings, load_settings
from workers.vendors._connection import ConnectionBase

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
TEXT = COMPOSE.read_text()

# Roles that run until stopped and do the work: they need a readiness healthcheck, and serve
# /metrics beside it.
LONG_LIVED = {"worker", "poller", "scheduler"}
# Roles that only serve: their settings point nowhere.
SERVE_ONLY = {"simulate"}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}


Doc = dict[str, Any]


def load(text: str = TEXT) -> Doc:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def mutated(old: str, new: str) -> Doc:
    """compose.yaml with `old` (which must be there) replaced by `new`."""
    assert old in TEXT, f"compose.yaml no longer has {old!r}: update this mutation"
    return load(TEXT.replace(old, new))


def argv(service: dict[str, Any], key: str) -> list[str]:
    value = service.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as Compose hands it over (a null value: taken from the host,
    so unknown here)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    env = {}
    for name, value in raw.items():
        if value is None:
            continue
        env[str(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def flowgate_services(doc: Doc) -> dict[str, list[str]]:
    """Every service that runs a `flowgate` command: name -> its arguments after `flowgate`."""
    found = {}
    for name, service in doc.get("services", {}).items():
        command = argv(service, "entrypoint") + argv(service, "command")
        if command[:1] == ["flowgate"]:
            found[name] = command[1:]
    return found


# -- (a) the Compose specification ---------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


@functools.cache
def compose_validator() -> jsonschema.protocols.Validator:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def schema_problems(doc: Doc) -> list[str]:
    validator = compose_validator()
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(doc)
    )


def test_compose_follows_the_compose_specification() -> None:
    assert schema_problems(load()) == []


def test_check_jsonschema_accepts_it_too() -> None:
    """The issue's own command, offline: its YAML loader (ruamel, YAML 1.2) is not ours."""
    command = ["check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


SCHEMA_MUTATIONS = [
    ("    healthcheck: *readyz\n    stop", "    helthcheck: *readyz\n    stop", "helthcheck"),
    ("replicas: 3", "replicas: [3]", "services/worker/deploy/replicas"),
    ("condition: service_healthy", "condition: service_happy", "service_happy"),
    ("  interval: 10s", "  interval: [10s]", "worker/healthcheck/interval"),
]


@pytest.mark.parametrize(
    ("old", "new", "problem"), SCHEMA_MUTATIONS, ids=[p for *_, p in SCHEMA_MUTATIONS]
)
def test_schema_check_catches(old: str, new: str, problem: str) -> None:
    problems = schema_problems(mutated(old, new))
    assert problems and any(problem in p for p in problems), problems


# -- (b) commands --------------------------------------------------------------------------


def command_problems(doc: Doc) -> list[str]:
    from workers.cli import _parser

    problems = []
    for name, args in flowgate_services(doc).items():
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                _parser().parse_args(args)
        except SystemExit as stop:
            said = stderr.getvalue().strip().splitlines()[-1:] or [f"exit {stop.code}"]
            problems.append(f"{name}: flowgate {shlex.join(args)}: {said[0]}")
    for name, service in doc.get("services", {}).items():
        ours = service.get("build") is not None or service.get("image") == "flowgate:latest"
        if ours and name not in flowgate_services(doc):
            problems.append(f"{name}: runs the flowgate image without a flowgate command")
    return problems


def test_every_command_is_a_real_flowgate_command() -> None:
    doc = load()
    assert set(flowgate_services(doc)) == {"simulators", "declare", "worker", "poller", "scheduler"}
    assert command_problems(doc) == []


COMMAND_MUTATIONS = [
    ('["flowgate", "worker"]', '["flowgate", "wroker"]', "invalid choice: 'wroker'"),
    ('["flowgate", "poller"]', "flowgate pollers", "invalid choice: 'pollers'"),
    ('["flowgate", "worker"]', '["flowgate", "worker", "--comands", "x"]', "--comands"),
    ('["flowgate", "poller"]', '["flowgate", "poller", "--prefetch", "lots"]', "'lots'"),
    ('["flowgate", "declare"]', '["flowgate"]', "required"),
    ('["flowgate", "declare"]', '["flowgate", "declare", "--help"]', "exit 0"),
    ('    command: ["flowgate", "declare"]\n', "", "without a flowgate command"),
]


@pytest.mark.parametrize(
    ("old", "new", "problem"), COMMAND_MUTATIONS, ids=[p for *_, p in COMMAND_MUTATIONS]
)
def test_command_check_catches(old: str, new: str, problem: str) -> None:
    problems = command_problems(mutated(old, new))
    assert problems and any(problem in p for p in problems), problems


# -- (c) setting names ---------------------------------------------------------------------


def _secret_files(model: type[BaseModel]) -> set[str]:
    """`<secret>_file` keys a connection reads its secrets from (ConnectionBase's validator)."""
    if not issubclass(model, ConnectionBase):
        return set()
    return {f"{name}_file" for name, f in model.model_fields.items() if f.annotation is SecretStr}


def _resolves(annotation: Any, path: list[str], case_sensitive: bool) -> bool:
    """Whether `path` (the parts of a variable name after the prefix) names a setting under a
    field of type `annotation`. A path may stop at a model or a dict: its value is JSON."""
    if not path:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _resolves(typing.get_args(annotation)[0], path, case_sensitive)
    if origin in (typing.Union, types.UnionType):
        return any(
            _resolves(arg, path, case_sensitive)
            for arg in typing.get_args(annotation)
            if arg is not type(None)
        )
    if origin is dict:
        # dict[str, Connection]: the first part is a name of the user's choosing.
        return bool(path[0]) and _resolves(typing.get_args(annotation)[1], path[1:], case_sensitive)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fold = (lambda s: s) if case_sensitive else str.lower
        fields = {fold(name): field for name, field in annotation.model_fields.items()}
        head = fold(path[0])
        if head in fields:
            return _resolves(fields[head].annotation, path[1:], case_sensitive)
        return len(path) == 1 and head in {fold(n) for n in _secret_files(annotation)}
    return False  # a plain value has nothing under it


def is_setting(variable: str) -> bool:
    config = Settings.model_config
    prefix = config.get("env_prefix") or ""
    delimiter = config.get("env_nested_delimiter") or ""
    case_sensitive = bool(config.get("case_sensitive", False))
    name = variable if case_sensitive else variable.upper()
    prefix = prefix if case_sensitive else prefix.upper()
    if not name.startswith(prefix) or name == prefix:
        return False
    path = name[len(prefix) :].split(delimiter) if delimiter else [name[len(prefix) :]]
    return all(path) and _resolves(Settings, path, case_sensitive)


@contextlib.contextmanager
def only_env(env: dict[str, str]) -> Iterator[None]:
    """os.environ with no FLOWGATE_* variable but those of `env`."""
    with mock.patch.dict(os.environ):
        for name in [n for n in os.environ if n.upper().startswith("FLOWGATE_")]:
            del os.environ[name]
        os.environ.update(env)
        yield


def service_settings(env: dict[str, str]) -> Settings:
    flowgate_env = {k: v for k, v in env.items() if k.upper().startswith("FLOWGATE_")}
    with only_env(flowgate_env):
        return load_settings()


def environment_problems(doc: Doc) -> list[str]:
    problems = []
    for name in flowgate_services(doc):
        env = environment(doc["services"][name])
        for variable in sorted(env):
            flowgate = variable.upper().startswith("FLOWGATE_")
            if flowgate and not is_setting(variable):
                problems.append(f"{name}: {variable} is not a flowgate setting")
        try:
            service_settings(env)
        except Exception as exc:  # what `flowgate` would print as "bad settings"
            problems.append(f"{name}: bad settings: {exc}")
    return problems


def test_every_flowgate_variable_is_a_setting() -> None:
    doc = load()
    names = {v for s in flowgate_services(doc) for v in environment(doc["services"][s])}
    assert "FLOWGATE_PBSM__DEFAULT__BASE_URL" in names
    assert environment_problems(doc) == []


ENVIRONMENT_MUTATIONS = [
    ("FLOWGATE_IDEMPOTENCY__REDIS_URL", "FLOWGATE_IDEMPOTENCY__REDIS_ULR", "REDIS_ULR is not"),
    ("FLOWGATE_IDEMPOTENCY__REDIS_URL", "FLOWGATE_REDIS_URL", "FLOWGATE_REDIS_URL is not"),
    ("FLOWGATE_PBSM__DEFAULT__BASE_URL", "FLOWGATE_PBSM__DEFAULT__URL", "DEFAULT__URL is not"),
    ("FLOWGATE_PBSM__DEFAULT__BASE_URL", "FLOWGATE_PBSMS__DEFAULT__BASE_URL", "PBSMS"),
    ("FLOWGATE_AMQP_URL:", "FLOWGATE_AMQP_URL__HOST:", "AMQP_URL__HOST is not"),
    ("FLOWGATE_HEALTH_PORT", "FLOWGATE_HEALTHPORT", "HEALTHPORT is not"),
    # A real name with a value the settings refuse.
    ("FLOWGATE_PBSM__DEFAULT__BASE_URL", "FLOWGATE_PBSM__BASE_URL", "bad settings"),
    ("FLOWGATE_AMQP_URL:", "FLOWGATE_PREFETCH: lots\n    FLOWGATE_AMQP_URL:", "bad settings"),
]


@pytest.mark.parametrize(
    ("old", "new", "problem"), ENVIRONMENT_MUTATIONS, ids=[p for *_, p in ENVIRONMENT_MUTATIONS]
)
def test_environment_check_catches(old: str, new: str, problem: str) -> None:
    problems = environment_problems(mutated(old, new))
    assert problems and any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("variable", "valid"),
    [
        ("FLOWGATE_AMQP_URL", True),
        ("flowgate_amqp_url", True),
        ("FLOWGATE_AMQP_URL_FILE", True),
        ("FLOWGATE_POLLER__HOLD", True),
        ("FLOWGATE_POLLER", True),
        ("FLOWGATE_PBSM__PBSM_PROD__CLIENT_SECRET", True),
        ("FLOWGATE_PBSM__PBSM_PROD__CLIENT_SECRET_FILE", True),
        ("FLOWGATE_PBSM__DEFAULT__POLL__MAX_DELAY", True),
        ("FLOWGATE_INFORMATICA__EU__FAILURE_STATUSES", True),
        ("FLOWGATE_PBSM__DEFAULT__BASE_URL_FILE", False),
        ("FLOWGATE_PBSM__DEFAULT__POLL__MAX_DELAY__X", False),
        ("FLOWGATE_POLLER__HOLD__X", False),
        ("FLOWGATE_PBSM____BASE_URL", False),
        ("FLOWGATE_", False),
        ("AMQP_URL", False),
    ],
)
def test_setting_names_are_read_from_the_models(variable: str, valid: bool) -> None:
    assert is_setting(variable) is valid


def test_a_name_the_walk_accepts_is_one_pydantic_settings_reads() -> None:
    """The walk agrees with pydantic-settings itself on the nested shapes."""
    settings = service_settings(
        {
            "FLOWGATE_POLLER__HOLD": "0.5",
            "FLOWGATE_PBSM__DEFAULT__POLL__MAX_DELAY": "7",
            "FLOWGATE_TMF622__DEFAULT__BASE_URL": "http://elsewhere:1",
        }
    )
    assert settings.poller.hold == 0.5
    dumped = settings.model_dump()
    assert dumped["pbsm"]["default"]["poll"]["max_delay"] == 7
    assert dumped["tmf622"]["default"]["base_url"] == "http://elsewhere:1"


# -- (d) wiring: addresses, dependencies, health checks ------------------------------------


def _addresses(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(setting, host) for every URL anywhere in the settings."""
    if isinstance(value, BaseModel):
        if getattr(value, "enabled", True) is False:
            return  # a switched-off part (tracing) connects nowhere
        for name in type(value).model_fields:
            yield from _addresses(getattr(value, name), f"{where}.{name}" if where else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _addresses(item, f"{where}.{key}")
    elif isinstance(value, str | SecretStr):
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        parts = urlsplit(text)
        if parts.scheme and parts.netloc:
            yield where, parts.hostname or ""


def _dependencies(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _probe_urls(healthcheck: dict[str, Any]) -> list[str]:
    test = healthcheck.get("test") or []
    text = test if isinstance(test, str) else " ".join(str(part) for part in test)
    return re.findall(r"https?://[^\s'\"]+", text)


def wiring_problems(doc: Doc) -> list[str]:
    problems = []
    services = doc.get("services", {})
    for name, args in flowgate_services(doc).items():
        service = services[name]
        env = environment(service)
        role = args[0] if args else ""
        if role in SERVE_ONLY:
            continue
        try:
            settings = service_settings(env)
        except Exception:
            problems.append(f"{name}: bad settings (see environment_problems)")
            continue
        depends = _dependencies(service)
        if settings.idempotency.store != "redis":
            problems.append(f"{name}: idempotency store is {settings.idempotency.store}")
        for setting, host in _addresses(settings, ""):
            if host in LOOPBACK or host not in services:
                problems.append(f"{name}: {setting} points at {host}, not a compose service")
            elif depends.get(host) != "service_healthy":
                problems.append(f"{name}: does not wait for {host} to be healthy ({setting})")
            elif not services[host].get("healthcheck"):
                problems.append(f"{name}: {host} has no healthcheck to wait for")
        if role in LONG_LIVED:
            check = service.get("healthcheck") or {}
            port = settings.health_port
            if port is None or settings.health_host not in {"0.0.0.0", "::"}:
                problems.append(f"{name}: serves no health endpoint on all interfaces")
            if not check.get("test") or check.get("disable"):
                problems.append(f"{name}: has no healthcheck")
                continue
            expected = f"http://127.0.0.1:{port}/readyz"
            if expected not in _probe_urls(check):
                problems.append(f"{name}: healthcheck does not probe {expected}")
    return problems


def test_flowgate_processes_are_wired_to_their_services() -> None:
    assert wiring_problems(load()) == []


def _drop(doc: Doc, service: str, *path: str) -> Doc:
    """A copy of `doc` with `path` removed from one service (anchored values copied, not
    shared with the other services)."""
    doc = copy.deepcopy(doc)
    node = doc["services"][service]
    for key in path[:-1]:
        node[key] = copy.deepcopy(node[key])
        node = node[key]
    del node[path[-1]]
    return doc


WIRING_MUTATIONS: list[tuple[Callable[[], Doc], str]] = [
    (
        lambda: mutated("    FLOWGATE_IDEMPOTENCY__REDIS_URL: redis://redis:6379/0\n", ""),
        "worker: idempotency.redis_url points at 127.0.0.1",
    ),
    (
        lambda: mutated("redis://redis:6379/0", "redis://localhost:6379/0"),
        "poller: idempotency.redis_url points at localhost",
    ),
    (
        lambda: mutated("redis://redis:6379/0", "redis://cache:6379/0"),
        "worker: idempotency.redis_url points at cache",
    ),
    (
        lambda: _drop(load(), "poller", "environment", "FLOWGATE_IDEMPOTENCY__REDIS_URL"),
        "poller: idempotency.redis_url points at 127.0.0.1",
    ),
    (
        lambda: mutated(
            "FLOWGATE_TMF622__DEFAULT__BASE_URL: http://simulators:8700",
            "FLOWGATE_TMF622__DEFAULT__BASE_URL: http://127.0.0.1:8700",
        ),
        "worker: tmf622.default.base_url points at 127.0.0.1",
    ),
    (
        lambda: _drop(load(), "worker", "depends_on", "redis"),
        "worker: does not wait for redis to be healthy",
    ),
    (
        lambda: mutated(
            "    redis:\n      condition: service_healthy",
            "    redis:\n      condition: service_started",
        ),
        "poller: does not wait for redis to be healthy",
    ),
    (lambda: _drop(load(), "redis", "healthcheck"), "worker: redis has no healthcheck"),
    (
        lambda: mutated(
            "    FLOWGATE_AMQP_URL:",
            "    FLOWGATE_IDEMPOTENCY__STORE: memory\n    FLOWGATE_AMQP_URL:",
        ),
        "worker: idempotency store is memory",
    ),
    (lambda: _drop(load(), "worker", "healthcheck"), "worker: has no healthcheck"),
    (lambda: _drop(load(), "poller", "healthcheck"), "poller: has no healthcheck"),
    (lambda: _drop(load(), "scheduler", "healthcheck"), "scheduler: has no healthcheck"),
    (lambda: mutated("8081/readyz", "8081/healthz"), "worker: healthcheck does not probe"),
    (lambda: mutated("8081/readyz", "8082/readyz"), "poller: healthcheck does not probe"),
    (
        lambda: mutated('FLOWGATE_HEALTH_PORT: "8081"', 'FLOWGATE_HEALTH_PORT: "8082"'),
        "worker: healthcheck does not probe http://127.0.0.1:8082/readyz",
    ),
    (
        lambda: mutated('FLOWGATE_HEALTH_HOST: "0.0.0.0"', 'FLOWGATE_HEALTH_HOST: "127.0.0.1"'),
        "worker: serves no health endpoint on all interfaces",
    ),
]


@pytest.mark.parametrize(
    ("make", "problem"), WIRING_MUTATIONS, ids=[p for _, p in WIRING_MUTATIONS]
)
def test_wiring_check_catches(make: Callable[[], Doc], problem: str) -> None:
    problems = wiring_problems(make())
    assert problems and any(problem in p for p in problems), problems


@pytest.mark.parametrize("ready", [True, False])
async def test_the_healthcheck_command_follows_readiness(ready: bool) -> None:
    """Run the worker's healthcheck against a real `HealthServer`: exit 0 when ready, not
    when not. (`python` is the image's; here the test's own interpreter stands in.)"""
    from workers.health import HealthServer

    async def check() -> tuple[bool, dict[str, object]]:
        return ready, {}

    worker = load()["services"]["worker"]
    test = worker["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    port = service_settings(environment(worker)).health_port
    server = HealthServer(host="127.0.0.1", port=0, ready=check)
    await server.start()
    try:
        command = [sys.executable] + [
            part.replace(f":{port}/", f":{server.port}/") for part in test[2:]
        ]
        assert command != [sys.executable, *test[2:]], f"the probe does not use port {port}"
        probe = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        code = await asyncio.wait_for(probe.wait(), 30)
    finally:
        await server.stop()
    assert (code == 0) is ready


# -- (e) Prometheus scrapes every process that serves /metrics -----------------------------

PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
PROMETHEUS_TEXT = (COMPOSE.parent / "deploy" / "prometheus.yml").read_text()


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts: target -> source (short `src:dst[:mode]` or long syntax)."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            found[rest.split(":")[0]] = source
        else:
            found[str(volume.get("target"))] = str(volume.get("source"))
    return found


def _scrape_targets(config: Doc) -> dict[str, list[tuple[str, Any, str]]]:
    """host -> (job, port, metrics path) for every target of every job."""
    targets: dict[str, list[tuple[str, Any, str]]] = {}
    for job in config.get("scrape_configs") or []:
        name, path = job.get("job_name", "?"), job.get("metrics_path", "/metrics")
        for sd in job.get("dns_sd_configs") or []:
            for host in sd.get("names") or []:
                targets.setdefault(host, []).append((name, sd.get("port"), path))
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                targets.setdefault(host, []).append((name, int(port), path))
    return targets


def scrape_problems(doc: Doc, config_text: str = PROMETHEUS_TEXT) -> list[str]:
    problems = []
    services = doc.get("services", {})
    runs = [n for n, s in services.items() if PROMETHEUS_CONFIG in _mounts(s)]
    if [_mounts(services[n])[PROMETHEUS_CONFIG] for n in runs] != ["./deploy/prometheus.yml"]:
        problems.append("no one service runs Prometheus on ./deploy/prometheus.yml")
    config = yaml.safe_load(config_text)
    jobs = [job.get("job_name") for job in config.get("scrape_configs") or []]
    if len(jobs) != len(set(jobs)):
        problems.append(f"job names repeat: {jobs}")
    targets = _scrape_targets(config)
    ours = flowgate_services(doc)
    for host in sorted(set(targets) - set(ours)):
        problems.append(f"{host}: scraped, but not a flowgate service of compose.yaml")
    for name, args in ours.items():
        try:
            settings = service_settings(environment(services[name]))
        except Exception:
            continue  # environment_problems reports it
        port = settings.health_port if args[:1] and args[0] in LONG_LIVED else None
        if port is not None and name not in targets:
            problems.append(f"{name}: serves /metrics on {port} but no job scrapes it")
        for job, scraped, path in targets.get(name, []):
            if port is None:
                problems.append(f"{job}: scrapes {name}, which serves no health port")
            elif scraped != port:
                problems.append(
                    f"{job}: scrapes {name} on port {scraped}, its health port is {port}"
                )
            if path != "/metrics":
                problems.append(f"{job}: scrapes {path}, not /metrics")
    return problems


def test_prometheus_scrapes_every_process_with_a_health_port() -> None:
    doc = load()
    targets = set(_scrape_targets(yaml.safe_load(PROMETHEUS_TEXT)))
    assert targets == {"worker", "poller", "scheduler"}
    assert scrape_problems(doc) == []


def _prometheus(old: str, new: str) -> str:
    assert old in PROMETHEUS_TEXT, f"deploy/prometheus.yml no longer has {old!r}"
    return PROMETHEUS_TEXT.replace(old, new)


def _job(name: str) -> str:
    """One job of deploy/prometheus.yml, as written (up to the next job, or the end)."""
    start = PROMETHEUS_TEXT.index(f"  - job_name: {name}\n")
    end = PROMETHEUS_TEXT.find("  - job_name:", start + 1)
    return PROMETHEUS_TEXT[start : end if end >= 0 else None]


_POLLER_JOB = _job("flowgate-poller")
_SCHEDULER_JOB = _job("flowgate-scheduler")

SCRAPE_MUTATIONS: list[tuple[Callable[[], tuple[Doc, str]], str]] = [
    (
        lambda: (load(), _prometheus(_POLLER_JOB, "")),
        "poller: serves /metrics on 8081 but no job scrapes it",
    ),
    (
        lambda: (load(), _prometheus(_SCHEDULER_JOB, "")),
        "scheduler: serves /metrics on 8081 but no job scrapes it",
    ),
    (
        lambda: (load(), _prometheus("names: [worker]", "names: [workers]")),
        "workers: scraped, but not a flowgate service",
    ),
    (
        lambda: (load(), _prometheus("names: [poller]", "names: [poller, simulators]")),
        "flowgate-poller: scrapes simulators, which serves no health port",
    ),
    (
        lambda: (load(), _prometheus("port: 8081", "port: 9100")),
        "flowgate-worker: scrapes worker on port 9100, its health port is 8081",
    ),
    (
        lambda: (load(), _prometheus("metrics_path: /metrics", "metrics_path: /metric")),
        "flowgate-worker: scrapes /metric, not /metrics",
    ),
    (
        lambda: (load(), _prometheus("job_name: flowgate-poller", "job_name: flowgate-worker")),
        "job names repeat",
    ),
    (
        lambda: (
            mutated('FLOWGATE_HEALTH_PORT: "8081"', 'FLOWGATE_HEALTH_PORT: "8082"'),
            PROMETHEUS_TEXT,
        ),
        "flowgate-poller: scrapes poller on port 8081, its health port is 8082",
    ),
    (
        lambda: (_drop(load(), "prometheus", "volumes"), PROMETHEUS_TEXT),
        "no one service runs Prometheus",
    ),
    (
        lambda: (mutated("./deploy/prometheus.yml:", "./prometheus.yml:"), PROMETHEUS_TEXT),
        "no one service runs Prometheus",
    ),
]


@pytest.mark.parametrize(
    ("make", "problem"), SCRAPE_MUTATIONS, ids=[p for _, p in SCRAPE_MUTATIONS]
)
def test_scrape_check_catches(make: Callable[[], tuple[Doc, str]], problem: str) -> None:
    doc, config = make()
    problems = scrape_problems(doc, config)
    assert problems and any(problem in p for p in problems), problems
