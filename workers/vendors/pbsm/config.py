"""Connection settings for Oracle PBSM Cloud (IAM token, External Scheduler Interface, reports,
object migrations and the PAR file APIs)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from workers.vendors._connection import ConnectionBase

__all__ = ["LOCAL_HOSTS", "PbsmConnection"]

# Where `flowgate simulate` runs in a checkout: the simulator serves the token endpoint under
# the base URL, so a connection pointed here may leave token_url unset.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class PbsmConnection(ConnectionBase):
    token_url: str | None = Field(
        default=None,
        description="The IAM token endpoint, https://<iam_tenant>/oauth2/v1/token: an identity "
        "host of its own, not under base_url. Required unless base_url is the local simulator "
        "(127.0.0.1, localhost), where it defaults to {base_url}/oauth2/v1/token.",
    )
    client_id: str = "pbsm-client"
    client_secret: SecretStr = SecretStr("pbsm-client-secret")
    username: str = "pbsm-user"
    password: SecretStr = SecretStr("pbsm-password")
    scope: str = "urn:opc:idm:__myscopes__ offline_access"
    tenant_id: str = "TENANT1"
    service_id: str = "PBSMCS"
    workspace_id: str = "WS001"
    remote_user: str = "batchuser"
    locale: str = "en-US"
    token_refresh_margin: float = Field(
        default=60.0, ge=0, description="Refresh this many seconds before expires_in runs out."
    )
    # --- reports (Generate Report API, Get Report Generation Status and PAR URL Link API) ---
    app_id: str = Field(
        default="PBSM",
        min_length=1,
        description="The header appid of the Generate Report API (the cloud service's "
        "application id); a command's app_id wins.",
    )
    # --- object migrations (Invoke Export/Import API, Get Export/Import Status API) --------
    export_status_path: str = Field(
        default="/Public/status/export/{code}",
        description="Get Export Status API path under base_url; the document spells it with "
        "a capital P, unlike every other path.",
    )
    import_status_path: str = Field(
        default="/public/status/import/{code}",
        description="Get Import Status API path under base_url.",
    )
    migration_running_statuses: list[str] = Field(
        default_factory=lambda: ["INPROGRESS"],
        description="Migration status values (the answer's `status`) of a migration still going.",
    )
    migration_success_statuses: list[str] = Field(
        default_factory=lambda: ["SUCCESS"],
        description="Migration status values of a migration that ended well.",
    )
    migration_failure_statuses: list[str] = Field(
        default_factory=lambda: ["FAILED"],
        description="Migration status values of a migration that failed.",
    )
    migration_in_progress: Literal["follow", "reject"] = Field(
        default="follow",
        description="An export (import) answered EXPORT_INPROGRESS (IMPORT_INPROGRESS): "
        "`follow` that migration to its end, or `reject` the command.",
    )
    migration_already_complete: Literal["reject", "succeed"] = Field(
        default="reject",
        description="An export (import) answered EXPORT_ALREADY_COMPLETE "
        "(IMPORT_ALREADY_COMPLETE): `reject` the command (the vendor's word: FAILED), or "
        "`succeed` (the migration's definitions are where they should be).",
    )
    unknown_status: Literal["failed", "running"] = Field(
        default="failed",
        description="A report or migration status none of the lists names: a failure, or "
        "still going.",
    )
    # --- the PAR file APIs (utils-service) --------------------------------------------------
    files_url: str | None = Field(
        default=None,
        description="Root of the utils-service file APIs; default "
        "{base_url}/{tenant_id}/utils-service/v1 (the document's "
        "https://<HOST_NAME:PORT>/<TENANT>/utils-service/v1/...).",
    )
    upload_body: Literal["object", "list"] = Field(
        default="object",
        description="The upload PAR request's body: one object (the document's curl syntax "
        "and example) or a list of one (its Request JSON Sample).",
    )
    par_lifetime: float = Field(
        default=900.0,
        gt=0,
        description="Seconds a PAR URL is taken to be valid from the vendor's answer (the "
        "document gives no expiry): the `expires_at` flowgate reports.",
    )

    @field_validator("export_status_path", "import_status_path")
    @classmethod
    def _has_code(cls, value: str) -> str:
        if "{code}" not in value or not value.startswith("/"):
            raise ValueError("a status path starts with '/' and holds {code}")
        return value

    @model_validator(mode="after")
    def _token_url_when_not_local(self) -> PbsmConnection:
        if self.token_url is None and (urlsplit(self.base_url).hostname or "") not in LOCAL_HOSTS:
            raise ValueError(
                "token_url is required: PBSM tokens come from the IAM host "
                "(https://<iam_tenant>/oauth2/v1/token), not from base_url "
                f"{self.base_url!r}; set token_url in this connection "
                '(token_url = "https://<iam_tenant>/oauth2/v1/token", or '
                "FLOWGATE_PBSM__<CONNECTION>__TOKEN_URL). Only a base_url on 127.0.0.1 or "
                "localhost (the simulator) may leave it unset"
            )
        return self

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self.base_url.rstrip('/')}/oauth2/v1/token"

    @property
    def files_root(self) -> str:
        if self.files_url is not None:
            return self.files_url.rstrip("/")
        return f"{self.base_url.rstrip('/')}/{quote(self.tenant_id, safe='')}/utils-service/v1"
