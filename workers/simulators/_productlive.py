"""Product-Live: Data Factory job executions and partner invitations, seed 001 and the public
API pages (docs/vendors.md, "Product-Live").

Every call needs a known `X-Api-Key` (401 otherwise) and counts against its account's limit:
`rate_limit` requests per `rate_window` seconds, a sliding window over the calls it accepted;
past it, 429 with `Retry-After` (whole seconds until the oldest counted call leaves the window).

A job execution is PENDING for the first third of `run_seconds`, RUNNING until `run_seconds`,
then final. An `echo` job ends COMPLETED with `{"input", "report": <data_factory_file>}`. A
`partner-invitations` job runs the task data-partner-invitation-create over its input's
operations: a key whose `toAccountName` is missing or blank, or whose `toUserEmail` is not an
address, gets `{"key", "error": {"code", "message"}}` (the seed shows no per-key error: this
shape is ours); every other key gets `{"key", "response": <partner_invitation>}`. The job ends
COMPLETED when at least one invitation was created, USER_ERROR when none was, and its output
is the task's INLINE JSON output, `{"result": {"json": [...]}}`. An invitation is PENDING, then
ACCEPTED `accept_after` seconds after the job ended.

`set_outcome("productlive", key, status)` makes a run end FAILED, TIMEDOUT, TERMINATED or
USER_ERROR (no task output), where `key` is the job id, the input's `name`, or the first
operation's key.
"""

from __future__ import annotations

import http
import itertools
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from ._common import Clock, Inbound, Outcome, Vendor, VendorRoute, json_response, utc_iso
from ._config import ProductLiveConfig

__all__ = ["JOB_STATUSES", "ProductLiveSim"]

JOB_STATUSES = ("COMPLETED", "USER_ERROR", "FAILED", "TERMINATED", "TIMEDOUT")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class _Execution:
    id: str
    account: str
    job_id: str
    input: dict[str, Any]
    created: float  # the simulator's clock
    created_wall: float
    final_status: str
    output: Any = None


@dataclass
class _Invitation:
    id: str
    account: str
    execution: _Execution
    element: dict[str, Any]
    created_wall: float


@dataclass
class _Account:
    calls: deque[float] = field(default_factory=deque)


def _error(status: int, message: str) -> Response:
    # Product-Live documents no error body; this one is ours.
    return json_response(
        {"statusCode": status, "error": http.HTTPStatus(status).phrase, "message": message}, status
    )


class ProductLiveSim(Vendor):
    """Job executions and invitations; `outcomes` is keyed as the module says."""

    name = "productlive"

    def __init__(self, config: ProductLiveConfig, outcomes: dict[str, Outcome], clock: Clock):
        self.config = config
        self._outcomes = outcomes
        self._clock = clock
        self._ids = itertools.count(1)
        self._executions: dict[str, _Execution] = {}
        self._invitations: dict[str, _Invitation] = {}
        self._accounts: dict[str, _Account] = {}

    @property
    def latency(self) -> float:
        return self.config.latency

    def routes(self) -> list[VendorRoute]:
        base = "/v1/data_factory/job_executions"
        return [
            VendorRoute(base, "productlive.job_create", ["POST"], self.create),
            VendorRoute(f"{base}/{{jobExecutionId}}", "productlive.job_read", ["GET"], self.read),
            VendorRoute(
                "/v1/partner-invitations/{partnerInvitationId}",
                "productlive.invitation_read",
                ["GET"],
                self.invitation,
            ),
        ]

    def error_response(self, status: int) -> Response:
        return _error(status, http.HTTPStatus(status).phrase)

    def check_outcome(self, final_status: str, file_status: str | None) -> None:
        if final_status not in JOB_STATUSES:
            raise ValueError(f"productlive final status must be one of {', '.join(JOB_STATUSES)}")
        if file_status is not None:
            raise ValueError("productlive has no file status")

    def reset(self) -> None:
        self._executions.clear()
        self._invitations.clear()
        self._accounts.clear()

    # --- the pipeline every call goes through ---------------------------------------------

    def _admit(self, request: Inbound) -> tuple[str | None, Response | None]:
        """(account, None) when the call may proceed, else (None, the 401 or 429 answer)."""
        account = self.config.api_keys.get(request.headers.get("x-api-key", ""))
        if account is None:
            return None, _error(401, "Invalid or missing API key")
        calls = self._accounts.setdefault(account, _Account()).calls
        now = self._clock()
        window = self.config.rate_window
        while calls and calls[0] <= now - window:
            calls.popleft()
        if len(calls) >= self.config.rate_limit:
            response = _error(429, "Too many requests: rate limit exceeded")
            wait = calls[0] + window - now
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return None, response
        calls.append(now)
        return account, None

    def _new_id(self) -> str:
        return f"{next(self._ids):024x}"

    # --- job executions ---------------------------------------------------------------------

    def create(self, request: Inbound) -> Response:
        """`POST /v1/data_factory/job_executions` `{"jobId", "input"?}`."""
        account, refused = self._admit(request)
        if refused is not None or account is None:
            return refused or _error(401, "Invalid or missing API key")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("jobId"), str):
            return _error(400, "jobId must be a string")
        job_input = body.get("input", {})
        if not isinstance(job_input, dict):
            return _error(400, "input must be an object")
        job_id = body["jobId"]
        kind = self.config.jobs.get(job_id)
        if kind is None:
            return _error(404, f"Job {job_id} not found")
        outcome = self._scripted(job_id, job_input)
        now = self._clock()
        execution = _Execution(
            self._new_id(), account, job_id, job_input, now, _wall(), "COMPLETED"
        )
        if outcome is not None:
            execution.final_status = outcome.final_status
        elif kind == "echo":
            execution.output = {"input": job_input, "report": self._file(execution)}
        else:
            self._run_invitations(execution)
        self._executions[execution.id] = execution
        return json_response(self._answer(execution))

    def read(self, request: Inbound) -> Response:
        """`GET /v1/data_factory/job_executions/{id}`."""
        account, refused = self._admit(request)
        if refused is not None:
            return refused
        execution = self._executions.get(request.path_params["jobExecutionId"])
        if execution is None or execution.account != account:
            return _error(404, "Job execution not found")
        return json_response(self._answer(execution))

    def _scripted(self, job_id: str, job_input: dict[str, Any]) -> Outcome | None:
        keys = [job_id, job_input.get("name")]
        request = job_input
        if self.config.invitation_input_key is not None:
            request = job_input.get(self.config.invitation_input_key) or {}
        operations = request.get("operations") if isinstance(request, dict) else None
        if isinstance(operations, list) and operations and isinstance(operations[0], dict):
            keys.append(operations[0].get("key"))
        for key in keys:
            if isinstance(key, str) and key in self._outcomes:
                return self._outcomes[key]
        return None

    def _status(self, execution: _Execution) -> str:
        elapsed = self._clock() - execution.created
        run = self.config.run_seconds
        if elapsed >= run:
            return execution.final_status
        return "PENDING" if elapsed < run / 3 else "RUNNING"

    def _answer(self, execution: _Execution) -> dict[str, Any]:
        status = self._status(execution)
        answer: dict[str, Any] = {
            "object": "job_execution",
            "id": execution.id,
            "jobId": execution.job_id,
            "createdAt": utc_iso(execution.created_wall),
            "updatedAt": utc_iso(execution.created_wall),
            "status": status,
            "payload": execution.input,
        }
        if status in JOB_STATUSES:
            answer["updatedAt"] = utc_iso(execution.created_wall + self.config.run_seconds)
            if execution.output is not None:
                answer["output"] = execution.output
        return answer

    def _file(self, execution: _Execution) -> dict[str, Any]:
        file_id = self._new_id()
        return {
            "object": "data_factory_file",
            "id": file_id,
            "createdAt": utc_iso(execution.created_wall),
            "updatedAt": utc_iso(execution.created_wall),
            "url": f"https://api.product-live.com/v1/data_factory/files/{file_id}/content",
        }

    def _run_invitations(self, execution: _Execution) -> None:
        """The task over the input's operations: one result per key (see the module)."""
        request: Any = execution.input
        if self.config.invitation_input_key is not None:
            request = request.get(self.config.invitation_input_key)
        operations = request.get("operations") if isinstance(request, dict) else None
        if not isinstance(operations, list):
            execution.final_status = "USER_ERROR"
            return
        results: list[dict[str, Any]] = []
        for operation in operations:
            if not isinstance(operation, dict):
                continue
            key = operation.get("key")
            element = operation.get("element")
            problem = _problem(element)
            if problem is not None:
                results.append({"key": key, "error": {"code": problem[0], "message": problem[1]}})
                continue
            assert isinstance(element, dict)
            invitation = _Invitation(
                self._new_id(), execution.account, execution, element, execution.created_wall
            )
            self._invitations[invitation.id] = invitation
            results.append({"key": key, "response": self._invitation(invitation)})
        created = any("response" in r for r in results)
        execution.final_status = "COMPLETED" if created else "USER_ERROR"
        execution.output = {"result": {"json": results}}

    # --- partner invitations ----------------------------------------------------------------

    def invitation(self, request: Inbound) -> Response:
        """`GET /v1/partner-invitations/{id}`."""
        account, refused = self._admit(request)
        if refused is not None:
            return refused
        invitation = self._invitations.get(request.path_params["partnerInvitationId"])
        if invitation is None or invitation.account != account:
            return _error(404, "Partner invitation not found")
        return json_response(self._invitation(invitation))

    def _invitation(self, invitation: _Invitation) -> dict[str, Any]:
        accept_after = self.config.accept_after
        ended = invitation.execution.created + self.config.run_seconds
        accepted = accept_after is not None and self._clock() >= ended + accept_after
        updated = invitation.created_wall
        if accepted and accept_after is not None:
            updated += self.config.run_seconds + accept_after
        element = invitation.element
        answer: dict[str, Any] = {
            "object": "partner_invitation",
            "id": invitation.id,
            "createdAt": utc_iso(invitation.created_wall),
            "updatedAt": utc_iso(updated),
            "accountId": invitation.account,
            "fromUserId": str(element.get("fromUserId") or "9224"),
            "toAccountName": element["toAccountName"],
            "toUserEmail": element["toUserEmail"],
            "status": "ACCEPTED" if accepted else "PENDING",
        }
        return answer


def _problem(element: Any) -> tuple[str, str] | None:
    """Why one operation's element is refused, as (code, message), or None."""
    if not isinstance(element, dict):
        return "INVALID_ELEMENT", "element must be an object"
    name = element.get("toAccountName")
    if not isinstance(name, str) or not name.strip():
        return "MISSING_ACCOUNT_NAME", "toAccountName is required"
    email = element.get("toUserEmail")
    if not isinstance(email, str) or not _EMAIL.match(email):
        return "INVALID_EMAIL", "toUserEmail is not a valid email address"
    sender = element.get("fromUserId")
    if sender is not None and not isinstance(sender, str | int):
        return "INVALID_FROM_USER", "fromUserId must be a user id"
    return None


def _wall() -> float:
    return time.time()
