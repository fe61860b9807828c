"""`cancel-run`: stop a run flowgate is following, where its vendor can.

flowgate answers this command itself, from what it knows of the target command (the
idempotency store's record: the run's vendor reference, its command type and connection, its
outcome) and with the target's own handler (`Bound.cancel`: PBSM's Interrupt API). It never
publishes the target's terminal event: the poller does, when the vendor reports the run
stopped (PBSM's -2, `cancelled`), exactly as it would for a run stopped by anyone else. So a
cancel racing the run's own end gives exactly one terminal event either way: the first one the
poller records.

    target never seen, expired, or not triggered yet    -> failed(rejected), saying so
    target already ended                                -> failed(rejected), with its outcome
    target's vendor has no way to stop a run            -> failed(rejected), the run goes on
    the vendor refuses (the run ended meanwhile)        -> failed(rejected), the vendor's words
    the vendor took the request                         -> succeeded
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.commands import CancelRun
from workers.errors import Refused
from workers.idempotency import IdempotencyStore
from workers.vendors.base import StatusReport, Triggered

if TYPE_CHECKING:
    from workers.registry import Registry

__all__ = ["CancelRunHandler", "Runs"]


@dataclass(frozen=True)
class Runs:
    """What flowgate knows of the runs it follows, and the handlers that can reach them."""

    store: IdempotencyStore
    registry: Registry


class CancelRunHandler:
    def __init__(self, runs: Runs) -> None:
        self._runs = runs

    async def trigger(self, command: CancelRun, *, command_id: str) -> Triggered:
        target = command.command_id
        if target == command_id:
            raise Refused("a cancel-run cannot cancel itself")
        record = await self._runs.store.lookup(target)
        if record is not None and record.outcome is not None:
            kind = record.outcome.get("kind", "?")
            raise Refused(f"command {target} already ended ({kind}): nothing to cancel")
        if record is None or record.vendor_ref is None:
            raise Refused(
                f"flowgate follows no run of command {target}: it never saw it, it has not "
                "reached its vendor yet, or it ended longer ago than idempotency.retention"
            )
        command_type, connection = record.run.get("command_type"), record.run.get("connection")
        if not command_type or not connection:
            raise Refused(f"command {target} was started by an older flowgate: cannot tell its run")
        handler = self._runs.registry.handler(command_type, connection)
        said = await handler.cancel(record.vendor_ref)
        return Triggered(
            vendor_ref={"command_id": target, **record.vendor_ref},
            report=StatusReport(
                state="succeeded",
                status="cancel requested",
                result={"command_id": target, "command_type": command_type, "vendor": said},
            ),
        )
