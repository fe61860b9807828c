"""Fault injection: make one route answer 429/5xx, answer late, or never answer.

flowgate's retry, back-off, ``Retry-After`` and timeout handling can only be tested against a
vendor that misbehaves on demand. A fault is attached to one route name, fires a limited
number of times (or forever) with a given probability, and is consumed as it fires.
Probabilities draw from a seedable ``random.Random`` so a failing test can be replayed.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ROUTES", "Fault", "Faults"]

ROUTES: tuple[str, ...] = (
    "informatica.run",
    "informatica.status",
    "robusta.start",
    "robusta.status",
    "tmf622.patch",
    "pbsm.token",
    "pbsm.trigger",
    "pbsm.status",
    "pbsm.interrupt",
    "pbsm.rerun",
    "pbsm.restart",
    "pbsm.repgen",
    "pbsm.repgenstatus",
    "pbsm.export",
    "pbsm.import",
    "pbsm.export_status",
    "pbsm.import_status",
    "pbsm.upload_url",
    "pbsm.download_url",
    "pbsm.download_url_by_id",
    "pbsm.list_files",
    "pbsm.par",
    "productlive.job_create",
    "productlive.job_read",
    "productlive.invitation_read",
)


class Fault(BaseModel):
    """How one route misbehaves.

    ``status`` answers with that HTTP status instead of the real answer (the vendor's own
    error body), with ``Retry-After: <retry_after>`` when set. ``latency`` delays the answer
    (real or faulty). ``hang`` never answers. ``times`` is how many more times the fault fires
    (None: forever); ``probability`` is the chance it fires on each request.
    """

    model_config = ConfigDict(frozen=True)

    route: str
    status: int | None = Field(default=None, ge=400, le=599)
    times: int | None = Field(default=None, ge=1)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    retry_after: float | None = Field(default=None, ge=0.0)
    latency: float = Field(default=0.0, ge=0.0)
    hang: bool = False

    @field_validator("route")
    @classmethod
    def _known_route(cls, value: str) -> str:
        if value not in ROUTES:
            raise ValueError(f"unknown route {value!r}; known: {', '.join(ROUTES)}")
        return value


class Faults:
    """The active faults, in injection order; the first one that fires for a request wins."""

    def __init__(self, seed: int | None = 0) -> None:
        self._seed = seed
        self._random = random.Random(seed)
        self._active: list[tuple[Fault, list[int | None]]] = []

    def inject(self, fault: Fault) -> None:
        """Add a fault; it stays until it has fired ``times`` times or is cleared."""
        self._active.append((fault, [fault.times]))

    def clear(self) -> None:
        """Remove every fault and restart the random source from its seed."""
        self._active.clear()
        self._random = random.Random(self._seed)

    def active(self) -> list[Fault]:
        """The faults that can still fire."""
        return [fault for fault, _ in self._active]

    def fire(self, route: str) -> Fault | None:
        """The fault that fires for this request to ``route``, if any, counting it down."""
        for index, (fault, remaining) in enumerate(self._active):
            if fault.route != route:
                continue
            if fault.probability < 1.0 and self._random.random() >= fault.probability:
                continue
            left = remaining[0]
            if left is not None:
                remaining[0] = left - 1
                if left <= 1:
                    del self._active[index]
            return fault
        return None
