"""JSON as XML, in the W3C form of XPath 3.1's `json-to-xml` and `xml-to-json` functions.

Product-Live's users write Data Factory requests in this form (`<map>`, `<array>`,
`<string key="…">`, `<number>`, `<boolean>`, `<null>` in the namespace
`http://www.w3.org/2005/xpath-functions`), so a command may carry its data that way
(`datacontenttype` / AMQP content type `application/xml`) and ask for its result that way.

    <map xmlns="http://www.w3.org/2005/xpath-functions">
      <array key="operations">
        <map>
          <string key="key">a</string>
          <map key="element"><string key="toAccountName">Supplier A</string></map>
        </map>
      </array>
    </map>

Reading is hardened: `defusedxml` refuses any DTD (so no external entity and no entity
expansion, the XXE and "billion laughs" attacks), the document's size is bounded before it is
parsed, and its depth while it is parsed (an over-deep document is refused at the first element
past the bound, before the rest is read). Anything that is not exactly this form is an
`XmlError` naming what is wrong.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import defusedxml.ElementTree as safe
from defusedxml import DefusedXmlException

__all__ = ["NAMESPACE", "XmlError", "json_to_xml", "xml_to_json"]

NAMESPACE = "http://www.w3.org/2005/xpath-functions"
_NS = f"{{{NAMESPACE}}}"
_KINDS = ("map", "array", "string", "number", "boolean", "null")
# Characters XML 1.0 cannot carry; a string holding one is written with escaped="true".
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


class XmlError(ValueError):
    """The XML is refused: unsafe, too large or deep, or not the json-to-xml form."""


def xml_to_json(document: bytes | str, *, max_bytes: int, max_depth: int) -> Any:
    """The JSON value a json-to-xml document stands for.

    `max_depth` bounds the JSON nesting (maps and arrays), as for a JSON command.
    """
    raw = document.encode("utf-8") if isinstance(document, str) else document
    if len(raw) > max_bytes:
        raise XmlError(f"XML data is {len(raw)} bytes, over the {max_bytes}-byte limit")
    depth = 0
    root: Element | None = None
    try:
        events = safe.iterparse(
            io.BytesIO(raw),
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, element in events:
            if event == "start":
                depth += 1
                # Leaves (string, number, ...) sit one level below their map or array.
                if depth > max_depth + 1:
                    raise XmlError(f"XML data is nested deeper than {max_depth} levels")
                if root is None:
                    root = element
            else:
                depth -= 1
    except DefusedXmlException as exc:
        raise XmlError(f"XML refused: {type(exc).__name__} (no DTD or entities allowed)") from None
    except ParseError as exc:
        raise XmlError(f"XML is not well-formed: {exc}") from None
    if root is None:
        raise XmlError("XML document has no element")
    return _value(root)


def _kind(element: Element) -> str:
    tag = element.tag
    if not tag.startswith(_NS) or tag[len(_NS) :] not in _KINDS:
        local = tag.rsplit("}", 1)[-1]
        raise XmlError(
            f"<{local}> is not a json-to-xml element: expected one of "
            f"{', '.join(_KINDS)} in namespace {NAMESPACE}"
        )
    return tag[len(_NS) :]


def _flag(element: Element, name: str) -> bool:
    value = (element.get(name) or "false").strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise XmlError(f"attribute {name}={value!r} must be true or false")


def _unescape(text: str) -> str:
    # escaped="true": the text holds JSON escapes (\n, \uXXXX, ...).
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        raise XmlError("an escaped string holds an invalid JSON escape") from None
    return str(value)


def _no_children(element: Element, kind: str) -> None:
    if len(element):
        raise XmlError(f"<{kind}> must not contain elements")


def _value(root: Element) -> Any:
    """Convert without recursion: a stack of (element, where its value goes)."""
    result: list[Any] = [None]
    stack: list[tuple[Element, Any, Any]] = [(root, result, 0)]
    while stack:
        element, parent, slot = stack.pop()
        kind = _kind(element)
        if kind in ("map", "array"):
            if (element.text or "").strip():
                raise XmlError(f"<{kind}> must not contain text")
            children = list(element)
            container: dict[str, Any] | list[Any]
            if kind == "map":
                container = {}
                for child in children:
                    key = child.get("key")
                    if key is None:
                        raise XmlError("every child of <map> needs a key attribute")
                    if _flag(child, "escaped-key"):
                        key = _unescape(key)
                    if key in container:
                        raise XmlError(f"<map> has the key {key!r} twice")
                    container[key] = None
                    if (child.tail or "").strip():
                        raise XmlError("<map> must not contain text")
                parent[slot] = container
                for child in reversed(children):
                    key = child.get("key") or ""
                    if _flag(child, "escaped-key"):
                        key = _unescape(key)
                    stack.append((child, container, key))
            else:
                container = [None] * len(children)
                for child in children:
                    if child.get("key") is not None:
                        raise XmlError("children of <array> take no key attribute")
                    if (child.tail or "").strip():
                        raise XmlError("<array> must not contain text")
                parent[slot] = container
                for index in range(len(children) - 1, -1, -1):
                    stack.append((children[index], container, index))
            continue
        _no_children(element, kind)
        text = element.text or ""
        if kind == "string":
            parent[slot] = _unescape(text) if _flag(element, "escaped") else text
        elif kind == "number":
            if not _NUMBER.match(text):
                raise XmlError(f"<number> {text.strip()[:40]!r} is not a number")
            number = float(text)
            integral = re.fullmatch(r"\s*[+-]?\d+\s*", text) is not None
            parent[slot] = int(text) if integral else number
        elif kind == "boolean":
            value = text.strip()
            if value not in ("true", "false", "1", "0"):
                raise XmlError(f"<boolean> {value[:40]!r} is not true or false")
            parent[slot] = value in ("true", "1")
        else:
            if text.strip():
                raise XmlError("<null> must be empty")
            parent[slot] = None
    return result[0]


def json_to_xml(value: Any) -> str:
    """The json-to-xml document of a JSON value (an XML declaration, then one element)."""
    root = Element("root")
    stack: list[tuple[Element, str | None, Any]] = [(root, None, value)]
    while stack:
        parent, key, item = stack.pop()
        if isinstance(item, dict):
            element = _element(parent, "map", key)
            for name, child in reversed(list(item.items())):
                stack.append((element, str(name), child))
        elif isinstance(item, list | tuple):
            element = _element(parent, "array", key)
            for child in reversed(item):
                stack.append((element, None, child))
        elif isinstance(item, bool):
            _element(parent, "boolean", key).text = "true" if item else "false"
        elif isinstance(item, int | float):
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError("JSON has no infinite or NaN numbers")
            _element(parent, "number", key).text = repr(item)
        elif item is None:
            _element(parent, "null", key)
        else:
            text = str(item)
            element = _element(parent, "string", key)
            if _NOT_XML.search(text):
                element.set("escaped", "true")
                text = json.dumps(text, ensure_ascii=False)[1:-1]
            element.text = text
    document = root[0]
    # Children inherit the default namespace; tags are written unprefixed, as the seed does.
    document.set("xmlns", NAMESPACE)
    body = tostring(document, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _element(parent: Element, kind: str, key: str | None) -> Element:
    element = SubElement(parent, kind)
    if key is not None:
        if _NOT_XML.search(key):
            element.set("escaped-key", "true")
            key = json.dumps(key, ensure_ascii=False)[1:-1]
        element.set("key", key)
    return element
