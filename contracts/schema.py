"""Generate the JSON Schema files and the AsyncAPI 3.1 document in `contracts/schemas/` from
the models, or check for drift.

python -m contracts.schema          write the files
python -m contracts.schema --check  exit 1 when a file differs from what the models give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.commands import COMMAND_TYPES
from contracts.events import EventData, EventKind

__all__ = ["SCHEMA_DIR", "render_all"]

SCHEMA_DIR = Path(__file__).parent / "schemas"
_BASE = "https://flowgate.dev/schemas/v1/"


def _schema(model: Any, name: str) -> str:
    schema = model.model_json_schema(mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _BASE + name,
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _amqp_binding(exchange: str) -> dict[str, Any]:
    return {"amqp": {"is": "routingKey", "exchange": {"name": exchange, "type": "topic"}}}


def _asyncapi() -> str:
    """An AsyncAPI 3.1 document: one channel per command type, one per event routing key."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"EventData": {"$ref": "event.json"}}
    for command_type in sorted(COMMAND_TYPES):
        name = command_type.replace("-", "_")
        messages[f"{name}_command"] = {
            "name": f"flowgate.{command_type}",
            "contentType": "application/cloudevents+json",
            "summary": (COMMAND_TYPES[command_type].__doc__ or "").strip().splitlines()[0],
            "payload": {"$ref": f"command.{command_type}.json"},
        }
        channels[f"{name}_commands"] = {
            "address": command_type,
            "description": f"Exchange flowgate.commands, routing key {command_type}.",
            "messages": {"command": {"$ref": f"#/components/messages/{name}_command"}},
            "bindings": _amqp_binding("flowgate.commands"),
        }
        operations[f"send_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}_commands"},
        }
        channels[f"{name}_events"] = {
            "address": f"{command_type}.{{kind}}",
            "description": f"Exchange flowgate.events: events answering {command_type}.",
            "parameters": {"kind": {"enum": [kind.value for kind in EventKind]}},
            "messages": {"event": {"$ref": "#/components/messages/event"}},
            "bindings": _amqp_binding("flowgate.events"),
        }
        operations[f"receive_{name}_events"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}_events"},
        }
    messages["event"] = {
        "name": "flowgate event",
        "contentType": "application/cloudevents+json",
        "payload": {"$ref": "event.json"},
    }
    document = {
        "asyncapi": "3.1.0",
        "info": {
            "title": "flowgate",
            "version": "1.0.0",
            "description": "Commands in, vendor runs followed to the end, events out.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    """File name → content, for every command's data, event data and the AsyncAPI document."""
    files = {f"command.{t}.json": _schema(m, f"command.{t}.json") for t, m in COMMAND_TYPES.items()}
    files["event.json"] = _schema(EventData, "event.json")
    files["asyncapi.json"] = _asyncapi()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.schema", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when files drift")
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (SCHEMA_DIR / name).is_file() or (SCHEMA_DIR / name).read_text() != text
        ]
        extra = sorted(p.name for p in SCHEMA_DIR.glob("*.json") if p.name not in files)
        if stale or extra:
            print(
                f"contracts/schemas drifted from the models: {', '.join(stale + extra)}; "
                "run `python -m contracts.schema` and commit the result",
                file=sys.stderr,
            )
            return 1
        return 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in files.items():
        (SCHEMA_DIR / name).write_text(text)
    print(f"wrote {len(files)} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
