"""The vendors' wire calls, written out by hand for the limit and the Celery contenders.

Each `Plan` says which HTTP calls to make and what an answer means, with no I/O of its own,
so the asyncio limit and the synchronous Celery task drive the very same requests flowgate
sends (docs/vendors.md). A status *round* may need several steps (Informatica: the task event,
then its file events at once); `status` answers "more" while the round needs another step.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
PBSM_REPORTS = "/aai-dmi-service/vw/v1/"
REPORT_STATES = {"PENDING": "running", "RUNNING": "running", "COMPLETE": "succeeded"}
REPORT_STATES |= {"COMPLETED": "succeeded", "FAIL": "failed", "FAILED": "failed"}
JOB_STATES = {"PENDING": "running", "RUNNING": "running", "COMPLETED": "succeeded"}
JOB_STATES |= {"USER_ERROR": "failed", "FAILED": "failed", "TIMEDOUT": "failed"}
JOB_STATES |= {"TERMINATED": "cancelled"}
JOB_EXECUTIONS = "/v1/data_factory/job_executions"
PRODUCTLIVE_KEY = "productlive-api-key"  # flowgate's default connection's key


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
    form = "grant_type=password&scope=urn:opc:idm:__myscopes__+offline_access"  # as flowgate's
    form += "&username=pbsm-user&password=pbsm-password"
    headers = _basic("pbsm-client", "pbsm-client-secret")
    headers["Content-Type"] = "application/x-www-form-urlencoded;charset=UTF-8"
    return Call("pbsm", "POST", "/oauth2/v1/token", headers, content=form)


class Plan:
    vendor = ""

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        raise NotImplementedError

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
        """After the trigger (`data`: the command's): usually "running" with the run's
        reference."""
        raise NotImplementedError

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        raise NotImplementedError

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        raise NotImplementedError


class Informatica(Plan):
    vendor = "informatica"
    auth = _basic("iics-user", "iics-password") | {"Accept": "application/json"}

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

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
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
    auth = _basic("robusta-user", "robusta-password") | {"Accept": "application/json"}

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        body = {"values": data.get("values") or {}, "name": data["process_name"]}
        body |= {"runOnce": "Y", "runImmediately": "Y"}
        path = "/scheduler/connector-API/process/start"
        return Call(self.vendor, "POST", path, self.auth, body)

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
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

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
        return StepResult("succeeded", {}, "200")  # synchronous: the PATCH is the outcome


class Pbsm(Plan):
    vendor = "pbsm"

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        body: dict[str, Any] = {"batchName": data["batch"], "batchType": "rest"}
        if data.get("params"):
            body["dynamicParamList"] = {"batchParams": data["params"]}
        path = PBSM_BASE + "trigger"
        return Call(self.vendor, "POST", path, dict(PBSM_HEADERS), body, needs_token=True)

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
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


class PbsmRerun(Pbsm):
    """`rerun-batch`: the Rerun API names the ended run; its answer is a new run, followed
    like a triggered one."""

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        body = {"batchName": data["batch"], "batchRunId": data["batch_run_id"]}
        path = PBSM_BASE + "rerun"
        return Call(self.vendor, "POST", path, dict(PBSM_HEADERS), body, needs_token=True)


class PbsmReport(Plan):
    """`generate-report`: the Generate Report API, then its status API, which names the
    report by headers (reportcode, reportInstanceID) and takes `{}` as its body."""

    vendor = "pbsm"
    user = {k: PBSM_HEADERS[k] for k in ("ofs_remote_user", "ofs_service_id", "ofs_workspace_id")}
    user |= {"locale": PBSM_HEADERS["locale"]}  # the document's headers: no ofs_tenant_id

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        headers = {**self.user, "reportcode": data["report_code"]}
        headers |= {"Content-Type": "application/json"}
        headers["reportType"] = data.get("report_type", "CSV")
        headers["appid"] = data.get("app_id") or "PBSM"  # flowgate's connection's app_id
        headers["reportDefType"] = data.get("report_def_type", "V")
        body = {
            "filterCriteria": data.get("filter_criteria", ""),
            "placeholderFilter": data.get("placeholder_filter", ""),
        }
        path = PBSM_REPORTS + "repgen"
        return Call(self.vendor, "POST", path, headers, body, needs_token=True)

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
        instance = answer.get("requestInstanceId") or answer["reportInstanceId"]
        # read as a status answer: a report already ended needs no status call
        return self.status({"code": data["report_code"], "instance": str(instance)}, [answer])

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        headers = {**self.user, "reportcode": ref["code"]}
        headers |= {"Content-Type": "application/json", "reportInstanceID": ref["instance"]}
        path = PBSM_REPORTS + "repgenstatus"
        return [Call(self.vendor, "POST", path, headers, {}, needs_token=True)]

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        status = str(answers[0].get("status") or "")
        state = REPORT_STATES.get(status.upper(), "failed")
        if state == "succeeded" and not answers[0].get("downloadLink"):
            state = "failed"  # complete without its link: flowgate fails it too
        return StepResult(state, ref, status)


class ProductLive(Plan):
    """`run-job`: create a Data Factory job execution, then read it until it ends. Every
    call carries the account's `X-Api-Key`; flowgate also paces them by the account's rate
    limit, which the bench raises out of the way (`bench.workload.PRODUCTLIVE_RATE_LIMIT`)."""

    vendor = "productlive"
    auth = {"X-Api-Key": PRODUCTLIVE_KEY, "accept": "application/json"}

    def trigger(self, data: dict[str, Any], command_id: str) -> Call:
        body = {"jobId": data["job_id"], "input": data.get("input") or {}}
        headers = {**self.auth, "Content-Type": "application/json"}
        return Call(self.vendor, "POST", JOB_EXECUTIONS, headers, body)

    def triggered(self, answer: Any, data: dict[str, Any]) -> StepResult:
        # flowgate follows every job execution it created, even one already final
        return StepResult("running", {"execution": str(answer["id"])}, str(answer["status"]))

    def status_calls(self, ref: dict[str, Any]) -> list[Call]:
        path = f"{JOB_EXECUTIONS}/{quote(ref['execution'], safe='')}"
        return [Call(self.vendor, "GET", path, dict(self.auth))]

    def status(self, ref: dict[str, Any], answers: list[Any]) -> StepResult:
        status = str(answers[0]["status"])
        return StepResult(JOB_STATES.get(status, "failed"), ref, status)


PLANS: dict[str, Plan] = {
    "run-partner": Informatica(),
    "start-process": Robusta(),
    "add-paylink": Tmf622(),
    "trigger-batch": Pbsm(),
    "rerun-batch": PbsmRerun(),
    "generate-report": PbsmReport(),
    "run-job": ProductLive(),
}
