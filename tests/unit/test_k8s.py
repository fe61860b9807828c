"""deploy/k8s would work: every manifest is valid for its kind, and agrees with flowgate on
commands, settings, secrets, probes, ports, replicas and queues.

The manifests are what `kubectl kustomize deploy/k8s` renders (what `kubectl apply -k` sends;
kubectl, with Kustomize built in, comes with the machine images the tests and CI run on), plus
secret.example.yaml.
The Kubernetes kinds are checked against Kubernetes' own schemas (the strict ones: an unknown
field fails) from the `kubernetes-validate` package; KEDA's kinds against KEDA's CRDs,
vendored in k8s_schemas/ (its README says from where). A pod's view is emulated: its
environment and mounted files as Kubernetes would give them, its settings loaded through
`load_settings` from there, its command parsed by the `flowgate` parser.

As in test_compose.py, each check is a function returning the problems it finds, run on the
manifests (no problems) and on broken copies (the problem found).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import io
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import BaseModel, SecretStr

from tests.unit.test_compose import LOOPBACK, is_setting, only_env
from workers.commands import COMMANDS
from workers.settings import Settings, load_settings
from workers.topology import POLL_QUEUE, build_topology, command_queue
from workers.vendors.pbsm import PbsmConnection

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
SECRET_EXAMPLE = DEPLOY / "secret.example.yaml"
KEDA_VERSION = "2.20.2"
KEDA_CRDS = Path(__file__).parent / "k8s_schemas" / f"keda-{KEDA_VERSION}"
# An older release (the manifests use no API newer than 1.29's) and the newest with schemas.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

# Peak RSS measured, in MB: worker and poller from BENCHMARKS.md (the poller's 114 MB while
# holding 2,048 runs, 4x poller.max_held), the scheduler on 2026-11-26 with two schedules
# (VmHWM 69,616 KiB).
PEAK_RSS_MB = {"worker": 102, "poller": 114, "scheduler": 72}

Doc = dict[str, Any]


@functools.cache
def rendered_text() -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with Kustomize built in) is needed to render deploy/k8s"
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def load(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def manifests() -> list[Doc]:
    """What `kubectl apply -k deploy/k8s` applies, then the example Secrets."""
    return load(rendered_text()) + load(SECRET_EXAMPLE.read_text())


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.get("kind") == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    found = [d for d in of_kind(docs, kind) if d.get("metadata", {}).get("name") == name]
    return found[0] if len(found) == 1 else None


# -- (a) schemas ----------------------------------------------------------------------------


def kubernetes_problems(docs: list[Doc], version: str) -> list[str]:
    problems = []
    for doc in docs:
        if str(doc.get("apiVersion", "")).startswith("keda.sh/"):
            continue
        what = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            problems.append(f"{what}: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path)) or "(top)"
            problems.append(f"{what}: {where}: {exc.message}")
    return problems


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 schema of a CRD with unknown fields refused, as `kubectl apply` does
    (field validation Strict) where the schema does not keep them
    (x-kubernetes-preserve-unknown-fields)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        keep = out.get("x-kubernetes-preserve-unknown-fields")
        out.setdefault("additionalProperties", bool(keep))
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [_strict(s) for s in out[key]]
    return out


@functools.cache
def keda_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator of KEDA's CRD schema for it."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(KEDA_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            jsonschema.Draft4Validator.check_schema(schema)
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft4Validator(schema)
    return validators


def keda_problems(docs: list[Doc]) -> list[str]:
    problems = []
    for doc in docs:
        api_version = str(doc.get("apiVersion", ""))
        if not api_version.startswith("keda.sh/"):
            continue
        what = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        validator = keda_validators().get((api_version, str(doc.get("kind"))))
        if validator is None:
            problems.append(f"{what}: no KEDA {KEDA_VERSION} schema for {api_version}")
            continue
        for error in validator.iter_errors(doc):
            where = ".".join(map(str, error.absolute_path)) or "(top)"
            problems.append(f"{what}: {where}: {error.message}")
        if not doc.get("metadata", {}).get("name"):
            problems.append(f"{what}: no metadata.name")
        # The CRD's one CEL rule (x-kubernetes-validations), which JSON Schema cannot say.
        spec = doc.get("spec") or {}
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        counts = isinstance(low, int) and isinstance(high, int)
        if doc.get("kind") == "ScaledObject" and counts and low > high:
            problems.append(f"{what}: minReplicaCount must be <= maxReplicaCount")
    return problems


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_follows_the_kubernetes_schema(version: str) -> None:
    docs = manifests()
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= {d["kind"] for d in docs}
    assert kubernetes_problems(docs, version) == []


def test_keda_objects_follow_kedas_crds() -> None:
    docs = manifests()
    assert {"ScaledObject", "TriggerAuthentication"} <= {d["kind"] for d in docs}
    assert keda_problems(docs) == []


Edit = Callable[[list[Doc]], None]


def _node(doc: Doc, path: str) -> tuple[Any, str | int]:
    """The container of the last part of `path`, and that part. Parts are separated by dots,
    a key with dots in it is bracketed (`annotations[prometheus.io/port]`), digits index lists."""
    found = re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", path)
    parts: list[str | int] = [b or (int(p) if p.isdigit() else p) for b, p in found]
    node: Any = doc
    for part in parts[:-1]:
        node = node[part]
    return node, parts[-1]


def setting(kind: str, name: str, path: str, value: Any) -> Edit:
    def edit(docs: list[Doc]) -> None:
        doc = named(docs, kind, name)
        assert doc is not None, f"no {kind} {name}"
        node, last = _node(doc, path)
        node[last] = value

    return edit


def dropping(kind: str, name: str, path: str) -> Edit:
    def edit(docs: list[Doc]) -> None:
        doc = named(docs, kind, name)
        assert doc is not None, f"no {kind} {name}"
        node, last = _node(doc, path)
        del node[last]

    return edit


def edited(*edits: Edit) -> list[Doc]:
    docs = copy.deepcopy(manifests())
    for edit in edits:
        edit(docs)
    return docs


WORKER, POLLER, SCHEDULER = "flowgate-worker", "flowgate-poller", "flowgate-scheduler"
POD = "spec.template.spec"
CONTAINER = f"{POD}.containers.0"

SCHEMA_MUTATIONS: list[tuple[Edit, str]] = [
    (setting("Deployment", WORKER, f"{CONTAINER}.livenessProbes", {}), "livenessProbes"),
    (setting("Deployment", POLLER, f"{CONTAINER}.resources.requests", "128Mi"), "requests"),
    (setting("Deployment", SCHEDULER, "spec.replicas", "1"), "spec.replicas"),
    (setting("Service", "flowgate-metrics", "spec.ports.0.port", "8081"), "ports.0.port"),
    (setting("PodDisruptionBudget", "flowgate-worker", "spec.maxUnavailabe", 1), "maxUnavail"),
    (setting("Deployment", WORKER, "apiVersion", "apps/v2"), "Couldn't find schema"),
    (setting("Secret", "flowgate-amqp", "stringData.worker", 1), "stringData.worker"),
]


@pytest.mark.parametrize(
    ("edit", "problem"), SCHEMA_MUTATIONS, ids=[p for _, p in SCHEMA_MUTATIONS]
)
def test_kubernetes_schema_check_catches(edit: Edit, problem: str) -> None:
    problems = kubernetes_problems(edited(edit), K8S_VERSIONS[-1])
    assert problems and any(problem in p for p in problems), problems


SO_WORKER = ("ScaledObject", WORKER)
KEDA_MUTATIONS: list[tuple[Edit, str]] = [
    (setting(*SO_WORKER, "spec.minReplicas", 1), "'minReplicas' was unexpected"),
    (setting(*SO_WORKER, "spec.maxReplicaCount", "10"), "spec.maxReplicaCount"),
    (setting(*SO_WORKER, "spec.triggers.0.metadata.value", 200), "triggers.0.metadata.value"),
    (setting(*SO_WORKER, "spec.triggers.1.authenticationRef.kind", "Secret"), "is not one of"),
    (setting(*SO_WORKER, "spec.triggers", []), "should be non-empty"),
    (dropping(*SO_WORKER, "spec.scaleTargetRef"), "'scaleTargetRef' is a required property"),
    (setting(*SO_WORKER, "spec.minReplicaCount", 20), "minReplicaCount must be <="),
    (
        setting("TriggerAuthentication", "flowgate-rabbitmq", "spec.secretTargetRef.0.secret", "x"),
        "'secret' was unexpected",
    ),
    (setting(*SO_WORKER, "apiVersion", "keda.sh/v1"), "no KEDA 2.20.2 schema for keda.sh/v1"),
]


@pytest.mark.parametrize(("edit", "problem"), KEDA_MUTATIONS, ids=[p for _, p in KEDA_MUTATIONS])
def test_keda_schema_check_catches(edit: Edit, problem: str) -> None:
    problems = keda_problems(edited(edit))
    assert problems and any(problem in p for p in problems), problems


# -- (b) the kustomization takes every manifest, and no Secret ------------------------------


def kustomization_problems(kustomization: Doc, files: list[str], docs: list[Doc]) -> list[str]:
    problems = []
    listed = set(kustomization.get("resources") or [])
    generated = {f for g in kustomization.get("configMapGenerator") or [] for f in g["files"]}
    for name in sorted(set(files) - listed - generated - {"kustomization.yaml"}):
        if name != SECRET_EXAMPLE.name and name.endswith((".yaml", ".yml", ".toml")):
            problems.append(f"{name}: in deploy/k8s but not in kustomization.yaml")
    if SECRET_EXAMPLE.name in listed:
        problems.append(f"{SECRET_EXAMPLE.name}: applying it would overwrite the real Secrets")
    problems += [f"renders a Secret, {s['metadata']['name']}" for s in of_kind(docs, "Secret")]
    return problems


def _kustomization() -> Doc:
    doc: Doc = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return doc


def test_the_kustomization_takes_every_manifest_and_no_secret() -> None:
    files = sorted(p.name for p in DEPLOY.iterdir())
    assert kustomization_problems(_kustomization(), files, load(rendered_text())) == []


def test_kustomization_check_catches() -> None:
    files = sorted(p.name for p in DEPLOY.iterdir())
    rendered = load(rendered_text())
    dropped = _kustomization()
    dropped["resources"].remove("keda.yaml")
    assert kustomization_problems(dropped, files, rendered) == [
        "keda.yaml: in deploy/k8s but not in kustomization.yaml"
    ]
    added = _kustomization()
    added["resources"].append(SECRET_EXAMPLE.name)
    secrets = load(SECRET_EXAMPLE.read_text())
    assert kustomization_problems(added, files, rendered + secrets) == [
        "secret.example.yaml: applying it would overwrite the real Secrets",
        *(f"renders a Secret, {s['metadata']['name']}" for s in secrets),
    ]


# -- (c) each pod: its command, settings, secrets, probes, resources -----------------------


@dataclass
class Pod:
    """One Deployment's container as Kubernetes would start it."""

    deployment: Doc
    container: Doc
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # absolute path -> content
    mounts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def args(self) -> list[str]:
        command = [str(a) for a in self.container.get("command") or []]
        command += [str(a) for a in self.container.get("args") or []]
        return command[1:] if command[:1] == ["flowgate"] else command

    @property
    def role(self) -> str:
        return self.args[0] if self.args else ""


def _secret_data(secret: Doc) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def _source(docs: list[Doc], kind: str, name: str) -> dict[str, str] | None:
    doc = named(docs, kind, name)
    if doc is None:
        return None
    if kind == "Secret":
        return _secret_data(doc)
    return {k: str(v) for k, v in (doc.get("data") or {}).items()}


def _volume_files(docs: list[Doc], volume: Doc) -> tuple[dict[str, str], list[str]]:
    """relative path -> content of a configMap, secret or projected volume."""
    sources: list[tuple[str, str, list[Doc] | None]] = []
    if "configMap" in volume:
        sources.append(("ConfigMap", volume["configMap"]["name"], volume["configMap"].get("items")))
    if "secret" in volume:
        sources.append(("Secret", volume["secret"]["secretName"], volume["secret"].get("items")))
    for projected in (volume.get("projected") or {}).get("sources") or []:
        for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            if key in projected:
                sources.append((kind, projected[key]["name"], projected[key].get("items")))
    files: dict[str, str] = {}
    problems = []
    for kind, name, items in sources:
        data = _source(docs, kind, name)
        if data is None:
            problems.append(f"volume {volume['name']}: no {kind} named {name}")
            continue
        if items is None:
            files.update(data)
        for item in items or []:
            if item["key"] not in data:
                problems.append(f"volume {volume['name']}: {kind} {name} has no {item['key']}")
            else:
                files[item["path"]] = data[item["key"]]
    return files, problems


def pods(docs: list[Doc]) -> list[Pod]:
    found = []
    for deployment in of_kind(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for container in spec["containers"]:
            pod = Pod(deployment, container)
            for mount in container.get("volumeMounts") or []:
                pod.mounts.append(mount["mountPath"])
                volume = volumes.get(mount["name"])
                if volume is None:
                    pod.problems.append(f"{pod.name}: mounts {mount['name']}, no such volume")
                    continue
                files, problems = _volume_files(docs, volume)
                pod.problems += [f"{pod.name}: {p}" for p in problems]
                for path, content in files.items():
                    pod.files[f"{mount['mountPath'].rstrip('/')}/{path}"] = content
            for variable in container.get("env") or []:
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref is None:
                    pod.env[variable["name"]] = str(variable.get("value", ""))
                    continue
                data = _source(docs, "Secret", ref["name"]) or {}
                if ref["key"] not in data:
                    pod.problems.append(f"{pod.name}: {variable['name']}: no {ref} in a Secret")
                else:
                    pod.env[variable["name"]] = data[ref["key"]]
            found.append(pod)
    return found


@contextlib.contextmanager
def pod_files(pod: Pod, root: Path) -> Iterator[Callable[[str], str]]:
    """The pod's mounted files laid under `root`; yields the function that maps a path in the
    pod (in a setting, a variable, a file) to where it is here."""
    mounts = sorted(pod.mounts, key=len, reverse=True)
    pattern = re.compile(
        "(?<![\\w/.])(" + "|".join(re.escape(m.rstrip("/")) for m in mounts) + ")(?=/)"
        if mounts
        else "(?!)"
    )

    def here(text: str) -> str:
        return pattern.sub(lambda m: str(root) + m.group(1), text)

    for path, content in pod.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(here(content) if path.endswith(".toml") else content)
    yield here


def _secrets_in(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(setting, value) for every secret anywhere in the settings."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name), f"{where}.{name}" if where else name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secrets_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, SecretStr):
        yield where, value.get_secret_value()


def _urls_in(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _urls_in(getattr(value, name), f"{where}.{name}" if where else name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _urls_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, str | SecretStr):
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        parts = urlsplit(text)
        if parts.scheme and parts.netloc:
            yield where, parts.hostname or ""


def pod_settings(pod: Pod, root: Path) -> tuple[Settings | None, list[str]]:
    """The settings the pod's process would load, or why it would not start."""
    problems = []
    for variable in sorted(pod.env):
        # FLOWGATE_CONFIG names the settings file: load_settings reads it, no field holds it.
        known = is_setting(variable) or variable == "FLOWGATE_CONFIG"
        if variable.upper().startswith("FLOWGATE_") and not known:
            problems.append(f"{pod.name}: {variable} is not a flowgate setting")
    with pod_files(pod, root) as here:
        env = {k: here(v) for k, v in pod.env.items() if k.upper().startswith("FLOWGATE_")}
        try:
            with only_env(env):
                return load_settings(), problems
        except Exception as exc:  # what `flowgate` would print as bad settings
            return None, [*problems, f"{pod.name}: bad settings: {exc}"]


def _command_problems(pod: Pod, root: Path) -> list[str]:
    from workers.cli import _parser
    from workers.scheduler import ScheduleFileError, load_schedules

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = _parser().parse_args(pod.args)
    except SystemExit as stop:
        said = stderr.getvalue().strip().splitlines()[-1:] or [f"exit {stop.code}"]
        return [f"{pod.name}: flowgate {shlex.join(pod.args)}: {said[0]}"]
    if pod.role != "scheduler":
        return []
    with pod_files(pod, root) as here:
        try:
            load_schedules(Path(here(str(args.schedules))))
        except ScheduleFileError as exc:
            return [f"{pod.name}: {exc}"]
    return []


def _port(container: Doc, port: Any) -> Any:
    """A probe's or Service's port, a named one resolved to its number."""
    if isinstance(port, str) and not port.isdigit():
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                return declared["containerPort"]
        return f"{port} (undeclared)"
    return int(port)


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _bytes(quantity: Any) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(k|M|G|Ki|Mi|Gi|)", str(quantity))
    assert match, f"quantity {quantity!r}: not one this test reads"
    return float(match.group(1)) * _UNITS[match.group(2)]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _health_problems(pod: Pod, settings: Settings, docs: list[Doc]) -> list[str]:
    """Every role serves /healthz, /readyz and /metrics on the health port: probed there, and
    scraped (annotations, the metrics Service)."""
    name, container = pod.name, pod.container
    probes = {k: container.get(k) for k in ("livenessProbe", "readinessProbe")}
    problems = []
    port = settings.health_port
    if port is None or settings.health_host not in {"0.0.0.0", "::"}:
        problems.append(f"{name}: serves no health endpoint on the pod's address")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (probes[probe] or {}).get("httpGet")
        if not get:
            problems.append(f"{name}: no {probe}")
            continue
        if get.get("path") != path:
            problems.append(f"{name}: {probe} probes {get.get('path')}, not {path}")
        if _port(container, get.get("port")) != port:
            problems.append(f"{name}: {probe} probes port {get.get('port')}, not {port}")
    template = pod.deployment["spec"]["template"]
    annotations = template["metadata"].get("annotations") or {}
    wanted = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
    wanted["prometheus.io/path"] = "/metrics"
    for key, value in wanted.items():
        if annotations.get(key) != value:
            problems.append(f"{name}: annotation {key} is {annotations.get(key)}, not {value}")
    labels = template["metadata"].get("labels") or {}
    services = [s for s in of_kind(docs, "Service") if _selects(s["spec"].get("selector"), labels)]
    scraped = [
        p for s in services for p in s["spec"]["ports"] if _port(container, p["targetPort"]) == port
    ]
    if not scraped:
        problems.append(f"{name}: no Service exposes its health port {port} (for Prometheus)")
    return problems


def pod_problems(docs: list[Doc], root: Path) -> list[str]:
    problems = []
    secret_values = {v for s in of_kind(docs, "Secret") for v in _secret_data(s).values()}
    for i, pod in enumerate(pods(docs)):
        here = root / str(i)
        problems += pod.problems
        problems += _command_problems(pod, here)
        settings, loading = pod_settings(pod, here)
        problems += loading
        if settings is None:
            continue
        name = pod.name
        for where, value in _secrets_in(settings, ""):
            if value not in secret_values:
                problems.append(f"{name}: {where} is not from a Secret (inline, or a default)")
        # What the process talks to: RabbitMQ, Redis, the vendors (not optional extras, such
        # as a tracing endpoint that is off).
        talks_to = {"amqp_url": settings.amqp_url, "idempotency": settings.idempotency}
        talks_to.update({v.name: settings.connections(v.name) for v in COMMANDS.vendors})
        for where, host in _urls_in(talks_to, ""):
            if host in LOOPBACK:
                problems.append(f"{name}: {where} points at {host}, the pod itself")
        if settings.idempotency.store != "redis":
            problems.append(f"{name}: idempotency store is {settings.idempotency.store}")
        problems += _health_problems(pod, settings, docs)
        spec = pod.deployment["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= settings.shutdown_grace:
            problems.append(
                f"{name}: terminationGracePeriodSeconds {grace} <= shutdown_grace "
                f"{settings.shutdown_grace:g}: killed before it has handed back what it holds"
            )
        resources = pod.container.get("resources") or {}
        request = (resources.get("requests") or {}).get("memory")
        limit = (resources.get("limits") or {}).get("memory")
        peak = PEAK_RSS_MB.get(pod.role, 0) * 10**6
        if request is None or _bytes(request) < peak:
            problems.append(f"{name}: memory request {request} < measured peak {peak / 1e6:g} MB")
        if limit is None or (request is not None and _bytes(limit) < _bytes(request)):
            problems.append(f"{name}: memory limit {limit}, under the request or none")
    users: dict[str, list[str]] = {}
    for deployment, url in _amqp_urls(docs).items():
        users.setdefault(urlsplit(url).username or "guest", []).append(deployment)
    for user, sharing in sorted(users.items()):
        if len(sharing) > 1:
            problems.append(f"{', '.join(sharing)}: one RabbitMQ user, {user}, for two roles")
    roles = sorted(pod.role for pod in pods(docs))
    if roles != ["poller", "scheduler", "worker"]:
        problems.append(f"roles deployed: {roles}, not one each of poller, scheduler, worker")
    return problems


def test_every_pod_would_start_with_real_commands_settings_and_secrets(tmp_path: Path) -> None:
    docs = manifests()
    loaded = pod_settings(next(p for p in pods(docs) if p.role == "worker"), tmp_path / "w")
    settings = loaded[0]
    assert settings is not None, loaded[1]
    # The secrets came from the Secret's files, the vendors from the ConfigMap.
    assert settings.amqp_url.get_secret_value().startswith("amqps://flowgate-worker:CHANGE-ME@")
    pbsm = settings.connections("pbsm")["default"]
    assert isinstance(pbsm, PbsmConnection)
    assert pbsm.password.get_secret_value() == "CHANGE-ME"
    assert pod_problems(docs, tmp_path) == []


CONFIG = (DEPLOY / "flowgate.toml").read_text()


def _config_edit(old: str, new: str) -> Edit:
    """flowgate.toml in the rendered ConfigMap, `old` (which must be there) replaced."""

    def edit(docs: list[Doc]) -> None:
        (config,) = [c for c in of_kind(docs, "ConfigMap") if "flowgate.toml" in c["data"]]
        assert old in config["data"]["flowgate.toml"], f"flowgate.toml no longer has {old!r}"
        config["data"]["flowgate.toml"] = config["data"]["flowgate.toml"].replace(old, new)

    return edit


def _env(deployment: str, index: int, key: str, value: Any) -> Edit:
    return setting("Deployment", deployment, f"{CONTAINER}.env.{index}.{key}", value)


POD_MUTATIONS: list[tuple[Edit, str]] = [
    (setting("Deployment", WORKER, f"{CONTAINER}.command", ["flowgate", "wroker"]), "'wroker'"),
    (
        setting("Deployment", SCHEDULER, f"{CONTAINER}.command.3", "/etc/flowgate/x.toml"),
        "flowgate-scheduler: /",
    ),
    (_env(POLLER, 0, "name", "FLOWGATE_CONFIG_FILE"), "FLOWGATE_CONFIG_FILE is not a flowgate"),
    (_env(POLLER, 1, "value", "/run/secrets/amqp/uri"), "amqp_url_file: cannot read"),
    (_env(WORKER, 0, "value", "/etc/flowgate/settings.toml"), "settings file"),
    (_config_edit("health_port = 8081", "health_port = 8082"), "probes port health, not 8082"),
    (_config_edit("health_port = 8081", ""), "serves no health endpoint"),
    (_config_edit('health_host = "0.0.0.0"', ""), "serves no health endpoint"),
    (_config_edit("shutdown_grace = 30.0", "shutdown_grace = 60.0"), "terminationGracePeriod"),
    (_config_edit("password_file =", "pasword_file ="), "bad settings"),
    (_config_edit("/run/secrets/vendors/pbsm_password", "/run/pbsm_password"), "cannot read"),
    (
        _config_edit('password_file = "/run/secrets/vendors/robusta_password"', 'password = "x"'),
        "robusta.default.password is not from a Secret",
    ),
    (
        # The built-in default connection comes back, with the simulators' key.
        _config_edit(CONFIG[CONFIG.index("[productlive.default]") :], ""),
        "productlive.default.api_key is not from a Secret",
    ),
    (_config_edit('store = "redis"', 'store = "memory"'), "idempotency store is memory"),
    (
        _config_edit("https://robusta.example.internal", "http://127.0.0.1:8700"),
        "robusta.default.base_url points at 127.0.0.1",
    ),
    (dropping("Deployment", POLLER, f"{CONTAINER}.env.2"), "idempotency.redis_url is not from"),
    (
        setting("Deployment", WORKER, f"{CONTAINER}.livenessProbe.httpGet.path", "/readyz"),
        "livenessProbe probes /readyz, not /healthz",
    ),
    (
        setting("Deployment", POLLER, f"{CONTAINER}.readinessProbe.httpGet.port", "metrics"),
        "readinessProbe probes port metrics",
    ),
    (dropping("Deployment", WORKER, f"{CONTAINER}.readinessProbe"), "no readinessProbe"),
    (dropping("Deployment", SCHEDULER, f"{CONTAINER}.livenessProbe"), "scheduler: no liveness"),
    (
        setting("Deployment", SCHEDULER, f"{CONTAINER}.readinessProbe.httpGet.path", "/healthz"),
        "flowgate-scheduler: readinessProbe probes /healthz, not /readyz",
    ),
    (
        dropping("Deployment", SCHEDULER, "spec.template.metadata.labels.flowgate/metrics"),
        "flowgate-scheduler: no Service exposes its health port",
    ),
    (
        setting("Deployment", POLLER, f"{CONTAINER}.ports.0.containerPort", 9000),
        "probes port health, not 8081",
    ),
    (
        setting(
            "Deployment", WORKER, "spec.template.metadata.annotations[prometheus.io/port]", "80"
        ),
        "annotation prometheus.io/port is 80",
    ),
    (
        dropping("Deployment", POLLER, "spec.template.metadata.labels.flowgate/metrics"),
        "flowgate-poller: no Service exposes its health port",
    ),
    (setting("Deployment", WORKER, f"{POD}.terminationGracePeriodSeconds", 30), "<= shutdown"),
    (dropping("Deployment", SCHEDULER, f"{POD}.terminationGracePeriodSeconds"), "<= shutdown"),
    (
        setting("Deployment", POLLER, f"{CONTAINER}.resources.requests.memory", "100Mi"),
        "memory request 100Mi < measured peak 114 MB",
    ),
    (
        setting("Deployment", WORKER, f"{CONTAINER}.resources.limits.memory", "64Mi"),
        "memory limit 64Mi",
    ),
    (setting("Deployment", WORKER, f"{POD}.volumes.1.secret.secretName", "x"), "no Secret named"),
    (setting("Deployment", WORKER, f"{POD}.volumes.0.configMap.name", "x"), "no ConfigMap named"),
    (
        setting("Deployment", SCHEDULER, f"{POD}.volumes.0.projected.sources", []),
        "settings file /",
    ),
    (
        setting("Deployment", POLLER, f"{CONTAINER}.env.2.valueFrom.secretKeyRef.key", "redis"),
        "FLOWGATE_IDEMPOTENCY__REDIS_URL: no",
    ),
    (setting("Deployment", POLLER, f"{CONTAINER}.command.1", "worker"), "roles deployed"),
    (
        setting("Deployment", POLLER, f"{POD}.volumes.1.secret.items.0.key", "worker"),
        "flowgate-poller, flowgate-worker: one RabbitMQ user, flowgate-worker, for two roles",
    ),
    (
        setting("Deployment", WORKER, f"{POD}.volumes.1.secret.items.0.key", "workers"),
        "Secret flowgate-amqp has no workers",
    ),
]


@pytest.mark.parametrize(("edit", "problem"), POD_MUTATIONS, ids=[p for _, p in POD_MUTATIONS])
def test_pod_check_catches(edit: Edit, problem: str, tmp_path: Path) -> None:
    problems = pod_problems(edited(edit), tmp_path)
    assert problems and any(problem in p for p in problems), problems


# -- (d) replicas and autoscaling -----------------------------------------------------------


def _queues_of(trigger: Doc) -> set[str]:
    """The queues a RabbitMQ trigger counts: its name, or every queue its regex matches."""
    metadata = trigger.get("metadata") or {}
    name = str(metadata.get("queueName", ""))
    if str(metadata.get("useRegex", "false")).lower() != "true":
        return {name}
    every = {q.name for q in build_topology(COMMANDS).queues}
    return {q for q in every if re.search(name, q)}


def _vhost(url: str) -> str:
    """The virtual host of an AMQP URL, or of a management API URL as KEDA reads it (its last
    path segment); the default vhost `/` when there is none."""
    path = urlsplit(url).path
    return unquote(path.rsplit("/", 1)[-1]) or "/"


def _amqp_urls(docs: list[Doc]) -> dict[str, str]:
    """Deployment -> the AMQP URL its pod reads (the file FLOWGATE_AMQP_URL_FILE names)."""
    found = {}
    for pod in pods(docs):
        url = pod.files.get(pod.env.get("FLOWGATE_AMQP_URL_FILE", ""))
        if url is not None:
            found[pod.name] = url
    return found


def scaling_problems(docs: list[Doc]) -> list[str]:
    problems = []
    by_role = {pod.role: pod.deployment for pod in pods(docs)}
    scaled: dict[str, list[Doc]] = {}
    for so in of_kind(docs, "ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        if (
            target.get("kind", "Deployment") != "Deployment"
            or named(docs, "Deployment", target["name"]) is None
        ):
            problems.append(f"ScaledObject {so['metadata']['name']}: no Deployment {target}")
        scaled.setdefault(target["name"], []).append(so)
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    secrets = {s["metadata"]["name"]: _secret_data(s) for s in of_kind(docs, "Secret")}
    auths = {a["metadata"]["name"]: a for a in of_kind(docs, "TriggerAuthentication")}
    wanted = {"worker": {command_queue(t) for t in COMMANDS}, "poller": {POLL_QUEUE}}
    amqp_urls = _amqp_urls(docs)
    for role, deployment in by_role.items():
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]
        objects = scaled.get(name, [])
        if role == "scheduler":
            if spec.get("replicas") != 1:
                problems.append(f"{name}: replicas {spec.get('replicas')}, not exactly 1")
            if (spec.get("strategy") or {}).get("type") != "Recreate":
                problems.append(f"{name}: a rollout would run two schedulers (not Recreate)")
            if objects or name in targets:
                problems.append(f"{name}: autoscaled, but the scheduler is one replica")
            continue
        if "replicas" in spec:
            problems.append(f"{name}: sets replicas, which KEDA owns (reset by every apply)")
        if len(objects) != 1:
            problems.append(f"{name}: {len(objects)} ScaledObjects, not one")
            continue
        so = objects[0]["spec"]
        if so.get("minReplicaCount", 0) < 1:
            problems.append(f"{name}: scales to zero: nothing would answer the first command")
        triggers = so.get("triggers") or []
        listed = {
            str((t.get("metadata") or {}).get("queueName"))
            for t in triggers
            if str((t.get("metadata") or {}).get("useRegex", "false")).lower() != "true"
        }
        for queue in sorted(wanted[role] - listed):
            problems.append(f"{name}: no trigger on {queue}")
        for trigger in triggers:
            tag = f"{name}: trigger {trigger.get('name')}"
            metadata = trigger.get("metadata") or {}
            if trigger.get("type") != "rabbitmq":
                problems.append(f"{tag}: not the RabbitMQ scaler")
                continue
            counted = _queues_of(trigger)
            if not counted or counted - wanted[role]:
                problems.append(f"{tag}: counts {sorted(counted)}, not {role} queues only")
            if metadata.get("mode") != "QueueLength" or float(metadata.get("value", 0)) <= 0:
                problems.append(f"{tag}: not QueueLength with a value > 0")
            if metadata.get("protocol") != "http":
                problems.append(f"{tag}: counts ready messages only (protocol not http)")
            auth = auths.get((trigger.get("authenticationRef") or {}).get("name", ""))
            refs = {
                r["parameter"]: r for r in (auth or {}).get("spec", {}).get("secretTargetRef", [])
            }
            host = refs.get("host")
            if host is None or host["key"] not in secrets.get(host["name"], {}):
                problems.append(f"{tag}: no TriggerAuthentication giving `host` from a Secret")
                continue
            management = _vhost(secrets[host["name"]][host["key"]])
            for used in sorted(set(map(_vhost, amqp_urls.values())) - {management}):
                problems.append(f"{tag}: reads vhost {management!r}, flowgate uses {used!r}")
    return problems


def test_scheduler_is_one_replica_and_workers_and_pollers_scale_on_their_queues() -> None:
    docs = manifests()
    worker = named(docs, "ScaledObject", WORKER)
    assert worker is not None
    counted = set().union(*(_queues_of(t) for t in worker["spec"]["triggers"]))
    assert counted == {command_queue(t) for t in COMMANDS}
    assert scaling_problems(docs) == []


def _forget_a_command_queue(docs: list[Doc]) -> None:
    """As if a command type were added to workers/commands.py and not to keda.yaml."""
    so = named(docs, "ScaledObject", WORKER)
    assert so is not None
    so["spec"]["triggers"] = [
        t for t in so["spec"]["triggers"] if t["metadata"]["queueName"] != "flowgate.cmd.run-job"
    ]


SO_POLLER = ("ScaledObject", POLLER)
SCALING_MUTATIONS: list[tuple[Edit, str]] = [
    (_forget_a_command_queue, "flowgate-worker: no trigger on flowgate.cmd.run-job"),
    (setting(*SO_WORKER, "spec.triggers.3.metadata.queueName", "flowgate.poll"), "not worker"),
    (setting(*SO_WORKER, "spec.triggers.0.metadata.queueName", "^flowgate\\..+$"), "not worker"),
    (setting(*SO_WORKER, "spec.triggers.0.metadata.queueName", "^nothing$"), "counts []"),
    (setting(*SO_POLLER, "spec.triggers.0.metadata.queueName", "flowgate.pol"), "no trigger on"),
    (setting(*SO_POLLER, "spec.triggers.0.metadata.mode", "MessageRate"), "not QueueLength"),
    (setting(*SO_POLLER, "spec.triggers.0.metadata.value", "0"), "not QueueLength"),
    (setting(*SO_WORKER, "spec.triggers.2.metadata.protocol", "amqp"), "ready messages only"),
    (setting(*SO_WORKER, "spec.triggers.1.type", "rabbit"), "not the RabbitMQ scaler"),
    (setting(*SO_WORKER, "spec.triggers.1.authenticationRef.name", "x"), "no TriggerAuth"),
    (
        setting("Secret", "flowgate-keda", "stringData.rabbitmq_management_url", "http://h/"),
        "reads vhost '/', flowgate uses 'flowgate'",
    ),
    (setting(*SO_POLLER, "spec.minReplicaCount", 0), "scales to zero"),
    (setting(*SO_POLLER, "spec.scaleTargetRef.name", "poller"), "no Deployment"),
    (setting(*SO_POLLER, "spec.scaleTargetRef.name", WORKER), "flowgate-worker: 2 ScaledObjects"),
    (setting("Deployment", WORKER, "spec.replicas", 3), "sets replicas, which KEDA owns"),
    (setting("Deployment", SCHEDULER, "spec.replicas", 2), "replicas 2, not exactly 1"),
    (dropping("Deployment", SCHEDULER, "spec.replicas"), "replicas None, not exactly 1"),
    (setting("Deployment", SCHEDULER, "spec.strategy.type", "RollingUpdate"), "not Recreate"),
    (setting(*SO_POLLER, "spec.scaleTargetRef.name", SCHEDULER), "the scheduler is one replica"),
]


@pytest.mark.parametrize(
    ("edit", "problem"), SCALING_MUTATIONS, ids=[p for _, p in SCALING_MUTATIONS]
)
def test_scaling_check_catches(edit: Edit, problem: str) -> None:
    problems = scaling_problems(edited(edit))
    assert problems and any(problem in p for p in problems), problems


def test_the_settings_file_is_toml_with_no_secret_in_it() -> None:
    """The ConfigMap is readable by anyone who can read the namespace's ConfigMaps."""
    config = tomllib.loads((DEPLOY / "flowgate.toml").read_text())
    inline = [
        f"{vendor}.{name}.{key}"
        for vendor in (v.name for v in COMMANDS.vendors)
        for name, connection in (config.get(vendor) or {}).items()
        for key, value in connection.items()
        if isinstance(value, str) and key in _secret_fields(vendor)
    ]
    assert inline == []
    assert "amqp_url" not in config and "redis_url" not in config.get("idempotency", {})


def _secret_fields(vendor: str) -> set[str]:
    model = COMMANDS.vendor(vendor).connection
    return {n for n, f in model.model_fields.items() if f.annotation is SecretStr}
