"""Every module's `__all__` is sorted and names only things that exist.

"Sorted" is ruff's RUF022 isort-style order, the project's convention: SCREAMING_CASE
constants first, then CamelCase classes, then everything else, each in natural order.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import pytest

import contracts
import workers


def _modules() -> list[str]:
    names = []
    for package in (contracts, workers):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def isort_key(name: str) -> tuple[int, list[tuple[int, int | str]]]:
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    chunks = re.findall(r"\d+|\D+", name)
    return category, [(0, int(c)) if c.isdigit() else (1, c) for c in chunks]


def test_isort_key_order() -> None:
    names = ["run", "Queue2", "MAX", "Queue10", "A_B", "Alpha", "_private", "beta"]
    assert sorted(names, key=isort_key) == [
        "A_B",
        "MAX",
        "Alpha",
        "Queue2",
        "Queue10",
        "_private",
        "beta",
        "run",
    ]


def test_walk_found_the_tree() -> None:
    for expected in ("contracts.envelope", "workers.outcome", "workers.broker.memory"):
        assert expected in MODULES
    assert any(name.startswith("workers.vendors.pbsm.") for name in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_exists(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert isinstance(exported, list | tuple)
    assert list(exported) == sorted(exported, key=isort_key), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names missing attributes"
