"""The ledger: every vendor request the simulators received, in arrival order.

Tests and `flowgate simulate` users assert on what flowgate actually put on the wire (method,
path, headers, body), so the ledger keeps the request as received plus the status it was
answered with. Control routes under ``/_sim/`` are never recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["Ledger", "LedgerEntry"]


@dataclass(frozen=True)
class LedgerEntry:
    """One received request. ``status`` is 0 when the request was never answered (hang).

    ``headers`` has lower-case names (repeated headers joined with ", "); ``json`` is the body
    parsed as JSON, or None when the body is not JSON; ``at`` is the wall-clock arrival time.
    """

    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    json: Any | None
    status: int
    at: float

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict, as served by ``GET /_sim/ledger``."""
        return dataclasses.asdict(self)


class Ledger:
    """An append-only list of entries, filtered by route name on read.

    All access happens on the server's event loop, between awaits, so a plain list is safe;
    readers get a copy so a test iterating it never sees it change underneath.
    """

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    def record(self, entry: LedgerEntry) -> None:
        """Append one entry."""
        self._entries.append(entry)

    def entries(self, route: str | None = None) -> list[LedgerEntry]:
        """Every entry, or only those of ``route`` (e.g. ``"pbsm.trigger"``)."""
        return [e for e in self._entries if route is None or e.route == route]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
