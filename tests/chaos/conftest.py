"""The `chaos` marker's opt-in rule.

The chaos test restarts the shared RabbitMQ node and takes minutes, so it runs only when asked
for: `pytest -m chaos` (what CI runs), or FLOWGATE_CHAOS=1.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expr = config.getoption("-m") or ""
    selected = ("chaos" in expr and "not chaos" not in expr) or os.environ.get("FLOWGATE_CHAOS")
    if selected:
        return
    skip = pytest.mark.skip(reason="chaos run is opt-in: pytest -m chaos, or FLOWGATE_CHAOS=1")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)
