"""Connection settings for Oracle PBSM Cloud (IAM token + External Scheduler Interface)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from workers.vendors._connection import ConnectionBase

__all__ = ["PbsmConnection"]


class PbsmConnection(ConnectionBase):
    token_url: str | None = Field(
        default=None, description="IAM token endpoint; default {base_url}/oauth2/v1/token."
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

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self.base_url.rstrip('/')}/oauth2/v1/token"
