"""A real Prometheus (Debian's) scrapes the agent, the storefront and HQ with the shipped rules loaded;
stopping the site's database fires KitDatabaseDown (asserted through Prometheus's API); starting it
again resolves the alert.

No Docker engine (local processes and a PostgreSQL cluster of its own): not an `_e2e.py` file, so `make test`
runs it beside the engine tests rather than on their worker."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from hq.testing import free_port, running_hq
from tests.agent.helpers import AgentProcess, make_site_dir, wait_until
from tests.conftest import require
from tests.support.prometheus import alerts, prometheus_running, wait_for_series

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "kitctl-rules.yml"


def _config(agent: str, shop: str, hq: str) -> str:
    return f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [kitctl-rules.yml]
scrape_configs:
  - job_name: kitagent
    static_configs: [{{targets: ['{agent}']}}]
  - job_name: kitshop
    static_configs: [{{targets: ['{shop}']}}]
  - job_name: kithq
    authorization: {{credentials_file: hq-token}}
    static_configs: [{{targets: ['{hq}']}}]
"""


def _state(base: str, name: str) -> str | None:
    found = [a["state"] for a in alerts(base) if a["labels"]["alertname"] == name]
    return found[0] if found else None


def test_prometheus_scrapes_every_part_and_a_stopped_database_fires_then_resolves(tmp_path: Path) -> None:
    from tests.agent.pgcluster import RestartablePostgres
    from tests.storefront.support import running_storefront, seed, write_site_files
    from tests.support.postgres import create_database

    require(shutil.which("prometheus") is not None, "Debian's prometheus is not installed")
    pg = RestartablePostgres()
    agent = None
    try:
        pg.start()
        agent_db, shop_db = create_database(pg.admin_url), create_database(pg.admin_url)
        seed(shop_db)
        with running_hq(tmp_path, site_rate_per_second=1000, site_rate_burst=1000) as hq:
            site = make_site_dir(tmp_path, hq, agent_db, site_id="prom-e2e")
            agent = AgentProcess(site, tmp_path / "agent.log", stack_probes="").start()
            shop_metrics = free_port()
            env = write_site_files(tmp_path / "shop")
            env["KIT_METRICS_BIND"] = f"127.0.0.1:{shop_metrics}"
            with running_storefront(shop_db, env, tmp_path / "storefront.log"):
                token = hq.metrics_headers()["Authorization"].split()[1]
                config = _config(f"127.0.0.1:{agent.port}", f"127.0.0.1:{shop_metrics}", hq.url.split("//")[1])
                with prometheus_running(config, {"kitctl-rules.yml": RULES.read_text(), "hq-token": token}) as prom:
                    for job in ("kitagent", "kitshop", "kithq"):
                        wait_for_series(prom, f'up{{job="{job}"}} == 1', timeout=60)
                    wait_for_series(prom, "kitagent_db_up == 1")
                    wait_for_series(prom, 'kithq_sites{state="active"} == 1')
                    wait_for_series(prom, "kitshop_build_info")
                    assert _state(prom, "KitDatabaseDown") is None
                    pg.stop()
                    stopped = time.monotonic()
                    wait_until(lambda: _state(prom, "KitDatabaseDown") == "pending", 30, 0.5,
                               what="KitDatabaseDown pending")
                    wait_until(lambda: _state(prom, "KitDatabaseDown") == "firing", 120, 1,
                               what="KitDatabaseDown firing (for: 1m)")
                    fired_after = time.monotonic() - stopped
                    [firing] = [a for a in alerts(prom) if a["labels"]["alertname"] == "KitDatabaseDown"]
                    assert firing["labels"]["instance"] == f"127.0.0.1:{agent.port}"
                    assert firing["annotations"]["runbook_url"].endswith("#kitdatabasedown")
                    pg.start()
                    wait_until(lambda: _state(prom, "KitDatabaseDown") is None, 60, 0.5,
                               what="KitDatabaseDown resolved after the database returned")
            print(f"KitDatabaseDown firing {fired_after:.0f} s after the database stopped (for: 1m)")
    finally:
        if agent and agent.proc and agent.proc.poll() is None:
            agent.kill()
        pg.destroy()
