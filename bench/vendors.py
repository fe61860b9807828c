"""The four vendors' wire calls, written out by hand for the limit and the Celery contenders.

Each `Plan` says which HTTP calls to make and what an answer means, with no I/O of its own,
so the asyncio limit and the synchronous Celery task drive the very same requests flowgate
sends (docs/vendors.md). A status *round* may need several steps (Informatica: the task event,
then its file events at once); `status` answers "more" while the round needs another step.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PLANS", "Call", "Plan", "StepResult", "pbsm_token_call"]

PBSM_BASE = "/SchedulerService/rest-api/v1/external/"
PBSM_HEADERS = {
    "ofs_tenant_id": "TENANT1",
    "ofs_service_id": "PBSMCS",
    "ofs_workspace_id": "WS001",
    "ofs_remote_user": "batchuser",
    "locale": "en-US",
}
INFA_FINAL = {"Complete", "Warning", "Reprocessed", "Discarded", "Error", "System Error"}
INFA_FAILED = {"Discarded", "Error", "System Error"}
PBSM_STATES = {"1": "running", "2": "running", "5": "running", "0": "succeeded"}
PBSM_STATES |= {"4": "succeeded", "-1": "failed", "3": "failed", "-2": "cancelled"}


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Call:
    """One HTTP request; `needs_token` asks the driver to add the PBSM bearer token."""

    vendor: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: str | None = None
    needs_token: bool = False


@dataclass(frozen=True)
class StepResult:
    """What answers mean: `state` running / more / succeeded / failed / cancelled."""

    state: str
    ref: dict[str, Any]
    status: str = ""


def pbsm_token_call() -> Call:
    form = "grant_type=password&scope=urn%3Aopc%3Aidm%3A__myscopes__+offline_access"
    form += "&username=pbsm-user&password=pbsm-password"
    headers = _basic("pbsm-client", "pbsm-client-secret")
    headers["Content-Type"] = "application/x-www-form-urlencoded;charset=UTF-8"
    return Call("pbsm", "POST", "/oauth2/v1/token", headers, content=form)


class Plan:
    vendor = ""

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        raise NotImplementedError

    def triggered(self, answer: Any) -> StepResult:
        """After the trigger: usually "running" with the run's reference."""
        raise NotImplementedError

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        raise NotImplementedError

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        raise NotImplementedError


class Informatica(Plan):
    vendor = "informatica"
    auth = _basic("iics-user", "iics-password")

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        mapping = {
            "inputParameters": data.get("input_parameters"),
            "inOutParameters": data.get("in_out_parameters"),
            "mctAdvSessionProperties": data.get("session_properties"),
        }
        body: dict[str, Any] = {"partnerName": data["partner_name"]}
        body["direction"] = str(data["direction"]).upper()
        body["mappingParameters"] = {k: v for k, v in mapping.items() if v} or None
        return Call(self.vendor, "POST", "/b2b-gw/api/v1/partner/run", self.auth, body)

    def triggered(self, answer: Any) -> StepResult:
        return StepResult("running", {"task": str(answer["eventId"]), "files": None})

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        ids = [ref["task"]] if ref["files"] is None else list(ref["files"])
        path = "/b2b-gw/api/v3/event/status/"
        return [Call(self.vendor, "GET", path + i, self.auth) for i in ids]

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        if ref["files"] is None:
            task = answers[0]
            status = task["eventStatus"]
            if status not in INFA_FINAL:
                return StepResult("running", ref, status)
            if status in INFA_FAILED:
                return StepResult("failed", ref, status)
            # The final task event lists its file events (`files`); only those not final yet
            # are asked again, each by its own id, as flowgate does.
            listed = task.get("files") or []
            failed = any(f["eventStatus"] in INFA_FAILED for f in listed)
            files = [str(f["eventId"]) for f in listed if f["eventStatus"] not in INFA_FINAL]
            if files:
                return StepResult("more", {**ref, "files": files, "failed": failed}, status)
            return StepResult("failed" if failed else "succeeded", ref, status)
        pending = [a["eventId"] for a in answers if a["eventStatus"] not in INFA_FINAL]
        failed = ref.get("failed", False) or any(a["eventStatus"] in INFA_FAILED for a in answers)
        if pending:
            return StepResult(
                "running", {**ref, "files": [str(p) for p in pending], "failed": failed}
            )
        return StepResult("failed" if failed else "succeeded", ref, "files final")


class Robusta(Plan):
    vendor = "robusta"
    auth = _basic("robusta-user", "robusta-password")

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        body = {"values": data.get("values") or {}, "name": data["process_name"]}
        body |= {"runOnce": "Y", "runImmediately": "Y"}
        path = "/scheduler/connector-API/process/start"
        return Call(self.vendor, "POST", path, self.auth, body)

    def triggered(self, answer: Any) -> StepResult:
        return StepResult("running", {"spid": answer["robustaSpid"]})

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        path = f"/scheduler/connector-api/process/status/{ref['spid']}"
        return [Call(self.vendor, "GET", path, self.auth)]

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        status = answers[0]["status"]
        state = {"WAITING": "running", "RUNNING": "running", "SUCCEEDED": "succeeded"}
        return StepResult(state.get(status, "failed"), ref, status)


class Tmf622(Plan):
    vendor = "tmf622"

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        headers = {"client_id": "b2bsoft-client", "client_secret": "b2bsoft-secret"}
        headers["X-Correlation-ID"] = command_id
        item = {"id": data.get("item_id", ""), "action": "add"}
        item["payment"] = [{"id": data["payment_link"], "name": "PayLink"}]
        body: dict[str, Any] = {"channel": [{"id": "sourceSystem", "name": "B2BSoft"}]}
        body["productOrderItem"] = [item]
        if data.get("external_id"):
            body["externalId"] = data["external_id"]
        if data.get("billing_account_id"):
            body["billingAccount"] = {
                "id": data["billing_account_id"],
                "name": "billingAccountNumber",
            }
        path = f"/b2bsoft-ux/v1/{data['business_id']}/productOrder/{data['order_id']}"
        return Call(self.vendor, "PATCH", path, headers, body)

    def triggered(self, answer: Any) -> StepResult:
        return StepResult("succeeded", {}, "200")  # synchronous: the PATCH is the outcome


class Pbsm(Plan):
    vendor = "pbsm"

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        body: dict[str, Any] = {"batchName": data["batch"], "batchType": "rest"}
        if data.get("params"):
            body["dynamicParamList"] = {"batchParams": data["params"]}
        path = PBSM_BASE + "trigger"
        return Call(self.vendor, "POST", path, dict(PBSM_HEADERS), body, needs_token=True)

    def triggered(self, answer: Any) -> StepResult:
        if answer.get("statusCode") != "0":
            return StepResult("failed", {}, str(answer.get("statusCode")))
        return StepResult("running", {"run": answer["batchRunId"]})

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        body = {"batchRunId": ref["run"]}
        path = PBSM_BASE + "status"
        return [Call(self.vendor, "POST", path, dict(PBSM_HEADERS), body, needs_token=True)]

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        code = str(answers[0].get("batchStatusCode"))
        return StepResult(PBSM_STATES.get(code, "failed"), ref, code)


PLANS: dict[str, Plan] = {
    "run-partner": Informatica(),
    "start-process": Robusta(),
    "add-paylink": Tmf622(),
    "trigger-batch": Pbsm(),
}
