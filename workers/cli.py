"""The `flowgate` command: every role of the system as a plain process.

flowgate demo        the whole system in one process (in-memory broker + simulators)
flowgate worker      consume commands and trigger vendors
flowgate poller      follow runs until they end
flowgate simulate    the vendor simulators as an HTTP server
flowgate declare     declare exchanges and queues on RabbitMQ
flowgate send        send one command (alias: publish); --wait follows it to its end
flowgate events      tail the events
flowgate config      check the settings
flowgate runs        the runs in flight, the stuck ones, one run's history
flowgate scheduler   send commands on a schedule (cron, per time zone), on Celery beat
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr, ValidationError

from contracts import Command, EventKind
from flowgate_client import Event, FlowgateClientError, ResultTimeout, TopologyMissing

try:
    from workers.broker.base import TopologyError
    from workers.commands import COMMANDS
    from workers.permissions import ROLES, rabbitmqctl_command
    from workers.settings import Settings, load_settings
except ModuleNotFoundError as missing:  # `pip install flowgate` is the client only
    if (missing.name or "").split(".")[0] in ("workers", "contracts", "flowgate_client"):
        raise  # our own module: a bug, not a missing extra
    sys.exit(
        f"flowgate: this command is flowgate's worker CLI and needs its dependencies "
        f"({missing.name} is not installed): pip install 'flowgate[worker]'"
    )

if TYPE_CHECKING:
    from flowgate_client.aio import Client as AsyncClient
    from flowgate_client.aio import Handle as AsyncHandle
    from workers.app import Flowgate

__all__ = ["main"]

log = logging.getLogger("flowgate")


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RAW = argparse.RawDescriptionHelpFormatter


def _permissions_command(args: argparse.Namespace, settings: Settings) -> str:
    url = urlsplit(settings.amqp_url.get_secret_value().split(";", 1)[0])
    user = args.user or (unquote(url.username) if url.username else "guest")
    vhost = unquote(url.path[1:]) if len(url.path) > 1 else "/"
    return rabbitmqctl_command(args.permissions, user, vhost)


def _topology_refused(exc: TopologyError) -> str:
    """What to do when RabbitMQ refuses to declare a queue or exchange as flowgate has it."""
    text = f"RabbitMQ refused flowgate's topology: {exc}."
    if "x-delivery-limit" in str(exc):
        # Queue arguments cannot change; the limit differs from the one the queue was made with
        # (flowgate 0.1's default was 5, now 20).
        return (
            f"{text} Set delivery_limit in the settings to the queue's current value, or "
            "delete the queue once it is drained (rabbitmqctl delete_queue NAME) so it is "
            "declared again with the new limit."
        )
    return (
        f"{text} A queue or exchange of that name exists with other arguments (an older "
        "flowgate, or another application): delete it (rabbitmqctl delete_queue NAME) once it "
        "is drained, or use another vhost."
    )


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(_LOG_LEVELS)}")
    return level


def _global_options() -> argparse.ArgumentParser:
    """The options every role takes, before or after its sub-command. SUPPRESS as default: an
    option given before the sub-command is not reset by the sub-command's parser."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("options of every command")
    group.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="settings file (TOML); or $FLOWGATE_CONFIG",
    )
    group.add_argument(
        "--amqp-url", default=argparse.SUPPRESS, help="RabbitMQ URL (default from the settings)"
    )
    group.add_argument(
        "--log-level",
        type=_log_level,
        default=argparse.SUPPRESS,
        help=f"{', '.join(_LOG_LEVELS)} (default INFO)",
    )
    return common


def _sub(
    sub: Any,
    name: str,
    *,
    help: str,
    description: str,
    examples: list[str],
    common: Any,
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        aliases=list(aliases),
        parents=[common],
        help=help,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
        formatter_class=_RAW,
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(
        prog="flowgate",
        parents=[common],
        description="Commands from RabbitMQ to partner APIs, followed to the end, as events.",
        epilog="examples:\n  flowgate demo\n  flowgate worker --commands trigger-batch\n"
        "  flowgate send trigger-batch --example --wait\n\n"
        "`flowgate COMMAND --help` says more about each command.",
        formatter_class=_RAW,
    )
    parser.add_argument("--version", action="version", version=f"flowgate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _sub(
        sub,
        "demo",
        help="run the whole system once, embedded, and show events",
        description="Run a worker, a poller and the vendor simulators in this process, publish "
        "one example command of each type, print every event as it arrives, exit 0 when each "
        "got its terminal event. In memory by default; through RabbitMQ with --broker rabbitmq "
        "or --amqp-url.",
        examples=["flowgate demo", "flowgate demo --amqp-url amqp://guest:guest@127.0.0.1:5672/"],
        common=common,
    )
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    demo.add_argument(
        "--broker",
        choices=["memory", "rabbitmq"],
        default=None,
        help="in-memory (default) or RabbitMQ at the configured amqp_url; --amqp-url implies "
        "rabbitmq",
    )

    worker = _sub(
        sub,
        "worker",
        help="consume commands and call the vendors",
        description="Consume the command queues, call each command's vendor, publish "
        "`accepted` (or the terminal event of a synchronous command) and hand followed runs to "
        "the poller. Run as many as you like: they share the queues. Stops cleanly on SIGTERM.",
        examples=["flowgate worker", "flowgate worker --commands trigger-batch,rerun-batch"],
        common=common,
    )
    worker.add_argument(
        "--commands",
        default="all",
        help=f"comma-separated command types (default: all: {', '.join(COMMANDS)})",
    )
    worker.add_argument("--prefetch", type=int, help="unacked messages per queue")

    poller = _sub(
        sub,
        "poller",
        help="follow each run with backed-off status calls",
        description="Follow every run the workers started with backed-off status calls; "
        "publish `progress` on each change and the terminal event.",
        examples=["flowgate poller", "flowgate poller --prefetch 128"],
        common=common,
    )
    poller.add_argument("--prefetch", type=int, help="unacked poll requests")

    simulate = _sub(
        sub,
        "simulate",
        help="serve the vendor simulators over HTTP",
        description="The vendor simulators as one HTTP server (the default connections point "
        "at http://127.0.0.1:8700).",
        examples=["flowgate simulate", "flowgate simulate --port 8800 --run-seconds 5"],
        common=common,
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    simulate.add_argument("--port", type=int, default=8700, help="port (default 8700)")
    simulate.add_argument(
        "--run-seconds", type=float, default=None, help="how long each simulated run takes"
    )

    declare = _sub(
        sub,
        "declare",
        help="declare flowgate's exchanges and queues (idempotent)",
        description="Declare every exchange, queue and binding on RabbitMQ. Every flowgate "
        "process does so at start too; this is for a broker prepared ahead. With "
        "--permissions ROLE, declare nothing: print the rabbitmqctl command that gives a user "
        "the least RabbitMQ permissions that ROLE needs on the virtual host of --amqp-url "
        "(publisher: send commands and read its own replies, never publish an event; worker, "
        "poller: flowgate's topology, never a command; operator: all of flowgate's).",
        examples=[
            "flowgate declare",
            "flowgate declare --amqp-url amqps://rabbit:5671/prod",
            "flowgate declare --permissions publisher --user billing",
        ],
        common=common,
    )
    declare.add_argument(
        "--permissions",
        choices=ROLES,
        metavar="ROLE",
        help=f"print the permissions of a role ({', '.join(ROLES)}) instead of declaring",
    )
    declare.add_argument(
        "--user", help="the RabbitMQ user to give them to (default: the user of --amqp-url)"
    )

    send = _sub(
        sub,
        "send",
        aliases=["publish"],
        help="send one command (alias: publish); --wait follows it to its end",
        description="Validate a command's data against its model and send it to "
        "flowgate.commands (structured CloudEvent, confirmed by RabbitMQ); prints the command "
        "id. Bad data never leaves this machine: it is refused with what is wrong. With --wait, "
        "a live view of the command (accepted, each progress status in the vendor's words, the "
        "elapsed time, then the terminal event), read from a reply queue of its own (the "
        "command's reply_to). Declares flowgate's exchanges and queues first when the virtual "
        "host has none yet. `publish` is the same command under its older name.\n\n"
        "exit codes (--wait): 0 succeeded, 3 failed, 4 cancelled, 5 no terminal event within "
        "--timeout (the command goes on); and, with or without --wait, 1 RabbitMQ unreachable "
        "or the command not confirmed, 2 invalid input.",
        examples=[
            "flowgate send trigger-batch --example --wait",
            'flowgate send trigger-batch --data \'{"batch": "B2001"}\' --connection prod',
            "flowgate send run-job --file job.json --deadline 2h --wait --timeout 600",
            "flowgate publish add-paylink --example    (publish: the same as send)",
        ],
        common=common,
    )
    send.add_argument("type", choices=list(COMMANDS), help="command type")
    data = send.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="command data as a JSON object")
    data.add_argument("--file", type=Path, help="command data from a JSON file (- for stdin)")
    data.add_argument("--example", action="store_true", help="send the command type's example data")
    send.add_argument("--id", dest="command_id", help="command id (default: a new UUID)")
    send.add_argument("--connection", help="named vendor connection")
    send.add_argument(
        "--deadline",
        type=_deadline,
        help="RFC 3339 time (UTC when no offset), or a duration from now: 90s, 30m, 2h, 1d",
    )
    send.add_argument(
        "--wait", action="store_true", help="follow the command to its terminal event"
    )
    send.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="with --wait: seconds to wait for the terminal event (default: no limit); "
        "implies --wait",
    )

    events = _sub(
        sub,
        "events",
        help="tail the events on flowgate.events",
        description="Print the events whose routing key (<command-type>.<kind>) matches a "
        "PATTERN (default #: every event), from a queue of its own bound to flowgate.events "
        "(deleted when it exits). Without --follow it prints what arrives within --for seconds "
        "(default 10) and exits 0; with --follow it runs until Ctrl-C. A table by default; "
        '--json prints one JSON object per line: {"routing_key": ..., "event": <the '
        "CloudEvent>}.",
        examples=[
            "flowgate events --follow",
            "flowgate events 'trigger-batch.*' '*.failed' --json --for 60",
        ],
        common=common,
    )
    events.add_argument("patterns", nargs="*", metavar="PATTERN", help="routing key pattern")
    events.add_argument("--follow", "-f", action="store_true", help="run until Ctrl-C")
    events.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    events.add_argument(
        "--for",
        dest="listen_for",
        type=float,
        default=10.0,
        help="without --follow: seconds to listen (default 10)",
    )

    config = _sub(
        sub,
        "config",
        help="check the settings",
        description="Work with flowgate's settings (file, environment, flags, defaults).",
        examples=["flowgate config check", "flowgate config check --config flowgate.toml"],
        common=common,
    )
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    _sub(
        config_sub,
        "check",
        help="load and validate the settings; print them, secrets redacted",
        description="Load the settings from every source (flags, then FLOWGATE_ environment "
        "variables, then the TOML file of --config or $FLOWGATE_CONFIG, then defaults), "
        "validate them as a worker would, and print the effective configuration with every "
        "secret redacted and where each value came from. Exits 2 naming the file, line and "
        "column on a TOML error, or each invalid setting and its source.",
        examples=[
            "flowgate config check",
            "FLOWGATE_PREFETCH=64 flowgate config check --config flowgate.toml",
        ],
        common=common,
    )
    scheduler = _sub(
        sub,
        "scheduler",
        help="send commands on a schedule (cron expressions with time zones)",
        description="Send each schedule's command at its cron times, in its time zone, on "
        "Celery beat (the README's Schedules). Each fire's command id derives from the "
        "schedule's name and the fire time, and each fire is claimed in Redis first, so two "
        "schedulers, or a restart in the fire minute, send it once. A bad schedule file stops "
        "it at start, exit 2, with the schedule and the field. With --check: validate the file, "
        "print each schedule's next 3 fire times with the data each would send, exit 0.",
        examples=[
            "flowgate scheduler --schedules examples/schedules.toml --check",
            "flowgate scheduler --schedules /etc/flowgate/schedules.toml",
        ],
        common=common,
    )
    scheduler.add_argument(
        "--schedules", type=Path, required=True, metavar="FILE", help="the schedule file (TOML)"
    )
    scheduler.add_argument(
        "--check", action="store_true", help="validate the file and show the next fire times"
    )
    from workers import dlq

    dlq.add_parser(sub, parents=[common])
    from workers import runs

    runs.add_parser(sub, parents=[common])
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flowgate")
    except PackageNotFoundError:
        return "unknown"


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "amqp_url", None):
        overrides["amqp_url"] = SecretStr(args.amqp_url)
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    if getattr(args, "prefetch", None):
        overrides["prefetch"] = args.prefetch
    return load_settings(getattr(args, "config", None), **overrides)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _deadline(value: str) -> datetime | timedelta:
    """--deadline: a duration from now (90s, 30m, 2h, 1d) or an RFC 3339 time."""
    duration = _DURATION.fullmatch(value.strip())
    if duration:
        return timedelta(seconds=float(duration.group(1)) * _UNITS[duration.group(2)])
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither an RFC 3339 time nor a duration like 90s, 30m, 2h, 1d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _command_data(args: argparse.Namespace) -> Command:
    """The command, built from its model (so validated); ValueError saying what is wrong."""
    model = COMMANDS[args.type].model
    if args.example:
        built: Command = model.model_validate(model.example)
        return built
    if getattr(args, "file", None) is not None:
        source = "--file"
        try:
            text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        except OSError as exc:
            raise ValueError(f"--file: cannot read {args.file}: {exc.strerror}") from None
    else:
        source, text = "--data", args.data
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source} must be a JSON object, not {type(data).__name__}")
    try:
        built = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(f"{source} is not a valid {args.type} command: {problems}") from None
    return built


async def _serve_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await start()
        await stopping.wait()
        log.info("stopping: finishing in-flight messages")
    finally:
        await stop()


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.app import Flowgate, make_broker, parse_command_types

    if args.command == "demo":
        from workers.demo import run_demo

        broker = args.broker or ("rabbitmq" if getattr(args, "amqp_url", None) else "memory")
        return await run_demo(settings, memory=broker == "memory", wait=args.timeout)
    if args.command == "dlq":
        from workers import dlq

        return await dlq.run(args, settings)
    if args.command == "runs":
        from workers import runs

        return await runs.run(args, settings)
    if args.command == "send":
        return await _send(args, settings)
    if args.command == "events":
        return await _events(args, settings)
    if args.command == "declare" and args.permissions is not None:
        print(_permissions_command(args, settings))
        return 0
    app = Flowgate(settings, make_broker(settings))
    if args.command == "declare":
        await app.connect()
        await app.stop()
        print("flowgate declare: topology declared")
        return 0
    if args.command in ("worker", "poller"):
        from workers import metrics, tracing
        from workers.health import HealthServer

        health = None
        if settings.health_port is not None:
            health = HealthServer(
                host=settings.health_host,
                port=settings.health_port,
                ready=app.ready,
                metrics=metrics.current().render,
            )
        types = parse_command_types(args.commands) if args.command == "worker" else []
        stop_tracing = tracing.configure(settings.tracing, args.command)
        serving = contextlib.AsyncExitStack()

        async def start() -> None:
            if health is not None:
                # First: /healthz answers while the process connects, /readyz says not yet.
                try:
                    await health.start()
                except OSError as exc:
                    raise _cannot_listen("health_port", settings.health_host, exc) from None
                log.info(
                    "health: http://%s:%d/readyz, metrics: /metrics",
                    settings.health_host,
                    health.port,
                )
            if args.command == "worker":
                await app.start_worker(types)
            else:
                await app.start_poller()
            if settings.operator.port is not None:
                await _serve_operator_page(app, settings, serving)

        async def stop() -> None:
            await serving.aclose()
            await app.stop()
            if health is not None:
                await health.stop()
            if stop_tracing is not None:
                # Flushes the last spans: a blocking export, so off the loop.
                await asyncio.to_thread(stop_tracing)

        await _serve_until_signalled(start, stop)
        return 0
    raise AssertionError(args.command)


async def _serve_operator_page(
    app: Flowgate, settings: Settings, stack: contextlib.AsyncExitStack
) -> None:
    from flowgate_client._common import url_user
    from workers.app import make_broker
    from workers.operator import OperatorPage, opener

    config = settings.operator
    assert config.port is not None and config.token is not None  # checked by the settings
    page = OperatorPage(
        token=config.token.get_secret_value(),
        store=app.store,
        registry=app.registry,
        open_broker=opener(lambda: make_broker(settings)),
        user=url_user(settings.amqp_url.get_secret_value()),
    )
    try:
        port = await stack.enter_async_context(page.serving(config.host, config.port))
    except OSError as exc:
        raise _cannot_listen("operator.port", config.host, exc) from None
    log.info("operator page: http://%s:%d/", config.host, port)


def _cannot_listen(setting: str, host: str, exc: OSError) -> ValueError:
    """A port this process was told to serve on but cannot: the user's setup, said as such
    (a ValueError is printed as one line, not blamed on RabbitMQ)."""
    import os

    why = os.strerror(exc.errno) if exc.errno else str(exc)
    return ValueError(
        f"cannot listen on {host} for {setting}: {why}; give {setting} a "
        "port no other process uses (each process on a host needs its own)"
    )


# ------------------------------------------------------------------ send, events (the SDK)

EXIT_SUCCEEDED = 0
EXIT_FAILED = 3
EXIT_CANCELLED = 4
EXIT_TIMEOUT = 5
_EXIT_BY_KIND = {
    EventKind.SUCCEEDED: EXIT_SUCCEEDED,
    EventKind.FAILED: EXIT_FAILED,
    EventKind.CANCELLED: EXIT_CANCELLED,
}
_KIND_STYLE = {
    EventKind.ACCEPTED: "cyan",
    EventKind.PROGRESS: "blue",
    EventKind.SUCCEEDED: "bold green",
    EventKind.FAILED: "bold red",
    EventKind.CANCELLED: "bold yellow",
}


async def _client(settings: Settings, name: str) -> AsyncClient:
    """A connected SDK client; flowgate's topology declared first when the vhost has none
    (as `flowgate publish` always did, and every flowgate process does at start)."""
    from flowgate_client.aio import Client

    url = settings.amqp_url.get_secret_value()
    context = None
    if url.startswith("amqps://"):
        cafile = str(settings.amqp_ca_file) if settings.amqp_ca_file else None
        context = ssl.create_default_context(cafile=cafile)
    # The reply queue goes soon after the command exits: nothing else reads it.
    client = Client(
        url,
        source="urn:flowgate:cli",
        connection_name=name,
        ssl_context=context,
        reply_queue_expires=10.0,
    )
    try:
        await client.connect()
    except TopologyMissing:
        from workers.app import Flowgate, make_broker

        app = Flowgate(settings, make_broker(settings))
        await app.connect()
        await app.stop()
        await client.connect()
    return client


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    client = await _client(settings, "flowgate-cli-send")
    try:
        handle = await client.send(
            args.built, connection=args.connection, deadline=args.deadline, id=args.command_id
        )
        if not (args.wait or args.timeout is not None):
            print(handle.id)
            return 0
        return await _watch(handle, args.timeout)
    finally:
        await client.close()


def _event_text(event: Event) -> str:
    """An event in a few words: the vendor's reference, its status, or the error."""
    data = event.data
    if event.kind is EventKind.ACCEPTED:
        return ", ".join(f"{k}={v}" for k, v in data.vendor_ref.items()) or (data.status or "")
    if event.kind is EventKind.FAILED and data.error is not None:
        code = f" [{data.error.vendor_code}]" if data.error.vendor_code else ""
        return f"{data.error.kind.value}{code}: {data.error.message}"
    return data.status or ""


async def _watch(handle: AsyncHandle, limit: float | None) -> int:
    """A live view of one command until its terminal event; the exit code says how it ended."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    # Vendor words are printed as they are: no markup, emoji codes or highlighting.
    console = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    rows: list[tuple[float, Event]] = []
    ended: list[str] = []

    def line(at: float, event: Event) -> Text:
        text = Text(f"{at:7.1f}s  ")
        text.append(f"{event.kind.value:<9}", style=_KIND_STYLE[event.kind])
        text.append(f"  {_event_text(event)}")
        return text

    def view() -> Group:
        table = Table.grid()
        table.add_row(Text(f"{handle.command_type} {handle.id}", style="bold"))
        for at, event in rows:
            table.add_row(line(at, event))
        if not ended:
            waited = Text(f"{loop.time() - started:7.1f}s  waiting for the vendor", style="dim")
            table.add_row(Spinner("dots", text=waited))
        return Group(table)

    live = Live(get_renderable=view, console=console, refresh_per_second=8, transient=False)
    if console.is_terminal:
        live.start()
    else:
        console.print(f"{handle.command_type} {handle.id}")
    code = EXIT_TIMEOUT
    try:
        async for event in handle.events(timeout=limit):
            rows.append((loop.time() - started, event))
            if not console.is_terminal:
                console.print(line(rows[-1][0], event))
            if event.terminal:
                code = _EXIT_BY_KIND[event.kind]
                ended.append(event.kind.value)
    except ResultTimeout:
        ended.append("timeout")
    finally:
        if console.is_terminal:
            live.refresh()
            live.stop()
    elapsed = loop.time() - started
    if code == EXIT_TIMEOUT:
        console.print(
            f"no terminal event after {elapsed:.1f} s; the command goes on "
            f"(`flowgate events` to watch it, `flowgate send cancel-run` to stop it)"
        )
    else:
        console.print(f"{ended[0]} after {elapsed:.1f} s")
    return code


async def _events(args: argparse.Namespace, settings: Settings) -> int:
    client = await _client(settings, "flowgate-cli-events")
    table = not args.json
    if table:
        print(f"{'time':<12}  {'routing key':<28}  {'command id':<36}  detail", flush=True)
    try:
        async with (
            asyncio.timeout(None if args.follow else args.listen_for),
            client.subscribe(*args.patterns) as subscription,
        ):
            async for event in subscription:
                if table:
                    when = (event.time or datetime.now(UTC)).astimezone().strftime("%H:%M:%S.%f")
                    print(
                        f"{when[:12]:<12}  {event.routing_key:<28}  {event.command_id:<36}  "
                        f"{_event_text(event)}",
                        flush=True,
                    )
                else:
                    record = {"routing_key": event.routing_key, "event": event.raw}
                    print(json.dumps(record, separators=(",", ":")), flush=True)
    except TimeoutError:
        pass  # --for elapsed: that is the normal end
    finally:
        await client.close()
    return 0


# ------------------------------------------------------------------------- config check

_SECRET_NAME = re.compile(r"(secret|password|token|api_?key|credentials?)$", re.I)
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _config_check(args: argparse.Namespace) -> int:
    """`flowgate config check`: the effective settings, redacted, each with its source."""
    import os
    import tomllib

    from pydantic_settings import EnvSettingsSource

    from workers.settings import Settings as SettingsModel

    env_file = os.environ.get("FLOWGATE_CONFIG")
    path: Path | None = getattr(args, "config", None) or (Path(env_file) if env_file else None)
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            print(f"flowgate config check: {path}: {exc.strerror}", file=sys.stderr)
            return 2
        try:
            file_values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            where = _TOML_WHERE.search(str(exc))
            message = _TOML_WHERE.sub("", str(exc))
            at = f"{where.group(1)}:{where.group(2)}:" if where else ""
            print(f"flowgate config check: {path}:{at} {message}", file=sys.stderr)
            return 2
    flags: dict[str, Any] = {}
    if getattr(args, "amqp_url", None):
        flags["amqp_url"] = "--amqp-url"
    if getattr(args, "log_level", None):
        flags["log_level"] = "--log-level"
    env_values = EnvSettingsSource(SettingsModel)()
    sources = [
        ("flag", flags, None),
        ("environment", env_values, None),
        ("file", file_values, path),
    ]

    def sources_of(parts: tuple[str, ...]) -> list[str]:
        """Every source that sets `parts` (or its `_file`), strongest first."""
        found: list[str] = []
        for name, values, where in sources:
            for candidate in (parts, (*parts[:-1], f"{parts[-1]}_file")):
                node: Any = values
                for part in candidate:
                    node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
                if node is _MISSING:
                    continue
                via = f" (via {candidate[-1]})" if candidate is not parts else ""
                if name == "flag":
                    found.append(f"flag {node}")
                elif name == "environment":
                    star = "__*" if isinstance(node, dict) else ""
                    found.append(f"environment {_env_name(candidate)}{star}{via}")
                else:
                    found.append(f"file {where}{via}")
                break
        return found

    def source_of(parts: tuple[str, ...]) -> str:
        return (sources_of(parts) or ["default"])[0]

    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"flowgate config check: {exc.error_count()} invalid setting(s):", file=sys.stderr)
        for error in exc.errors(include_url=False, include_input=False):
            parts = tuple(str(p) for p in error["loc"])
            origin = ", ".join(sources_of(parts) or ["default"]) if parts else "settings"
            print(
                f"  {'.'.join(parts) or '(settings)'}: {error['msg']} [{origin}]", file=sys.stderr
            )
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"flowgate config check: {exc}", file=sys.stderr)
        return 2
    print(f"settings file: {path or 'none'}")
    for parts, value in _leaves(settings.model_dump(), ()):
        shown = _shown(parts, value)
        print(f"{'.'.join(parts)} = {shown}  # {source_of(parts)}")
    print("ok: the settings are valid")
    return 0


_MISSING = object()


def _url_shown(url: str) -> str:
    """A URL's scheme, user, host, port and path: the password, when there is one, is ***
    (each node's, for a `;`-separated cluster URL)."""
    shown_nodes = []
    for node in url.split(";"):
        parts = urlsplit(node.strip())
        shown = _redacted(node)
        if parts.password is not None and parts.username:
            shown = shown.replace(f"{parts.username}@", f"{parts.username}:***@", 1)
        shown_nodes.append(shown)
    return ";".join(shown_nodes)


def _env_name(parts: tuple[str, ...]) -> str:
    """The FLOWGATE_ variable that set `parts` (a parent may have set it as a JSON object)."""
    import os

    present = {name.upper() for name in os.environ}
    for end in range(len(parts), 0, -1):
        name = "FLOWGATE_" + "__".join(parts[:end]).upper()
        if name in present:
            return name
    return "FLOWGATE_" + "__".join(parts).upper()


def _leaves(value: Any, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, (*parts, str(key)))
    else:
        yield parts, value


def _shown(parts: tuple[str, ...], value: Any) -> str:
    """A value as TOML-ish text; secrets never: a URL keeps its host, nothing else shows."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if parts[-1].endswith("url") and "://" in secret:
            return json.dumps(_url_shown(secret))
        return '"**********"'
    if value is not None and _SECRET_NAME.search(parts[-1]) and not parts[-1].endswith("_file"):
        return '"**********"'
    if isinstance(value, Path):
        return json.dumps(str(value))
    if value is None:
        return "(none)"
    return json.dumps(value, default=str)


def _simulate(args: argparse.Namespace) -> int:
    from workers.simulators import SimulatorConfig, Simulators, run_forever

    config = SimulatorConfig()
    if args.run_seconds is not None:
        for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
            vendor.run_seconds = args.run_seconds
    print(f"flowgate simulate: serving on http://{args.host}:{args.port}", flush=True)
    run_forever(Simulators(config), host=args.host, port=args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "publish":  # the older name of send
        args.command, args.invoked = "send", "publish"
    if args.command == "config":
        return _config_check(args)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        # Without pydantic's input values: a section's input holds its secrets (a Redis URL's
        # password, next to the error that it is malformed).
        print(f"flowgate: bad settings: {exc.error_count()} invalid setting(s):", file=sys.stderr)
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in error["loc"]) or "(settings)"
            print(f"  {where}: {error['msg']}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"flowgate: bad settings: {exc}", file=sys.stderr)
        return 2
    # The one place logging is set up (workers/logs.py): JSON lines or text, third-party
    # loggers at WARNING unless DEBUG; a one-shot command says what went wrong in one line of
    # its own, so the AMQP client's reconnect chatter is silenced there.
    from workers import logs

    logs.configure(
        settings.log_level,
        settings.log_format,
        quiet_amqp=args.command not in ("worker", "poller", "demo"),
    )
    if args.command == "send":
        try:
            args.built = _command_data(args)
        except ValueError as exc:
            print(f"flowgate {getattr(args, 'invoked', 'send')}: {exc}", file=sys.stderr)
            return 2
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "scheduler":
        from workers import scheduler

        return scheduler.main(args.schedules, settings, check_only=args.check)
    try:
        if settings.event_loop == "uvloop":
            import uvloop

            return uvloop.run(_run(args, settings))
        return asyncio.run(_run(args, settings))
    except KeyboardInterrupt:
        return 130
    except TopologyError as exc:
        print(f"flowgate {args.command}: {_topology_refused(exc)}", file=sys.stderr)
        return 1
    except FlowgateClientError as exc:
        print(f"flowgate {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        cause = _unreachable(exc, settings)
        if cause is None:
            raise
        print(f"flowgate {args.command}: {cause}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


def _unreachable(exc: Exception, settings: Settings) -> str | None:
    """One line naming the cause of a failure that is the user's setup, not a bug."""
    import aiormq.exceptions

    where = _redacted(settings.amqp_url.get_secret_value())
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return (
            f"RabbitMQ at {where} refused the user name or password (ACCESS_REFUSED); check "
            "amqp_url (--amqp-url, FLOWGATE_AMQP_URL or amqp_url_file)"
        )
    if isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in str(exc):
        return (
            f"RabbitMQ at {where} closed the connection while opening its virtual host: the "
            "vhost does not exist, or this user may not use it (rabbitmqctl list_vhosts, "
            "list_user_permissions)"
        )
    tls = _tls_cause(exc)
    if tls is not None:
        if isinstance(tls, ssl.SSLCertVerificationError):
            return (
                f"RabbitMQ at {where} presented a certificate this machine does not trust "
                f"({tls.verify_message}): set amqp_ca_file (FLOWGATE_AMQP_CA_FILE) to the CA "
                "that signed it"
            )
        return f"TLS with RabbitMQ at {where} failed: {tls.reason or tls}; see amqp_ca_file"
    if isinstance(exc, ConnectionError | OSError):
        return f"cannot reach RabbitMQ at {where}: {exc}. Is it running there?"
    if isinstance(exc, ValueError):
        return str(exc)
    return None


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a connection failure (aiormq wraps it in its own)."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if isinstance(found, ssl.SSLError):
            return found
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return None


def _redacted(url: str) -> str:
    """The URL without its password, to name a server in a message; every node of a
    `;`-separated cluster URL, every sentinel of a `redis+sentinel://` one."""
    nodes = []
    for node in url.split(";"):
        parts = urlsplit(node.strip())
        # host:port as written, not parts.port: a Sentinel URL names several, comma-separated.
        hosts = parts.netloc.rpartition("@")[2] or "?"
        user = f"{parts.username}@" if parts.username else ""
        nodes.append(f"{parts.scheme}://{user}{hosts}{parts.path or '/'}")
    return ";".join(nodes)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
