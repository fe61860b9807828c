"""The W3C json-to-xml form: the seed's documents read as the JSON they stand for, results
written back, and hostile or malformed XML refused (XXE, billion laughs, depth, size)."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.jsonxml import NAMESPACE, XmlError, json_to_xml, xml_to_json

LIMITS = {"max_bytes": 1024 * 1024, "max_depth": 32}

# The seed's "Create many partner invitations - XML input" request, verbatim (XML 1.1).
SEED_REQUEST = """<?xml version="1.1" encoding="UTF-8"?>
<map xmlns="http://www.w3.org/2005/xpath-functions">
<array key="operations">
<map>
<string key="key">a</string>
<map key="element">
<string key="toAccountName">Supplier A</string>
<string key="toUserEmail">contact@supplier-a.com</string>
</map>
</map>
<map>
<string key="key">b</string>
<map key="element">
<string key="toAccountName">Supplier B</string>
<string key="toUserEmail">contact@supplier-b.com</string>
</map>
</map>
</array>
</map>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE map [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<map xmlns="http://www.w3.org/2005/xpath-functions"><string key="k">&xxe;</string></map>"""

LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "\n".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f'\n]>\n<map xmlns="{NAMESPACE}"><string key="k">&lol9;</string></map>'
)


def test_the_seeds_request_reads_as_its_json_form() -> None:
    assert xml_to_json(SEED_REQUEST, **LIMITS) == {
        "operations": [
            {
                "key": "a",
                "element": {
                    "toAccountName": "Supplier A",
                    "toUserEmail": "contact@supplier-a.com",
                },
            },
            {
                "key": "b",
                "element": {
                    "toAccountName": "Supplier B",
                    "toUserEmail": "contact@supplier-b.com",
                },
            },
        ]
    }


def test_every_kind_round_trips() -> None:
    value: Any = {
        "s": 'text <&> "quoted"',
        "n": 3,
        "f": 2.5,
        "t": True,
        "no": False,
        "nil": None,
        "list": [1, "two", {"three": []}, {}],
        "ctrl": "bell\x07",
        "key\x01": "escaped key",
    }
    document = json_to_xml(value)
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<map xmlns=')
    assert 'escaped="true"' in document and 'escaped-key="true"' in document
    assert xml_to_json(document, **LIMITS) == value


def test_numbers_and_booleans_follow_xml_schema_lexical_forms() -> None:
    document = (
        f'<array xmlns="{NAMESPACE}"><number> 42 </number><number>-1.5e2</number>'
        "<boolean>1</boolean><boolean> false </boolean><null/></array>"
    )
    assert xml_to_json(document, **LIMITS) == [42, -150.0, True, False, None]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (XXE, "no DTD"),
        (LAUGHS, "no DTD"),
        ("<map", "not well-formed"),
        ("<map/>", "not a json-to-xml element"),
        (f'<map xmlns="{NAMESPACE}"><string>no key</string></map>', "needs a key"),
        (f'<array xmlns="{NAMESPACE}"><string key="k">x</string></array>', "take no key"),
        (f'<map xmlns="{NAMESPACE}"><null key="a"/><null key="a"/></map>', "twice"),
        (f'<map xmlns="{NAMESPACE}">stray</map>', "must not contain text"),
        (f'<number xmlns="{NAMESPACE}">twelve</number>', "is not a number"),
        (f'<boolean xmlns="{NAMESPACE}">yes</boolean>', "true or false"),
        (f'<string xmlns="{NAMESPACE}"><map/></string>', "must not contain elements"),
    ],
)
def test_refused(document: str, says: str) -> None:
    with pytest.raises(XmlError, match=says):
        xml_to_json(document, **LIMITS)


def test_depth_and_size_are_bounded_before_the_whole_document_is_read() -> None:
    deep = f'<array xmlns="{NAMESPACE}">' + "<array>" * 40 + "</array>" * 40 + "</array>"
    with pytest.raises(XmlError, match="deeper than 32"):
        xml_to_json(deep, **LIMITS)
    # exactly at the bound: 32 nested containers, a leaf below
    ok = f'<array xmlns="{NAMESPACE}">' + "<array>" * 31 + "<null/>" + "</array>" * 32
    assert xml_to_json(ok, **LIMITS) is not None
    with pytest.raises(XmlError, match="over the 2048-byte limit"):
        xml_to_json("<x/>" + " " * 2048, max_bytes=2048, max_depth=32)


def _decode(body: bytes, content_type: str, headers: dict[str, Any] | None = None) -> Any:
    from contracts import decode_command

    return decode_command(
        body, content_type=content_type, headers=headers or {}, routing_key="invite-partners"
    )


def test_a_command_in_xml_decodes_to_the_same_model_in_both_modes() -> None:
    import json

    from contracts import InvitePartners

    xml = SEED_REQUEST.replace("toAccountName", "to_account_name").replace(
        "toUserEmail", "to_user_email"
    )
    # The seed nests the fields under "element"; the command's operations are flat.
    xml = xml.replace('<map key="element">', "").replace("</map>\n</map>", "</map>")
    structured = json.dumps(
        {
            "specversion": "1.0",
            "id": "c1",
            "source": "urn:test",
            "type": "flowgate.invite-partners",
            "datacontenttype": "application/xml",
            "data": xml,
        }
    ).encode()
    binary_headers = {
        "ce-specversion": "1.0",
        "ce-id": "c1",
        "ce-source": "urn:test",
        "ce-type": "flowgate.invite-partners",
    }
    one = _decode(structured, "application/cloudevents+json").data
    two = _decode(xml.encode(), "application/xml; charset=utf-8", binary_headers).data
    assert isinstance(one, InvitePartners) and one == two
    assert [o.key for o in one.operations] == ["a", "b"]
    assert one.operations[1].to_user_email == "contact@supplier-b.com"


def test_hostile_xml_in_a_command_is_a_contract_error_with_the_id() -> None:
    from contracts import ContractError

    headers = {
        "ce-specversion": "1.0",
        "ce-id": "c2",
        "ce-source": "urn:test",
        "ce-type": "flowgate.invite-partners",
    }
    with pytest.raises(ContractError, match="no DTD") as caught:
        _decode(LAUGHS.encode(), "application/xml", headers)
    assert (caught.value.command_id, caught.value.command_type) == ("c2", "invite-partners")
