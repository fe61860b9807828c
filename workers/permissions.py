"""Least-privilege RabbitMQ permissions for each role, as `rabbitmqctl set_permissions` takes them.

RabbitMQ checks three regular expressions per user and virtual host: `configure` (declare or
delete a queue or exchange), `write` (publish to an exchange; bind a queue, as its destination)
and `read` (consume or get from a queue; bind, as the source exchange). The default exchange is
`amq.default`. The patterns follow from what each role does:

    publisher  publishes to flowgate.commands; declares, binds and reads its own queues only
               (`flowgate.reply.<user>.*`, `flowgate.subscriber.<user>.*`, named so by the
               client SDKs), reads flowgate.events to bind them. It cannot publish an event,
               read a command, poll or dead-letter queue, or touch another user's queues.
    worker     declares the whole topology at start (every flowgate process does: declaring
    poller     a queue with a dead-letter exchange needs write on that exchange and read on the
               queue), publishes events, delays, retries, dead letters and copies to reply
               queues (amq.default). It cannot publish a command, nor read a client's queues.
    operator   everything of flowgate's (`flowgate declare`, `flowgate dlq`: replay publishes
               commands, copies letters back to their queue through amq.default).

The worker and the poller have the same patterns: each declares what the other consumes.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

from workers.topology import COMMANDS_EXCHANGE

__all__ = ["ROLES", "Permissions", "Role", "permissions", "rabbitmqctl_command"]

Role = Literal["publisher", "worker", "poller", "operator"]
ROLES: tuple[Role, ...] = ("publisher", "worker", "poller", "operator")

# Names of flowgate's topology, and not of a client's own queues.
_SERVICE = r"flowgate\.(?!reply\.|subscriber\.)"


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str


def _escape(name: str) -> str:
    """`name` as a literal in RabbitMQ's (PCRE) regular expressions."""
    return re.sub(r"([^A-Za-z0-9_])", r"\\\1", name)


def permissions(role: Role, user: str) -> Permissions:
    """The patterns for `user` acting as `role`."""
    if role == "publisher":
        own = rf"flowgate\.(reply|subscriber)\.{_escape(user)}\..*"
        return Permissions(
            configure=rf"^{own}$",
            write=rf"^({re.escape(COMMANDS_EXCHANGE)}|flowgate\.subscriber\.{_escape(user)}\..*)$",
            read=rf"^(flowgate\.events|{own})$",
        )
    if role in ("worker", "poller"):
        return Permissions(
            configure=rf"^{_SERVICE}.*$",
            write=rf"^(amq\.default|{_SERVICE}(?!commands$).*)$",
            read=rf"^{_SERVICE}.*$",
        )
    return Permissions(
        configure=r"^flowgate\..*$", write=r"^(amq\.default|flowgate\..*)$", read=r"^flowgate\..*$"
    )


def rabbitmqctl_command(role: Role, user: str, vhost: str) -> str:
    """The command that grants them, quoted for a POSIX shell."""
    granted = permissions(role, user)
    return shlex.join(
        [
            "rabbitmqctl",
            "set_permissions",
            "-p",
            vhost,
            user,
            granted.configure,
            granted.write,
            granted.read,
        ]
    )
