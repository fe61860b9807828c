"""The `flowgate` command: every role of the system as a plain process.

flowgate demo        the whole system in one process (in-memory broker + simulators)
flowgate worker      consume commands and trigger vendors
flowgate poller      follow runs until they end
flowgate simulate    the vendor simulators as an HTTP server
flowgate declare     declare exchanges and queues on RabbitMQ
flowgate publish     publish one command
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from contracts import encode_command
from workers.broker.base import TopologyError
from workers.commands import COMMANDS
from workers.settings import Settings, load_settings

__all__ = ["main"]

log = logging.getLogger("flowgate")


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RAW = argparse.RawDescriptionHelpFormatter


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
    sub: Any, name: str, *, help: str, description: str, examples: list[str], common: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
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
        "  flowgate publish trigger-batch --example\n\n"
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

    _sub(
        sub,
        "declare",
        help="declare flowgate's exchanges and queues (idempotent)",
        description="Declare every exchange, queue and binding on RabbitMQ. Every flowgate "
        "process does so at start too; this is for a broker prepared ahead.",
        examples=["flowgate declare", "flowgate declare --amqp-url amqps://rabbit:5671/prod"],
        common=common,
    )

    publish = _sub(
        sub,
        "publish",
        help="publish one command to flowgate.commands",
        description="Validate a command's data against its model and publish it (structured "
        "CloudEvent, confirmed by RabbitMQ); prints the command id. Bad data never leaves this "
        "machine: it is refused with what is wrong.",
        examples=[
            "flowgate publish trigger-batch --example",
            'flowgate publish trigger-batch --data \'{"batch": "B2001"}\' --connection prod',
        ],
        common=common,
    )
    publish.add_argument("type", choices=list(COMMANDS), help="command type")
    data = publish.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="command data as a JSON object")
    data.add_argument("--example", action="store_true", help="send the command type's example data")
    publish.add_argument("--id", dest="command_id", help="command id (default: a new UUID)")
    publish.add_argument("--connection", help="named vendor connection")
    from workers import dlq

    dlq.add_parser(sub, parents=[common])
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


def _command_data(args: argparse.Namespace) -> dict[str, Any]:
    """The command's data, validated against its model; ValueError saying what is wrong."""
    registration = COMMANDS[args.type]
    if args.example:
        return registration.example
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise ValueError(f"--data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--data must be a JSON object, not {type(data).__name__}")
    try:
        registration.model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(f"--data is not a valid {args.type} command: {problems}") from None
    return data


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
    app = Flowgate(settings, make_broker(settings))
    if args.command == "declare":
        await app.connect()
        await app.stop()
        print("flowgate declare: topology declared")
        return 0
    if args.command == "publish":
        from workers.broker.base import OutgoingMessage
        from workers.topology import COMMANDS_EXCHANGE

        data = _command_data(args)
        body, content_type = encode_command(
            args.type,
            data,
            command_id=args.command_id,
            connection=args.connection,
        )
        await app.connect()
        try:
            await app.broker.publish(
                COMMANDS_EXCHANGE, args.type, OutgoingMessage(body=body, content_type=content_type)
            )
        finally:
            await app.stop()
        print(json.loads(body)["id"])
        return 0
    if args.command in ("worker", "poller"):
        from workers.health import HealthServer

        health = None
        if settings.health_port is not None:
            health = HealthServer(
                host=settings.health_host, port=settings.health_port, ready=app.ready
            )
        types = parse_command_types(args.commands) if args.command == "worker" else []

        async def start() -> None:
            if health is not None:
                # First: /healthz answers while the process connects, /readyz says not yet.
                await health.start()
                log.info("health: http://%s:%d/readyz", settings.health_host, health.port)
            if args.command == "worker":
                await app.start_worker(types)
            else:
                await app.start_poller()

        async def stop() -> None:
            await app.stop()
            if health is not None:
                await health.stop()

        await _serve_until_signalled(start, stop)
        return 0
    raise AssertionError(args.command)


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
    try:
        settings = _settings(args)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"flowgate: bad settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO, URLs included: too loud for a worker, and URLs may
    # carry identifiers users consider sensitive.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.log_level.upper() != "DEBUG":
        # The AMQP client's own chatter (a line per reconnect try) unless asked for. A
        # one-shot command says what went wrong in one line of its own instead.
        serving = args.command in ("worker", "poller", "demo")
        for chatty in ("aio_pika", "aiormq"):
            logging.getLogger(chatty).setLevel(logging.WARNING if serving else logging.CRITICAL)
    if args.command == "publish":
        try:
            _command_data(args)
        except ValueError as exc:
            print(f"flowgate publish: {exc}", file=sys.stderr)
            return 2
    if args.command == "simulate":
        return _simulate(args)
    try:
        if settings.event_loop == "uvloop":
            import uvloop

            return uvloop.run(_run(args, settings))
        return asyncio.run(_run(args, settings))
    except KeyboardInterrupt:
        return 130
    except TopologyError as exc:
        print(
            f"flowgate {args.command}: RabbitMQ refused flowgate's topology: {exc}. A queue or "
            "exchange of that name exists with other arguments (an older flowgate, or another "
            "application): delete it (rabbitmqctl delete_queue NAME) once it is drained, or use "
            "another vhost.",
            file=sys.stderr,
        )
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
    if isinstance(exc, ssl.SSLError):
        return f"TLS with RabbitMQ at {where} failed: {exc.reason or exc}; see amqp_ca_file"
    if isinstance(exc, ConnectionError | OSError):
        return f"cannot reach RabbitMQ at {where}: {exc}. Is it running there?"
    if isinstance(exc, ValueError):
        return str(exc)
    return None


def _redacted(url: str) -> str:
    """The URL without its password, to name a server in a message."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path or '/'}"


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
