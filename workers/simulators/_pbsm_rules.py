"""PBSM wire rules: Table 10-1 codes, trigger validation, answer shapes, and the header sets
each of the seed's other APIs lists.

Kept apart from the run bookkeeping in ``_pbsm`` so the codes and texts the seed defines can
be read (and checked against the seed) in one place.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FILE_HEADERS",
    "FINAL_CODES",
    "MIGRATION_HEADERS",
    "OFS_HEADERS",
    "REPORT_HEADERS",
    "REPORT_STATUS_HEADERS",
    "REQUEST_ERRORS",
    "STATUS_NAMES",
    "SUCCESS",
    "TASKS",
    "RequestError",
    "batch_code",
    "check_trigger",
    "first_open",
    "missing",
    "task_override",
    "triggered",
]

STATUS_NAMES = {
    "0": "SUCCESSFUL", "-1": "FAILED", "-2": "INTERRUPTED", "1": "NOT_STARTED",
    "2": "ONGOING", "3": "ABORTED", "4": "EXCLUDED", "5": "HELD",
}  # fmt: skip
FINAL_CODES = {
    "SUCCESSFUL": "0",
    "FAILED": "-1",
    "INTERRUPTED": "-2",
    "ABORTED": "3",
    "EXCLUDED": "4",
}
REQUEST_ERRORS = {
    "-3": "Object does not exist",
    "-4": "Invalid arguments passed in request/not enough params in Request body",
    "-5": "Invalid request headers/request headers missing",
    "-6": "No executable job is present",
    "-7": "Job is already interrupted",
    "-8": "Job is not ongoing/aborted",
}
OFS_HEADERS = ("ofs_tenant_id", "ofs_service_id", "ofs_workspace_id", "ofs_remote_user", "locale")
# Each API's "Request Headers Details" (chapters 3 to 9), lower-cased as received.
_USER = ("ofs_remote_user", "ofs_workspace_id", "locale")
REPORT_HEADERS = (*_USER, "ofs_service_id", "reportcode", "reporttype", "appid", "reportdeftype")
REPORT_STATUS_HEADERS = (*_USER, "ofs_service_id", "reportcode", "reportinstanceid")
MIGRATION_HEADERS = (*_USER, "ofs_tenant_id")
FILE_HEADERS = (*_USER, "ofs_tenant_id")
TASKS = ("T1", "T2")


class RequestError(Exception):
    """A request-level failure answered as HTTP 200 with a negative ``statusCode``."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


SUCCESS = {"statusCode": "0", "status": "success"}


def triggered(run_id: str, purpose: str) -> dict[str, Any]:
    """The seed's trigger/rerun/restart answer (``purpose``: "", " for rerun", " for restart")."""
    summary = f"Object triggered successfully{purpose} with Run Id: {run_id}"
    answer = {"severity": "info", "summary": summary, "batchRunId": run_id}
    return answer | {"details": "Object triggered successfully."} | SUCCESS


def first_open(codes: list[str]) -> int:
    """The task that an interrupt stops: the ongoing one, else the first not started."""
    return codes.index("2") if "2" in codes else codes.index("1") if "1" in codes else -1


def task_override(body: dict[str, Any], task: str) -> str | None:
    """Excluded (4) or held (5) when the trigger named ``task`` in excludedTasks/heldTasks."""
    if task in (body.get("excludedTasks") or []):
        return "4"
    if task in (body.get("heldTasks") or []):
        return "5"
    return None


def check_trigger(body: dict[str, Any]) -> None:
    """-4 for a malformed trigger body, -3 for a batch (or member) that does not exist."""
    name, kind, params = body.get("batchName"), body.get("batchType"), body.get("dynamicParamList")
    if not isinstance(name, str) or not name or kind not in ("rest", "group"):
        raise RequestError("-4")
    for key in ("excludedTasks", "heldTasks"):
        tasks = body.get(key, [])
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise RequestError("-4")
    names = [name]
    if kind == "rest" and params is not None:
        if not isinstance(params, dict) or not isinstance(params.get("batchParams", {}), dict):
            raise RequestError("-4")
    elif kind == "group" and params is not None:
        if not isinstance(params, list):
            raise RequestError("-4")
        for member in params:
            if not isinstance(member, dict) or not isinstance(member.get("batchName"), str):
                raise RequestError("-4")
            if not isinstance(member.get("batchParams", {}), dict):
                raise RequestError("-4")
            names.append(member["batchName"])
    if any(n.startswith("MISSING") for n in names):
        raise RequestError("-3")


def missing(headers: dict[str, str], names: tuple[str, ...]) -> list[str]:
    """The listed headers a request lacks (or sends empty)."""
    return [name for name in names if not headers.get(name)]


def batch_code(final_status: str) -> str:
    """The ending statusCode of a batch run scripted with ``final_status``; the report and
    migration words (COMPLETE, FAIL, SUCCESS) share the vendor's outcome table."""
    if final_status in FINAL_CODES:
        return FINAL_CODES[final_status]
    return "-1" if final_status.upper().startswith("FAIL") else "0"
