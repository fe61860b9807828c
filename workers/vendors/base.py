"""What every vendor folder provides, and the shape of one command type's registration.

A vendor folder holds the same files: `config.py` (its connection settings model), `models.py`
(the vendor's wire shapes), `client.py` (an httpx client over an injected `httpx.AsyncClient`,
holding whatever one connection shares: a token, a session), `__init__.py` (its `Vendor`), and
one module per command type with the handler that maps the command to client calls and the
vendor's answers to `Triggered` / `StatusReport`. Handlers raise the typed errors of
`workers.errors`; they never publish, ack or retry.

`workers.commands.COMMANDS` is the table that ties a command model to its vendor and handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, runtime_checkable

import httpx

from contracts.commands import Command
from contracts.events import ErrorKind
from workers.errors import InvalidCommand, Refused
from workers.ratelimit import MemoryRateLimiter, RateLimiter
from workers.vendors._connection import ConnectionBase
from workers.vendors._http import Calling

__all__ = [
    "Cancellable",
    "CommandHandler",
    "FollowedHandler",
    "Registration",
    "Resources",
    "RunState",
    "StatusReport",
    "Triggered",
    "Vendor",
]

RunState = Literal["running", "succeeded", "failed", "cancelled"]

C = TypeVar("C", bound=Command)
C_contra = TypeVar("C_contra", bound=Command, contravariant=True)
K = TypeVar("K", bound=ConnectionBase)
S = TypeVar("S")


@dataclass(frozen=True)
class StatusReport:
    """One look at a run. `status` is the vendor's own status text, passed through to events."""

    state: RunState
    status: str
    result: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None
    vendor_code: str | None = None
    # Vendor state the next status call needs (e.g. which file events are left to follow).
    cursor: Mapping[str, Any] = field(default_factory=dict)
    # The error kind of a `failed` report: the vendor ran it and it failed, or it refused
    # the run's input (Product-Live's USER_ERROR).
    error_kind: ErrorKind = ErrorKind.VENDOR_FAILED


@dataclass(frozen=True)
class Triggered:
    """The vendor took the trigger. `vendor_ref` identifies the run (e.g. {"event_id": "7638"}).

    `report` is set when the answer is already final (synchronous vendors such as TMF622):
    then no `accepted` event and no polling follow, only the terminal event. `starts_at`
    (epoch seconds) is set when the vendor will start the run later (a scheduled process):
    the first status call is due then, and the run's maximum duration counts from then.
    """

    vendor_ref: Mapping[str, str]
    status: str | None = None
    report: StatusReport | None = None
    starts_at: float | None = None


class CommandHandler(Protocol[C_contra]):
    """Serves one command type on one connection: calls the vendor for a command."""

    async def trigger(self, command: C_contra, *, command_id: str) -> Triggered: ...


@runtime_checkable
class Cancellable(Protocol):
    """A handler whose vendor can stop a run it started (`cancel-run`, `on_deadline`)."""

    async def cancel(self, vendor_ref: Mapping[str, str]) -> str:
        """Ask the vendor to stop the run; its words. `VendorRejected` when it will not (the
        run already ended); a run already stopped counts as done."""
        ...


@runtime_checkable
class FollowedHandler(CommandHandler[C_contra], Protocol[C_contra]):
    """A handler whose runs the poller follows: it also reads a run's status."""

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport: ...


@dataclass(frozen=True)
class Resources:
    """What one process shares with the vendor clients it opens, built once at bootstrap:
    the rate limiter that counts each vendor account's calls across every process (Redis; in
    memory for the embedded demo)."""

    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)

    async def aclose(self) -> None:
        await self.limiter.aclose()


@dataclass(frozen=True)
class Vendor(Generic[K, S]):
    """One vendor: its settings section (`[<name>.<connection>]`), its connection model, and
    how to open the client that every command type of one connection shares (one token
    manager per PBSM connection, not one per command type).

    A vendor whose clients share something across processes (an account's rate limit) also
    has `open_shared`, which the registry calls with the process's `Resources`; `open` alone
    then serves a single process (tests that build a client directly)."""

    name: str
    title: str
    connection: type[K]
    open: Callable[[httpx.AsyncClient, K], S]
    open_shared: Callable[[httpx.AsyncClient, K, Resources], S] | None = None

    def client(
        self,
        http: httpx.AsyncClient,
        connection: ConnectionBase,
        resources: Resources | None = None,
    ) -> S:
        if not isinstance(connection, self.connection):
            raise TypeError(f"{self.name} needs a {self.connection.__name__}")
        if self.open_shared is not None and resources is not None:
            return self.open_shared(http, connection, resources)
        return self.open(http, connection)


@dataclass(frozen=True)
class Registration(Generic[C, S]):
    """Everything flowgate needs to know about one command type.

    The contract side (`command_type`, `followed`, `example`) is read from the model, so
    publishers have it without the worker code; `handler` builds the command's handler over
    the vendor's shared client of one connection.
    """

    model: type[C]
    # None: answered by flowgate itself (`cancel-run`): no vendor section, no connections;
    # the handler is built over the process's own runtime (`workers.cancel.Runs`).
    vendor: Vendor[Any, S] | None
    handler: Callable[[S], CommandHandler[C] | FollowedHandler[C]]

    @property
    def command_type(self) -> str:
        return self.model.command_type

    @property
    def followed(self) -> bool:
        return self.model.followed

    @property
    def example(self) -> dict[str, Any]:
        return dict(self.model.example)

    def bind(self, client: S) -> Bound[C]:
        handler = self.handler(client)
        if self.followed and not isinstance(handler, FollowedHandler):
            raise TypeError(f"{self.command_type} is followed, but its handler has no status()")
        return Bound(self, handler)


@dataclass(frozen=True)
class Bound(Generic[C]):
    """A registration's handler on one connection, callable with any decoded command: the
    one place where a `Command` is narrowed to the model its handler takes."""

    registration: Registration[C, Any]
    handler: CommandHandler[C] | FollowedHandler[C]
    # Decided once: an isinstance against a runtime-checkable Protocol inspects the class's
    # attributes on every call, 3 % of a poller's CPU when it ran per status call (py-spy).
    _followed: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_followed", isinstance(self.handler, FollowedHandler))

    async def trigger(self, command: Command, *, command_id: str) -> Triggered:
        model = self.registration.model
        if not isinstance(command, model):
            raise InvalidCommand(
                f"{self.registration.command_type} takes {model.__name__} data, "
                f"not {type(command).__name__}"
            )
        with Calling(self.vendor_name, "trigger"):
            return await self.handler.trigger(command, command_id=command_id)

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        if not self._followed:
            raise TypeError(f"{self.registration.command_type} is not followed: no status call")
        handler = cast("FollowedHandler[C]", self.handler)
        with Calling(self.vendor_name, "status"):
            return await handler.status(vendor_ref, cursor=cursor)

    @property
    def vendor_name(self) -> str:
        """The vendor's name (the label of its calls' metrics); `flowgate` for a command
        flowgate answers itself."""
        vendor = self.registration.vendor
        return vendor.name if vendor is not None else "flowgate"

    @property
    def can_cancel(self) -> bool:
        return isinstance(self.handler, Cancellable)

    async def cancel(self, vendor_ref: Mapping[str, str]) -> str:
        """Ask the vendor to stop a run of this command type; `Refused` when it has no way."""
        if not isinstance(self.handler, Cancellable):
            vendor = self.registration.vendor
            raise Refused(
                f"{vendor.title if vendor else 'flowgate'} offers no way to stop a "
                f"{self.registration.command_type} run"
            )
        with Calling(self.vendor_name, "cancel"):
            return await self.handler.cancel(vendor_ref)
