"""Connection settings for the b2bsoft-ux TMF622 productOrder API."""

from __future__ import annotations

from typing import Literal

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
    # The PATCH carries X-Correlation-ID = the command id on every try, so the vendor can
    # deduplicate, and adding the same link twice is harmless: retrying is the safe default.
    unknown_outcome: Literal["retry", "fail"] = "retry"
