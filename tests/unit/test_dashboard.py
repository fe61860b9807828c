"""The Grafana dashboard (deploy/grafana/flowgate.json) reads only metrics flowgate exports:
every PromQL expression in it parses, and every metric it queries is in `workers.metrics`'s
registry under the name Prometheus gives it (`_total` for a counter, `_bucket`, `_sum` or
`_count` for a histogram, the bare name for a gauge); `rate` and `increase` only read counters
and histograms, `histogram_quantile` only buckets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest

from workers.metrics import Metrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "flowgate.json"

# What Grafana puts in place of its variables before the query reaches Prometheus.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$command_type": ".*",
    "$vendor": ".*",
}
_LABEL_VALUES = re.compile(r"label_values\((\w+),\s*\w+\)")


def _exported() -> dict[str, str]:
    """Every sample name the registry exposes, with its metric's type."""
    names: dict[str, str] = {}
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",),
        }[family.type]
        for suffix in suffixes:
            names[family.name + suffix] = family.type
    return names


EXPORTED = _exported()


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _grafana_to_promql(expr: str) -> str:
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def _metric(selector: promql.VectorSelector) -> str:
    if selector.name:
        return str(selector.name)
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__":
            return str(matcher.value)
    raise AssertionError(f"a selector without a metric name: {selector}")


def _read(expr: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The metrics an expression reads, and (function, metrics under it) for each call."""
    tree = promql.parse(_grafana_to_promql(expr))
    metrics: list[str] = []
    calls: list[tuple[str, list[str]]] = []

    def visit(node: promql.Expr) -> bool:
        if isinstance(node, promql.VectorSelector):
            metrics.append(_metric(node))
        elif isinstance(node, promql.Call):
            under: list[str] = []

            def inner(child: promql.Expr) -> bool:
                if isinstance(child, promql.VectorSelector):
                    under.append(_metric(child))
                return True

            for arg in node.args:
                promql.walk(arg, inner)
            calls.append((node.func.name, under))
        return True

    promql.walk(tree, visit)
    return metrics, calls


def test_the_dashboard_has_panels_with_queries() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "flowgate" and dashboard["title"] == "flowgate"
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len(panels) >= 12
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize(("title", "expr"), _expressions(), ids=lambda v: str(v)[:60])
def test_every_query_parses_and_reads_exported_metrics(title: str, expr: str) -> None:
    metrics, calls = _read(expr)
    assert metrics, f"{title}: reads no metric"
    for metric in metrics:
        assert metric in EXPORTED, f"{title}: {metric} is not exported (see workers/metrics.py)"
    for function, under in calls:
        for metric in under:
            if function in ("rate", "increase", "irate"):
                assert EXPORTED[metric] != "gauge", f"{title}: {function} of the gauge {metric}"
            if function == "histogram_quantile":
                assert metric.endswith("_bucket"), f"{title}: a quantile of {metric}"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    read = {m for _, expr in _expressions() for m in _read(expr)[0]}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in read}
    exported = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in EXPORTED}
    assert families == exported


def test_the_variables_query_exported_metrics() -> None:
    variables = _dashboard()["templating"]["list"]
    queries = [v for v in variables if v["type"] == "query"]
    assert {v["name"] for v in queries} == {"command_type", "vendor"}
    for variable in queries:
        found = _LABEL_VALUES.fullmatch(variable["query"]["query"])
        assert found is not None, variable["query"]
        assert found.group(1) in EXPORTED
