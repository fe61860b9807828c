"""Which vendor serves which command, and the adapters for each named connection.

Built once at bootstrap. One `httpx.AsyncClient` per connection (its TLS verification, CA bundle
and pool size are per connection), created lazily and reused for every message: creating clients
per message is the classic way to lose both speed and TLS sessions.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, Literal

import httpx

from workers.errors import UnknownConnection
from workers.settings import Settings
from workers.vendors._connection import ConnectionBase
from workers.vendors.base import VendorAdapter

__all__ = ["VENDOR_OF", "Registry", "VendorHttpClient", "make_http_client"]

VENDOR_OF: dict[str, str] = {
    "add-paylink": "tmf622",
    "run-partner": "informatica",
    "start-process": "robusta",
    "trigger-batch": "pbsm",
}


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


def _build(vendor: str, http: httpx.AsyncClient, connection: ConnectionBase) -> VendorAdapter:
    # Imported here so a vendor's import cost (and failures) stay with the vendor.
    if vendor == "informatica":
        from workers.vendors.informatica.handlers import InformaticaAdapter

        return InformaticaAdapter(http, connection)  # type: ignore[arg-type]
    if vendor == "robusta":
        from workers.vendors.robusta.handlers import RobustaAdapter

        return RobustaAdapter(http, connection)  # type: ignore[arg-type]
    if vendor == "tmf622":
        from workers.vendors.tmf622.handlers import Tmf622Adapter

        return Tmf622Adapter(http, connection)  # type: ignore[arg-type]
    if vendor == "pbsm":
        from workers.vendors.pbsm.handlers import PbsmAdapter

        return PbsmAdapter(http, connection)  # type: ignore[arg-type]
    raise ValueError(f"no vendor {vendor!r}")


class Registry:
    def __init__(
        self,
        settings: Settings,
        *,
        http_factory: Callable[[ConnectionBase], httpx.AsyncClient] | None = None,
    ) -> None:
        self._settings = settings
        self._http_factory = http_factory or (
            lambda c: make_http_client(c, settings.http_transport)
        )
        self._adapters: dict[tuple[str, str], VendorAdapter] = {}
        self._clients: list[httpx.AsyncClient] = []

    def connection(self, command_type: str, name: str) -> ConnectionBase:
        vendor = VENDOR_OF[command_type]
        connections: dict[str, ConnectionBase] = getattr(self._settings, vendor)
        try:
            return connections[name]
        except KeyError:
            known = ", ".join(sorted(connections)) or "none"
            raise UnknownConnection(
                f"no {vendor} connection named {name!r} (configured: {known})"
            ) from None

    def adapter(self, command_type: str, name: str) -> VendorAdapter:
        key = (command_type, name)
        adapter = self._adapters.get(key)
        if adapter is None:
            connection = self.connection(command_type, name)
            http = self._http_factory(connection)
            self._clients.append(http)
            adapter = _build(VENDOR_OF[command_type], http, connection)
            self._adapters[key] = adapter
        return adapter

    def warm(self, command_types: list[str]) -> None:
        """Build every configured adapter now, so no message pays for creating a client
        (TLS context setup costs ~30-200 ms) and a bad setting fails at start."""
        for command_type in command_types:
            for name in getattr(self._settings, VENDOR_OF[command_type]):
                self.adapter(command_type, name)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        self._adapters.clear()
