"""The shipped Grafana dashboards: well-formed, laid out on the grid, every query valid PromQL that
names only metrics the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.conftest import require
from tests.monitoring.exported import all_exported, metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "monitoring" / "grafana").glob("*.json"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def test_there_is_a_site_and_a_fleet_dashboard() -> None:
    assert {p.stem for p in DASHBOARDS} == {"kitctl-site", "kitctl-fleet"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path: Path) -> None:
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["uid"] == path.stem and d["title"] and isinstance(d["schemaVersion"], int)
    ids = [p["id"] for p in _panels(d)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"] for v in d["templating"]["list"]}
    assert "datasource" in variables
    for panel in _panels(d):
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")) and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']} uses undefined variables {used - variables}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_names_exported_metrics(path: Path) -> None:
    d = json.loads(path.read_text(encoding="utf-8"))
    exported = all_exported()
    queries = _exprs(d) + [re.sub(r"label_values\((\w+),.*", r"\1", v["definition"])
                           for v in d["templating"]["list"] if v["type"] == "query"]
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {names - exported}, which no registry exports"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (variables filled in) as a recording rule's expression."""
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool is not installed")
    rules = []
    for path in DASHBOARDS:
        for i, expr in enumerate(_exprs(json.loads(path.read_text(encoding="utf-8")))):
            filled = expr.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$storefront", ".*")
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{i}", "expr": filled})
    (tmp_path / "exprs.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run = subprocess.run([promtool, "check", "rules", "exprs.yml"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_check_catches_a_metric_nobody_exports() -> None:
    assert not metric_names("rate(kitagent_no_such_metric_total[5m])") <= all_exported()
