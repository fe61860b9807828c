"""`invite-partners` -> the connection's Data Factory job that wraps the task
`data-partner-invitation-create`, run like `run-job`, its output read per key.

The job's input is the task's request, `{"operations": [{"key", "element": {"toAccountName",
"toUserEmail", "fromUserId"?}}]}` (under `invitation_input_key` when the job reads it there).
Its output holds the task's per-key results at `invitation_results` (default `result.json`):
`{"key", "response": {"object": "partner_invitation", ...}}` for a created invitation, anything
else (an `error`) for a key that failed; a requested key the output does not name failed too.

`result`: `{"results": [one entry per key, in the command's order], "failed_keys": [...]}`.
The run `succeeded` when at least one invitation was created (the failed keys listed); `failed`
kind `rejected` when none was, or when the job ended USER_ERROR.

With `follow_invitations`, the run goes on after the job: each created invitation is read
(`GET /v1/partner-invitations/{id}`, at most `follow_batch` per status call, each paced by the
account's limit) until every one is ACCEPTED or `follow_invitations_for` has passed; each change
of the count is a `progress` event. What it read so far travels in the poll request's cursor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from contracts.commands import InvitePartners, PartnerInvitation
from contracts.events import ErrorKind
from workers.errors import Throttled
from workers.vendors.base import StatusReport, Triggered
from workers.vendors.productlive.models import FILE_OBJECT, INVITATION_OBJECT, JobExecution
from workers.vendors.productlive.run_job import JobFollower, shaped

__all__ = ["ACCEPTED", "InvitePartnersHandler", "operation_wire", "per_key"]

ACCEPTED = "ACCEPTED"
_FOLLOW = "invitations"


def operation_wire(operation: PartnerInvitation) -> dict[str, Any]:
    """One operation as the task takes it; `fromUserId` only when given."""
    element: dict[str, Any] = {
        "toAccountName": operation.to_account_name,
        "toUserEmail": operation.to_user_email,
    }
    if operation.from_user_id is not None:
        element["fromUserId"] = operation.from_user_id
    return {"key": operation.key, "element": element}


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _created(entry: Mapping[str, Any]) -> bool:
    response = entry.get("response")
    return (
        isinstance(response, dict)
        and response.get("object", INVITATION_OBJECT) == INVITATION_OBJECT
        and bool(response.get("id"))
    )


def per_key(output: Any, path: str, requested: list[str] | None) -> list[dict[str, Any]]:
    """One entry per key: `{"key", "response"}` (the invitation) or `{"key", "error"}`."""
    found = _dig(output, path)
    entries: dict[str, dict[str, Any]] = {}
    if isinstance(found, dict) and found.get("object") == FILE_OBJECT:
        error = {
            "message": "the job returned its results as a file, not inline JSON",
            "url": found.get("url"),
        }
        return [{"key": key, "error": error} for key in requested or []]
    for item in found if isinstance(found, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str | int):
            continue
        key = str(item["key"])
        if _created(item):
            entries[key] = {"key": key, "response": item["response"]}
        else:
            error = item.get("error") or {
                "message": "no invitation in the job's output for this key",
                "entry": {k: v for k, v in item.items() if k != "key"},
            }
            entries[key] = {"key": key, "error": error}
    ordered: list[dict[str, Any]] = []
    for key in requested or []:
        missing = {"key": key, "error": {"message": "the job's output has no result for this key"}}
        ordered.append(entries.pop(key, missing))
    return ordered + list(entries.values())


def _summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "results": entries,
        "failed_keys": [entry["key"] for entry in entries if "error" in entry],
    }


def _accepted(entries: list[dict[str, Any]]) -> tuple[int, int]:
    created = [e for e in entries if "response" in e]
    return sum(1 for e in created if e["response"].get("status") == ACCEPTED), len(created)


class InvitePartnersHandler(JobFollower):
    """`invite-partners` on one Product-Live connection."""

    async def trigger(self, command: InvitePartners, *, command_id: str) -> Triggered:
        request: dict[str, Any] = {"operations": [operation_wire(o) for o in command.operations]}
        key = self.connection.invitation_input_key
        job_input = request if key is None else {key: request}
        return await self.start(self.connection.invitation_job_id, job_input, command.result_format)

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        if cursor.get("phase") == _FOLLOW:
            return await self._follow(vendor_ref, cursor)
        execution = await self.client.job_execution(vendor_ref["job_execution_id"])
        status = execution.status
        state = self.state_of(status)
        if state == "running":
            return StatusReport(state="running", status=status)
        entries = per_key(
            execution.output, self.connection.invitation_results, self._requested(execution)
        )
        result = _summary(entries)
        if state != "succeeded":
            return self.ended(state, execution, result, vendor_ref)
        created = sum(1 for e in entries if "response" in e)
        if not created:
            return StatusReport(
                state="failed",
                status=status,
                result=shaped(result, vendor_ref),
                message=f"Product-Live job execution {execution.id}: no invitation was "
                f"created ({len(entries)} keys failed: {', '.join(result['failed_keys'][:10])})",
                error_kind=ErrorKind.REJECTED,
            )
        accepted, _ = _accepted(entries)
        if self.connection.follow_invitations and accepted < created:
            follow = {
                "phase": _FOLLOW,
                "job_status": status,
                "until": time.time() + self.connection.follow_invitations_for,
                "next": 0,
                "results": entries,
            }
            return self._following(follow, vendor_ref)
        return StatusReport(state="succeeded", status=status, result=shaped(result, vendor_ref))

    def _requested(self, execution: JobExecution) -> list[str] | None:
        """The keys the job was asked for, from the execution's payload (its input)."""
        payload = execution.payload
        key = self.connection.invitation_input_key
        if key is not None:
            payload = payload.get(key) if isinstance(payload, dict) else None
        operations = payload.get("operations") if isinstance(payload, dict) else None
        if not isinstance(operations, list):
            return None
        return [
            str(o["key"])
            for o in operations
            if isinstance(o, dict) and isinstance(o.get("key"), str)
        ]

    def _following(self, follow: dict[str, Any], vendor_ref: Mapping[str, str]) -> StatusReport:
        entries: list[dict[str, Any]] = follow["results"]
        accepted, created = _accepted(entries)
        job_status = str(follow["job_status"])
        if accepted == created or time.time() >= float(follow["until"]):
            return StatusReport(
                state="succeeded", status=job_status, result=shaped(_summary(entries), vendor_ref)
            )
        return StatusReport(
            state="running",
            status=f"{job_status}; invitations {ACCEPTED} {accepted}/{created}",
            result=shaped(_summary(entries), vendor_ref),
            cursor=follow,
        )

    async def _follow(
        self, vendor_ref: Mapping[str, str], cursor: Mapping[str, Any]
    ) -> StatusReport:
        follow = dict(cursor)
        entries: list[dict[str, Any]] = [dict(e) for e in follow["results"]]
        follow["results"] = entries
        pending = [
            i
            for i, e in enumerate(entries)
            if "response" in e and e["response"].get("status") != ACCEPTED
        ]
        if pending and time.time() < float(follow["until"]):
            start = int(follow.get("next", 0))
            order = [i for i in pending if i >= start] + [i for i in pending if i < start]
            for read, index in enumerate(order[: self.connection.follow_batch]):
                try:
                    invitation = await self.client.partner_invitation(
                        str(entries[index]["response"]["id"])
                    )
                except Throttled:
                    if read == 0:
                        raise  # nothing new: wait for the account's next slot
                    break  # keep what was read; the rest on the next status call
                entries[index] = {
                    "key": entries[index]["key"],
                    "response": invitation.model_dump(mode="json"),
                }
                follow["next"] = index + 1
        return self._following(follow, vendor_ref)
