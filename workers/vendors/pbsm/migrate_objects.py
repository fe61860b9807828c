"""`export-objects`, `import-objects` → PBSM Invoke Export / Invoke Import API (chapters 4, 5),
then the Get Export / Get Import Status API (chapters 6, 7) until the migration ends.

Every answer is `{"errorMessage", "statusCode", "status"}`. The trigger's codes, as the
document lists them, and what flowgate makes of each:

- TRIGGERED_SUCCESS (200): `accepted`, then followed.
- EXPORT_INPROGRESS / IMPORT_INPROGRESS (400, status INPROGRESS): `migration_in_progress`:
  follow that migration (default), or reject.
- EXPORT_ALREADY_COMPLETE / IMPORT_ALREADY_COMPLETE (400, status FAILED):
  `migration_already_complete`: reject (default), or succeed at once.
- INVALID_INPUT (400, "Code does not exist"): `failed` kind `rejected`.
- INTERNAL_ERROR (500): `failed` kind `rejected` (a 500 is final for every vendor).

The status APIs document only `"status": "SUCCESS"`; the migration's state is read from
`status` through the connection's lists (INPROGRESS running, SUCCESS, FAILED by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from contracts.commands import ExportObjects, ImportObjects
from workers.errors import VendorRejected
from workers.vendors.base import RunState, StatusReport, Triggered
from workers.vendors.pbsm.client import Direction, PbsmClient
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.models import MigrationAnswer

__all__ = ["ExportObjectsHandler", "ImportObjectsHandler", "MigrationHandler", "migration_status"]

TRIGGERED = "TRIGGERED_SUCCESS"


class MigrationHandler:
    """vendor_ref: `{"migration_code", "direction"}`."""

    direction: ClassVar[Direction]

    def __init__(self, client: PbsmClient) -> None:
        self._client = client

    @property
    def client(self) -> PbsmClient:
        return self._client

    async def trigger(
        self, command: ExportObjects | ImportObjects, *, command_id: str
    ) -> Triggered:
        direction, connection = self.direction, self._client.connection
        http_status, answer = await self._client.migrate(direction, command.code)
        vendor_ref = {"migration_code": command.code, "direction": direction}
        code = (answer.statusCode or "").strip().upper()
        prefix = direction.upper()
        if 200 <= http_status < 300 and code == TRIGGERED:
            return Triggered(vendor_ref=vendor_ref, status=code)
        if code == f"{prefix}_INPROGRESS" and connection.migration_in_progress == "follow":
            # Someone (or an earlier attempt) started it: its end is this command's end.
            return Triggered(vendor_ref=vendor_ref, status=answer.status or code)
        if (
            code == f"{prefix}_ALREADY_COMPLETE"
            and connection.migration_already_complete == "succeed"
        ):
            report = StatusReport(
                state="succeeded",
                status=answer.status or code,
                result=_result(answer),
                vendor_code=code,
            )
            return Triggered(vendor_ref=vendor_ref, status=answer.status, report=report)
        text = f"PBSM {direction}: HTTP {http_status}: statusCode {code or '?'}"
        if answer.errorMessage:
            text = f"{text}: {answer.errorMessage}"
        raise VendorRejected(
            text, http_status=http_status, vendor_code=code or None, status=answer.status
        )

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        code = vendor_ref["migration_code"]
        answer = await self._client.migration_status(self.direction, code)
        return migration_status(answer, self.direction, code, self._client.connection)


class ExportObjectsHandler(MigrationHandler):
    direction = "export"


class ImportObjectsHandler(MigrationHandler):
    direction = "import"


def migration_status(
    answer: MigrationAnswer, direction: Direction, code: str, connection: PbsmConnection
) -> StatusReport:
    """The migration's state from the answer's `status` (its `statusCode` when it has none)."""
    status = (answer.status or answer.statusCode or "").strip()
    folded = status.upper()
    lists: tuple[tuple[list[str], RunState], ...] = (
        (connection.migration_running_statuses, "running"),
        (connection.migration_success_statuses, "succeeded"),
        (connection.migration_failure_statuses, "failed"),
    )
    state: RunState = connection.unknown_status
    for states, meaning in lists:
        if folded in {s.upper() for s in states}:
            state = meaning
            break
    message: str | None = None
    if state == "failed":
        message = f"PBSM {direction} {code}: {status or 'no status'}"
        if answer.errorMessage:
            message = f"{message}: {answer.errorMessage}"
    return StatusReport(
        state=state,
        status=status or "?",
        result=_result(answer),
        message=message,
        vendor_code=answer.statusCode,
    )


def _result(answer: MigrationAnswer) -> dict[str, Any]:
    return answer.model_dump(mode="json", exclude_none=True)
