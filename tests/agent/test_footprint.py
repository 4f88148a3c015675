"""The agent never loads SQLAlchemy's ORM (about 6 MB of its idle RSS): Core tables only.

Checked twice: a fresh interpreter importing every agent module, and a real `python -m agent`
that started, synced, forwarded orders and beat with a plugin host loaded, then was asked
(from inside, by a watcher thread of the harness) which modules it holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.agent.helpers import (ROOT, AgentProcess, make_site_dir, metric_value, migrated_engine, order_counts,
                                 sqlite_url, wait_until, write_orders)

ORM_MODULES = "sorted(m for m in sys.modules if m == 'sqlalchemy.orm' or m.startswith('sqlalchemy.orm.'))"
AGENT_MODULES = ["agent.__main__", "agent.runner", "agent.sync", "agent.catalog_write", "agent.outbox",
                 "agent.decisions", "agent.commands", "agent.heartbeat", "agent.licence", "agent.state",
                 "agent.stats", "agent.plugin_events", "sitedb.engine", "sitedb.tables", "plugins.host"]

# `python -m agent` run by runpy (exactly what -m does), plus a watcher thread: when the test
# creates the trigger file, it writes the ORM modules loaded so far and sends SIGTERM.
HARNESS = f"""
import json, os, runpy, signal, sys, threading, time
trigger, out = sys.argv[1], sys.argv[2]
def watch():
    while not os.path.exists(trigger):
        time.sleep(0.05)
    with open(out, "w") as f:
        json.dump({ORM_MODULES}, f)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["agent"]
runpy.run_module("agent", run_name="__main__", alter_sys=True)
"""


def _orm_after(imports: list[str]) -> list[str]:
    """The ORM modules a fresh interpreter holds after importing `imports`."""
    code = f"import sys; {'; '.join(f'import {m}' for m in imports)}; print(__import__('json').dumps({ORM_MODULES}))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_importing_the_agent_loads_no_orm() -> None:
    assert _orm_after(AGENT_MODULES) == []
    assert "sqlalchemy.orm" in _orm_after(["sitedb.models"])  # the check can fail: the storefront's classes do


def test_a_running_agent_loads_no_orm(tmp_path: Path, hq, site_id: str) -> None:  # type: ignore[no-untyped-def]
    site = make_site_dir(tmp_path, hq, sqlite_url(tmp_path), site_id=site_id)  # tier pro: plugins with agent hooks
    hq.seed_item(f"f-{site_id}", category="game", price_cents=1000, stock_kind="direct_topup")
    trigger, out = tmp_path / "report-now", tmp_path / "orm-modules.json"
    agent = AgentProcess(site, tmp_path / "agent.log", argv=[sys.executable, "-c", HARNESS, str(trigger), str(out)])
    agent.start()
    try:
        engine = migrated_engine(site.db_url)
        write_orders(engine, 3, f"f-{site_id}")
        wait_until(lambda: order_counts(engine) == {"delivered": 3}, 30, what="orders decided")
        wait_until(lambda: metric_value(agent.metrics_text(), "kitagent_catalog_items") == 1, 15,
                   what="catalog synced")
        wait_until(lambda: metric_value(agent.metrics_text(), "kitagent_heartbeat_last_success_timestamp_seconds"),
                   15, what="a heartbeat")
        engine.dispose()
        trigger.touch()
        assert agent.proc is not None and agent.proc.wait(30) == 0, agent.log_tail()
    finally:
        agent.terminate()
    loaded = [line.get("plugins") for line in agent.log_lines() if line.get("msg") == "plugin host loaded"]
    assert loaded and loaded[0], f"the plugin host was not exercised: {loaded}"
    assert json.loads(out.read_text()) == []
