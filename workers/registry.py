"""The handlers for each named connection, built from the command table.

Built once at bootstrap. One `httpx.AsyncClient` per connection (its TLS verification, CA bundle
and pool size are per connection), created lazily and reused for every message: creating clients
per message is the classic way to lose both speed and TLS sessions.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any, Literal

import httpx

from workers.cancel import Runs
from workers.commands import COMMANDS
from workers.errors import UnknownConnection
from workers.idempotency import IdempotencyStore
from workers.settings import Settings
from workers.vendors._connection import ConnectionBase
from workers.vendors.base import Bound, Resources, Vendor

__all__ = ["Registry", "VendorHttpClient", "make_http_client"]

# The policies (retry, poll) of a command flowgate answers itself.
_BUILTIN = ConnectionBase()


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class VendorHttpClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that keeps no cookies.

    Every vendor call carries its own credentials, so a cookie one answer sets must not ride
    along on the next call. httpx has no switch for it (encode/httpx#2992), and its cookie
    handling wraps every response in urllib request objects: ~5 % of a poller's CPU (py-spy,
    BENCHMARKS.md).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()


def make_http_client(
    connection: ConnectionBase, transport: Literal["aiohttp", "httpx"]
) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=connection.max_connections,
        max_keepalive_connections=connection.max_connections,
    )
    timeout = httpx.Timeout(connection.timeout)
    verify: ssl.SSLContext | bool = connection.verify is not False
    if isinstance(connection.verify, str):
        # A CA bundle adds trust for this connection; verification itself stays on.
        verify = ssl.create_default_context(cafile=connection.verify)
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return VendorHttpClient(
            transport=AiohttpTransport(verify=verify, limits=limits),
            timeout=timeout,
        )
    return VendorHttpClient(verify=verify, limits=limits, timeout=timeout)


class Registry:
    """The handlers of every (command type, connection), built from the command table.

    One vendor client per (vendor, connection), shared by all its command types (one PBSM
    token per connection); one HTTP client per connection.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http_factory: Callable[[ConnectionBase], httpx.AsyncClient] | None = None,
        resources: Resources | None = None,
        store: IdempotencyStore | None = None,
    ) -> None:
        self._settings = settings
        # What the commands flowgate answers itself (`cancel-run`) read: the runs it follows.
        self._store = store
        # Shared with every vendor client (a vendor account's rate limit across processes).
        self._resources = resources
        self._http_factory = http_factory or (
            lambda c: make_http_client(c, settings.http_transport)
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._handlers: dict[tuple[str, str], Bound[Any]] = {}
        self._http: list[httpx.AsyncClient] = []

    def resolve(self, command_type: str, name: str | None) -> tuple[str, ConnectionBase]:
        """The connection a command names (or its vendor's default), as (name, settings).
        A command flowgate answers itself has no vendor: any name, the default policies."""
        registered = COMMANDS[command_type].vendor
        if registered is None:
            return name or "default", _BUILTIN
        vendor = registered.name
        connections = self._settings.connections(vendor)
        chosen = name if name is not None else self._settings.default_connection(vendor)
        known = ", ".join(sorted(connections)) or "none"
        if chosen is None:
            raise UnknownConnection(
                f"this command names no connection and {vendor} has no default "
                f"(configured: {known}); set the CloudEvents attribute `connection`"
            )
        try:
            return chosen, connections[chosen]
        except KeyError:
            raise UnknownConnection(
                f"no {vendor} connection named {chosen!r} (configured: {known})"
            ) from None

    def handler(self, command_type: str, name: str) -> Bound[Any]:
        """The handler of `command_type` on the connection `name` (a resolved name)."""
        key = (command_type, name)
        bound = self._handlers.get(key)
        if bound is None:
            registration = COMMANDS[command_type]
            if registration.vendor is None:
                if self._store is None:
                    raise RuntimeError(f"{command_type} needs the registry built with a store")
                bound = registration.bind(Runs(self._store, self))
            else:
                bound = registration.bind(self._client(registration.vendor, name))
            self._handlers[key] = bound
        return bound

    def _client(self, vendor: Vendor[Any, Any], name: str) -> Any:
        key = (vendor.name, name)
        client = self._clients.get(key)
        if client is None:
            connection = self._settings.connections(vendor.name)[name]
            http = self._http_factory(connection)
            self._http.append(http)
            client = vendor.client(http, connection, self._resources)
            self._clients[key] = client
        return client

    def warm(self, command_types: Iterable[str]) -> None:
        """Build every configured handler now, so no message pays for creating a client
        (TLS context setup costs ~30-200 ms) and a bad setting fails at start."""
        for command_type in command_types:
            vendor = COMMANDS[command_type].vendor
            if vendor is not None:
                for name in self._settings.connections(vendor.name):
                    self.handler(command_type, name)

    def describe(self) -> dict[str, list[str]]:
        """Configured connection names per vendor, the default marked (names only)."""
        described: dict[str, list[str]] = {}
        for vendor in COMMANDS.vendors:
            default = self._settings.default_connection(vendor.name)
            described[vendor.name] = [
                f"{name} (default)" if name == default else name
                for name in sorted(self._settings.connections(vendor.name))
            ]
        return described

    async def aclose(self) -> None:
        for http in self._http:
            await http.aclose()
        self._http.clear()
        self._clients.clear()
        self._handlers.clear()
