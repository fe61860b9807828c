"""The CI variant of the chaos run (N=2000): `pytest -m chaos` (see tests/chaos/conftest.py)."""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import ChaosConfig, run_chaos


@pytest.mark.chaos
@pytest.mark.timeout(900)
async def test_chaos_ci_variant(capsys: pytest.CaptureFixture[str]) -> None:
    config = ChaosConfig(
        n=int(os.environ.get("FLOWGATE_CHAOS_N", "2000")),
        seed=int(os.environ.get("FLOWGATE_CHAOS_SEED", "1")),
        rate=25.0,  # publishing spans ~80 s, so kills and the restart land mid-stream
        timeout=300.0,
    )
    result = await run_chaos(config)
    with capsys.disabled():
        print(f"\n{result.summary()}")
    assert result.ok, f"{result.summary()}\n{result.details()}"
    assert not result.wrong_outcome, result.details()
    assert result.published == config.n
    assert result.unexpected_events == 0
