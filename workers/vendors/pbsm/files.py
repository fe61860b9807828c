"""`request-upload-url`, `request-download-url`, `list-files` → PBSM's PAR URL file APIs
(chapter 3, "Generating PAR URL for File Operations"). Synchronous: the vendor's answer is the
terminal event.

A PAR (pre-authenticated request) URL lets whoever holds it move the file: it is a secret.
It travels only in the terminal event of the command that asked for it (`result.url`), never
in a log line or an error message. The document gives no expiry: `expires_at` is the answer's
time plus the connection's `par_lifetime`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from contracts.commands import ListFiles, RequestDownloadUrl, RequestUploadUrl
from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors.base import StatusReport, Triggered
from workers.vendors.pbsm.client import PbsmClient
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.models import ParAnswer, ParPayload, UploadRequest

__all__ = [
    "ListFilesHandler",
    "RequestDownloadUrlHandler",
    "RequestUploadUrlHandler",
    "expires_at",
    "par_result",
]


def expires_at(connection: PbsmConnection, now: float | None = None) -> str:
    """RFC 3339 UTC: when a PAR URL answered at `now` is taken to expire."""
    moment = (time.time() if now is None else now) + connection.par_lifetime
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def par_result(url: SecretStr, payload: ParPayload, connection: PbsmConnection) -> dict[str, Any]:
    """`{"url", "expires_at", ...}` plus the payload's other members as the vendor sent them."""
    result: dict[str, Any] = {"url": url.get_secret_value(), "expires_at": expires_at(connection)}
    secrets = {"uploadURL", "downloadURL", "token"}
    result |= payload.model_dump(mode="json", exclude_none=True, exclude=secrets)
    if payload.token is not None and payload.token.get_secret_value():
        result["token"] = payload.token.get_secret_value()
    return result


def _url(answer: ParAnswer, member: str, what: str) -> SecretStr:
    url: SecretStr | None = getattr(answer.payload, member)
    if url is None or not url.get_secret_value():
        raise VendorRejected(f"{what}: the answer's payload has no {member}", http_status=200)
    return url


def _read_only(exc: VendorUnavailable) -> VendorUnavailable:
    # A PAR for a download, or a listing, creates nothing: asking again is always safe,
    # whatever became of a call whose answer was lost.
    exc.maybe_sent = False
    return exc


class _FileHandler:
    def __init__(self, client: PbsmClient) -> None:
        self._client = client

    @property
    def client(self) -> PbsmClient:
        return self._client


class RequestUploadUrlHandler(_FileHandler):
    """Generate PAR URL for File Upload: the file's rules are checked by the command model
    (`contracts.commands.check_file_name`, size and MIME type) before any call."""

    async def trigger(self, command: RequestUploadUrl, *, command_id: str) -> Triggered:
        request = UploadRequest(
            fileName=command.file_name, fileSize=command.file_size, mimeType=command.mime_type
        )
        answer = await self._client.upload_url(request, prefix=command.prefix)
        url = _url(answer, "uploadURL", "PBSM upload PAR")
        payload = answer.payload
        result = {"fileName": command.file_name} | par_result(url, payload, self._client.connection)
        vendor_ref = {"file_name": command.file_name}
        if payload.fileId:
            vendor_ref["file_id"] = payload.fileId
        status = _status(payload)
        report = StatusReport(state="succeeded", status=status, result=result)
        return Triggered(vendor_ref=vendor_ref, status=status, report=report)


class RequestDownloadUrlHandler(_FileHandler):
    """Generate PAR URL For File Download, by file name or by file id."""

    async def trigger(self, command: RequestDownloadUrl, *, command_id: str) -> Triggered:
        client = self._client
        try:
            if command.file_id is not None:
                vendor_ref = {"file_id": str(command.file_id)}
                answer = await client.download_url_by_id(command.file_id)
            else:
                assert command.file_name is not None  # the model gives one of them
                vendor_ref = {"file_name": command.file_name}
                answer = await client.download_url(
                    command.file_name, stripe_name=command.stripe_name, prefix=command.prefix
                )
        except VendorUnavailable as exc:
            raise _read_only(exc) from None
        url = _url(answer, "downloadURL", "PBSM download PAR")
        result = {**vendor_ref, **par_result(url, answer.payload, client.connection)}
        status = _status(answer.payload)
        report = StatusReport(state="succeeded", status=status, result=result)
        return Triggered(vendor_ref=vendor_ref, status=status, report=report)


class ListFilesHandler(_FileHandler):
    """Viewing List of Uploaded Files: `result` `{"files": [...], "count"}`, as listed."""

    async def trigger(self, command: ListFiles, *, command_id: str) -> Triggered:
        try:
            answer = await self._client.list_files(stripe_name=command.stripe_name)
        except VendorUnavailable as exc:
            raise _read_only(exc) from None
        files = [entry.model_dump(mode="json", exclude_none=True) for entry in answer.payload]
        count = answer.count if answer.count is not None else len(files)
        status = f"{count} files"
        report = StatusReport(
            state="succeeded", status=status, result={"files": files, "count": count}
        )
        return Triggered(
            vendor_ref={"stripe_name": command.stripe_name}, status=status, report=report
        )


def _status(payload: ParPayload) -> str:
    extra = payload.model_extra or {}
    status = extra.get("status")
    return status if isinstance(status, str) and status else "success"
