"""The AsyncAPI document as the AsyncAPI CLI reads it: the CLI scripts/install puts in .tools/
(pinned in tools/package.json, with its lockfile), run through scripts/asyncapi, its analytics
and update check off so nothing leaves the machine. The document the models give validates
without an error, and a broken one is refused, so the same check in scripts/test fails CI.

Not installed is a failure naming scripts/install, never a skip."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from contracts.schema import render_all

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ASYNCAPI = REPO / "scripts" / "asyncapi"
CLI = REPO / ".tools" / "node_modules" / ".bin" / "asyncapi"


def _rendered(into: Path) -> Path:
    """Every schema file the models give (the document's `$ref`s name its neighbours)."""
    for name, text in render_all().items():
        (into / name).write_text(text)
    return into / "asyncapi.json"


def _validate(document: Path) -> subprocess.CompletedProcess[str]:
    if not CLI.exists():
        pytest.fail(
            f"the AsyncAPI CLI is not installed ({CLI.relative_to(REPO)} is missing): "
            "run scripts/install (it needs Node 20+ and npm)",
            pytrace=False,
        )
    return subprocess.run(
        [str(ASYNCAPI), "validate", "--fail-severity", "error", str(document)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_generated_document_is_valid(tmp_path: Path) -> None:
    document = _rendered(tmp_path)
    assert json.loads(document.read_text())["asyncapi"] == "3.1.0"
    done = _validate(document)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"File {document} is valid" in done.stdout, done.stdout
    assert "Skipping submitting anonymous metrics" not in done.stdout + done.stderr


def test_a_broken_document_is_refused(tmp_path: Path) -> None:
    document = _rendered(tmp_path)
    broken = json.loads(document.read_text())
    broken["operations"]["send_trigger_batch"]["action"] = "publish"  # AsyncAPI 2's word
    document.write_text(json.dumps(broken))
    done = _validate(document)
    assert done.returncode != 0, done.stdout
    assert "operations.send_trigger_batch.action" in done.stdout, done.stdout
    assert "1 error" in done.stdout, done.stdout
