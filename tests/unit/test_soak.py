"""The soak's verdict: a figure passes when the median of the last five minutes is within 10 %
(plus a small absolute slack) of the median of the five minutes after the warm-up."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.model import ChaosConfig
from tests.chaos.procs import process_env
from tests.soak import _write, judge


def _samples(rss: float, growth_per_min: float) -> list[dict[str, float]]:
    rows = []
    for step in range(0, 30 * 6):  # 30 minutes, every 10 s
        t = step * 10.0
        rows.append(
            {
                "t": t,
                "rss_mb.worker-0": rss + growth_per_min * t / 60,
                "rss_mb.poller-1": rss,
                "fds.worker-0": 40,
                "fds.poller-1": 30,
                "redis_used_mb": 3.0,
                "queued": 12.0,
            }
        )
    return rows


def test_flat_figures_pass() -> None:
    figures = {f.name: f for f in judge(_samples(100.0, 0.0))}
    assert set(figures) == {"rss_mb.all", "fds.all", "redis_used_mb", "queued"}
    assert all(f.ok for f in figures.values())
    assert figures["rss_mb.all"].baseline == 200.0


def test_a_leak_fails() -> None:
    # 2 MB a minute on one of two 100 MB processes: ~40 MB more by the end, over 10 % + 5 MB.
    figures = {f.name: f for f in judge(_samples(100.0, 2.0))}
    assert not figures["rss_mb.all"].ok
    assert figures["fds.all"].ok


def test_no_samples_judge_nothing() -> None:
    assert judge([]) == []


def test_it_writes_the_csv_and_the_plot(tmp_path: Path) -> None:
    _write(_samples(100.0, 0.5), tmp_path)
    assert (tmp_path / "soak.csv").read_text().startswith("t,")
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_process_gets_the_runs_retention_and_flowgates_default_otherwise() -> None:
    env = process_env(ChaosConfig(retention=240.0), "amqp://x/", "p:", "http://127.0.0.1:1")
    assert env["FLOWGATE_IDEMPOTENCY__RETENTION"] == "240.0"
    default = process_env(ChaosConfig(), "amqp://x/", "p:", "http://127.0.0.1:1")
    assert "FLOWGATE_IDEMPOTENCY__RETENTION" not in default
