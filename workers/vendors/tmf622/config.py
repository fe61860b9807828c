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
    unknown_outcome: Literal["retry", "fail"] = Field(
        default="fail",
        description="When a PATCH may or may not have reached the vendor (a read timeout, 502, "
        "504, a crash before its answer was recorded). `fail` (default): answer "
        "failed(unknown_outcome), never PATCH twice. `retry`: PATCH again with the same "
        "X-Correlation-ID. Risk of `retry`: the order may get the payment link twice, because "
        "the b2bsoft-ux document never says the vendor deduplicates on X-Correlation-ID (it "
        "only asks for a value unique per transaction).",
    )
