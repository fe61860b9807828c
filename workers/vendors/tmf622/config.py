"""Connection settings for the b2bsoft-ux TMF622 productOrder API."""

from __future__ import annotations

from pydantic import Field, SecretStr

from workers.vendors._connection import ConnectionBase

__all__ = ["Tmf622Connection"]


class Tmf622Connection(ConnectionBase):
    client_id: str = "b2bsoft-client"
    client_secret: SecretStr = SecretStr("b2bsoft-secret")
    payment_name: str = Field(
        default="PayLink",
        description="The seed's rule says PayLink, its example Paylink; the rule is the default.",
    )
    channel_name: str = "B2BSoft"
