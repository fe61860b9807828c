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
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from pydantic import SecretStr, ValidationError

from contracts import encode_command
from workers.broker.base import TopologyError
from workers.commands import COMMANDS
from workers.settings import Settings, load_settings

__all__ = ["main"]

log = logging.getLogger("flowgate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowgate",
        description="Commands from RabbitMQ to partner APIs, followed to the end, as events.",
    )
    parser.add_argument("--config", type=Path, help="settings file (TOML); or $FLOWGATE_CONFIG")
    parser.add_argument("--amqp-url", help="RabbitMQ URL (default from the settings)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole system once, embedded, and show events")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    demo.add_argument(
        "--broker",
        choices=["memory", "rabbitmq"],
        default=None,
        help="in-memory (default) or RabbitMQ at the configured amqp_url; --amqp-url implies "
        "rabbitmq",
    )

    worker = sub.add_parser("worker", help="consume commands and call the vendors")
    worker.add_argument(
        "--commands", default="all", help="comma-separated command types (default: all)"
    )
    worker.add_argument("--prefetch", type=int, help="unacked messages per queue")

    poller = sub.add_parser("poller", help="follow each run with backed-off status calls")
    poller.add_argument("--prefetch", type=int, help="unacked poll requests")

    simulate = sub.add_parser("simulate", help="serve the vendor simulators over HTTP")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8700)
    simulate.add_argument(
        "--run-seconds", type=float, default=None, help="how long each simulated run takes"
    )

    sub.add_parser("declare", help="declare flowgate's exchanges and queues (idempotent)")

    publish = sub.add_parser("publish", help="publish one command to flowgate.commands")
    publish.add_argument("type", choices=list(COMMANDS), help="command type")
    data = publish.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="command data as JSON")
    data.add_argument("--example", action="store_true", help="send the command type's example data")
    publish.add_argument("--id", dest="command_id", help="command id (default: a new UUID)")
    publish.add_argument("--connection", help="named vendor connection")
    from workers import dlq

    dlq.add_parser(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.amqp_url:
        overrides["amqp_url"] = SecretStr(args.amqp_url)
    if args.log_level:
        overrides["log_level"] = args.log_level
    if getattr(args, "prefetch", None):
        overrides["prefetch"] = args.prefetch
    return load_settings(args.config, **overrides)


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

        broker = args.broker or ("rabbitmq" if args.amqp_url else "memory")
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

        data = COMMANDS[args.type].example if args.example else json.loads(args.data)
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
    if args.command == "publish" and args.data is not None:
        try:
            json.loads(args.data)
        except ValueError as exc:
            print(f"flowgate publish: --data is not JSON: {exc}", file=sys.stderr)
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
    except (ConnectionError, OSError) as exc:
        print(
            f"flowgate {args.command}: cannot reach a service: {exc}. Is RabbitMQ running at "
            "the configured amqp_url (see --amqp-url)?",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:
        print(f"flowgate {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
