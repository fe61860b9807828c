"""PBSM's PAR URL file APIs (seed 004, chapter 3) and the Object Storage behind the PAR URLs.

``https://<host>/<TENANT>/utils-service/v1/...``: upload PAR, download PAR by file name or by
file id, the listing of uploaded files. The PAR URLs point back at the simulator, in Object
Storage's own form (``/p/<token>/n/<namespace>/b/<bucket>/o/<object>``), so a client can
really PUT a small file to an upload URL and GET it back through a download URL. A PAR
carries no other credential; it works for ``par_seconds`` and for its one object and
direction only, else Object Storage's 404 ``NotAuthorizedOrNotFound``.

The seed gives no error bodies for these APIs: ``{"status": "failure", "message"}`` is ours.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from ._common import Clock, Inbound, VendorRoute, json_response
from ._config import PbsmConfig
from ._oauth import TokenStore
from ._pbsm_rules import FILE_HEADERS, missing

__all__ = ["NAMESPACE", "ObjectStore", "PbsmFiles", "StoredObject"]

NAMESPACE = "flowgatesim"
_UTILS = "/{tenant}/utils-service/v1"
# Table 3-1: fileName, fileSize, mimeType.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_MAX_SIZE = 10 * 2**40
_MIME_TYPES = {"text/csv", "text/plain", "dat"}
_FIRST_SEEDED_ID = 9916  # the seed's listing


@dataclass
class StoredObject:
    """One object in the bucket; ``content`` is None until something is PUT to it, at
    ``stored_at`` (wall clock)."""

    name: str
    content: bytes | None = None
    content_type: str = "application/octet-stream"
    stored_at: float | None = None


@dataclass
class _Par:
    obj: StoredObject
    write: bool
    expires: float


@dataclass
class _File:
    file_id: int
    name: str
    stripe: str
    obj: StoredObject
    create_user: str


def _failure(message: str, status: int = 400) -> Response:
    return json_response({"status": "failure", "message": message}, status)


def _not_found() -> Response:
    body = {"code": "NotAuthorizedOrNotFound", "message": "Authorization failed or requested "}
    body["message"] += "resource not found."
    return json_response(body, 404)


class ObjectStore:
    """Objects and the PARs issued on them."""

    def __init__(self, config: PbsmConfig, clock: Clock):
        self.config = config
        self._clock = clock
        self._pars: dict[str, _Par] = {}

    def reset(self) -> None:
        self._pars.clear()

    def par_url(
        self, host: str, tenant: str, obj: StoredObject, *, write: bool, filename: str = ""
    ) -> str:
        """A new PAR URL on ``obj``: an upload (write) or a download naming ``filename``."""
        token = secrets.token_urlsafe(32)
        self._pars[token] = _Par(obj, write, self._clock() + self.config.par_seconds)
        bucket = f"fsgbu_pbsm_{tenant}_default"
        url = f"http://{host}/p/{token}/n/{NAMESPACE}/b/{bucket}/o/{quote(obj.name, safe='/')}"
        if filename:
            disposition = quote(f"ATTACHMENT; filename={filename}", safe="")
            url += f"?httpResponseContentDisposition={disposition}"
        return url

    def serve(self, request: Inbound) -> Response:
        """``PUT`` (upload PAR) or ``GET`` (download PAR) on ``/p/<token>/.../o/<object>``."""
        par = self._pars.get(request.path_params.get("par", ""))
        wanted = request.path_params.get("object", "")
        if par is None or self._clock() >= par.expires or wanted != par.obj.name:
            return _not_found()
        if request.method == "PUT" and par.write:
            par.obj.content = request.body.encode("utf-8")
            par.obj.content_type = request.headers.get("content-type", par.obj.content_type)
            par.obj.stored_at = time.time()
            return Response(status_code=200, headers={"opc-request-id": uuid.uuid4().hex})
        if request.method == "GET" and not par.write and par.obj.content is not None:
            headers = {}
            if disposition := request.query.get("httpResponseContentDisposition"):
                headers["Content-Disposition"] = disposition
            return Response(par.obj.content, media_type=par.obj.content_type, headers=headers)
        return _not_found()


class PbsmFiles:
    """The utils-service file APIs, over an ``ObjectStore``."""

    def __init__(self, config: PbsmConfig, tokens: TokenStore, store: ObjectStore):
        self.config = config
        self.tokens = tokens
        self.store = store
        self._files: list[_File] = []
        self._seed()

    def _seed(self) -> None:
        self._files.clear()
        for index, (name, content) in enumerate(self.config.files.items()):
            obj = StoredObject(
                f"default/seeded/{name}", content.encode(), "text/plain", time.time()
            )
            self._files.append(_File(_FIRST_SEEDED_ID + index, name, "default", obj, "seed"))

    def reset(self) -> None:
        self._seed()

    def routes(self) -> list[VendorRoute]:
        return [
            VendorRoute(
                _UTILS + "/file/uploadfile/parURL", "pbsm.upload_url", ["POST"], self.upload_url
            ),
            VendorRoute(_UTILS + "/file/download", "pbsm.download_url", ["GET"], self.download),
            VendorRoute(
                _UTILS + "/file/downloadfile/{file_id}",
                "pbsm.download_url_by_id",
                ["GET"],
                self.download_by_id,
            ),
            VendorRoute(_UTILS + "/listfiles", "pbsm.list_files", ["GET"], self.list_files),
            VendorRoute(
                "/p/{par}/n/{namespace}/b/{bucket}/o/{object:path}",
                "pbsm.par",
                ["GET", "PUT"],
                self.store.serve,
            ),
        ]

    def _refused(self, request: Inbound) -> Response | None:
        if not self.tokens.valid(request.headers):
            return json_response({"error": "invalid_token"}, 401)
        if absent := missing(request.headers, FILE_HEADERS):
            return _failure(f"request headers missing: {', '.join(absent)}")
        if request.path_params.get("tenant") != request.headers["ofs_tenant_id"]:
            return _failure("the path's tenant is not ofs_tenant_id")
        return None

    # --- handlers -----------------------------------------------------------------------

    def upload_url(self, request: Inbound) -> Response:
        """A PAR to upload one file; the document's body is an object (curl syntax and
        example) or a list of one (its Request JSON Sample): both are taken."""
        if (refused := self._refused(request)) is not None:
            return refused
        body: Any = request.json
        if isinstance(body, list) and len(body) == 1:
            body = body[0]
        if not isinstance(body, dict):
            return _failure("the body is {fileName, fileSize, mimeType}")
        if (problem := _check_upload(body)) is not None:
            return _failure(problem)
        now = datetime.now(UTC)
        prefix = request.query.get("prefix") or "flw"
        obj = StoredObject(f"default/{now:%Y-%m-%d}/{prefix}/{uuid.uuid4()}", None, "text/plain")
        file_id = max((f.file_id for f in self._files), default=_FIRST_SEEDED_ID - 1) + 1
        user = request.headers["ofs_remote_user"]
        self._files.append(_File(file_id, body["fileName"], "default", obj, user))
        tenant = request.path_params["tenant"]
        url = self.store.par_url(_host(request), tenant, obj, write=True)
        payload: dict[str, Any] = {"uploadURL": url, "createUser": user, "stripeName": "default"}
        payload |= {"fileId": file_id, "createDate": now.strftime("%Y-%m-%dT%H:%M:%S")}
        return json_response({"payload": payload | {"token": "", "status": "success"}})

    def download(self, request: Inbound) -> Response:
        """A PAR to download the latest uploaded file of that name (and stripe)."""
        if (refused := self._refused(request)) is not None:
            return refused
        name = request.query.get("fileName")
        if not name:
            return _failure("fileName is required")
        stripe = request.query.get("stripeName") or "default"
        found = [f for f in self._uploaded() if f.name == name and f.stripe == stripe]
        return self._download_answer(request, found[-1] if found else None)

    def download_by_id(self, request: Inbound) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        raw = request.path_params.get("file_id", "")
        if not raw.isdigit():
            return _failure("the file id is a number")
        found = [f for f in self._uploaded() if f.file_id == int(raw)]
        return self._download_answer(request, found[0] if found else None)

    def list_files(self, request: Inbound) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        stripe = request.query.get("stripeName") or "default"
        listed = [
            {
                "v_file_name": f.name,
                "n_file_id": f.file_id,
                "d_upload_date": _oracle_date(f.obj.stored_at or 0.0),
                "v_stripe_name": f.stripe,
            }
            for f in self._uploaded()
            if f.stripe == stripe
        ]
        return json_response({"payload": listed, "count": len(listed)})

    def _uploaded(self) -> list[_File]:
        """The files whose content came (an upload PAR issued but never used lists nothing)."""
        return [f for f in self._files if f.obj.stored_at is not None]

    def _download_answer(self, request: Inbound, file: _File | None) -> Response:
        if file is None:
            return _failure("File not found", 404)
        tenant = request.path_params["tenant"]
        url = self.store.par_url(_host(request), tenant, file.obj, write=False, filename=file.name)
        return json_response({"payload": {"downloadURL": url}})


def _check_upload(body: dict[str, Any]) -> str | None:
    """Table 3-1's rules, as the simulator reads them (independently of flowgate's)."""
    name, size, mime = body.get("fileName"), body.get("fileSize"), body.get("mimeType")
    if not isinstance(name, str) or _FILE_NAME.fullmatch(name) is None:
        return "fileName: starts with a letter or digit; letters, digits, -, ., _; at most 255"
    if not isinstance(size, int) or isinstance(size, bool) or not 1 < size < _MAX_SIZE:
        return "fileSize: an integer, greater than 1 byte and less than 10 TB"
    if not isinstance(mime, str) or mime.lower() not in _MIME_TYPES:
        return "mimeType: Text/CSV, Text/plain or DAT"
    return None


def _host(request: Inbound) -> str:
    return request.headers.get("host") or "127.0.0.1:8700"


def _oracle_date(epoch: float) -> str:
    """``31-JAN-23 06:33:43 AM``, as the seed's listing prints upload dates."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%d-%b-%y %I:%M:%S %p").upper()
