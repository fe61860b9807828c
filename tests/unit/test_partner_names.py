"""Partner names, as the Run Partner document is read (docs/vendors.md, "Partner names").

The document says a name "must not contain angled brackets (<>), backslashes (\\), or double
quotes (")", then how to send a defined name that contains backslashes (`\\`) or double quotes
(`\\"`). Reading: `<` and `>` are refused before any call; `\\` and `"` are accepted and escaped
on the wire exactly once, which is JSON's own escaping.
"""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from contracts import ContractError, RunPartner, decode_command, encode_command
from workers.vendors.informatica import InformaticaClient, InformaticaConnection, RunPartnerHandler


async def wire_body(name: str) -> bytes:
    """The raw Run Partner body flowgate sends for a command naming `name`."""
    body, content_type = encode_command(
        "run-partner", {"partner_name": name, "direction": "inbound"}, command_id="c-1"
    )
    envelope = decode_command(
        body, content_type=content_type, headers={}, routing_key="run-partner"
    )
    assert isinstance(envelope.data, RunPartner)
    seen: list[bytes] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"eventId": "7638"})

    connection = InformaticaConnection(base_url="http://vendor.test", password=SecretStr("pw"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(vendor))
    await RunPartnerHandler(InformaticaClient(http, connection)).trigger(
        envelope.data, command_id=envelope.id
    )
    (raw,) = seen
    return raw


@pytest.mark.parametrize(
    ("name", "on_the_wire"),
    [
        ("a\\b", b'"partnerName":"a\\\\b"'),  # one backslash more before each backslash
        ('a"b', b'"partnerName":"a\\"b"'),  # a backslash before each double quote
        ('\\"', b'"partnerName":"\\\\\\""'),
    ],
)
async def test_backslash_and_quote_are_accepted_and_escaped_once(
    name: str, on_the_wire: bytes
) -> None:
    raw = await wire_body(name)
    assert on_the_wire in raw
    assert json.loads(raw)["partnerName"] == name


@pytest.mark.parametrize("name", ["<", ">", "ACME <EU>", "a>b"])
def test_angle_brackets_are_refused_before_any_call(name: str) -> None:
    body, content_type = encode_command(
        "run-partner", {"partner_name": name, "direction": "inbound"}, command_id="c-2"
    )
    with pytest.raises(ContractError) as refused:
        decode_command(body, content_type=content_type, headers={}, routing_key="run-partner")
    assert "partner_name must not contain '<' or '>'" in refused.value.message
