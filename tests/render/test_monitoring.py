"""`--with-monitoring`: Prometheus and Alertmanager rendered beside the site, loopback only, the shipped rules
loaded, the choice recorded in kitctl.lock like every other input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kitcore.errors import InvalidInput
from kitctl.render import load_compose, render_site
from kitctl.render.escape import RenderError
from kitctl.render.structure import check_structure

ROOT = Path(__file__).resolve().parents[2]


def _watched(flags: dict, **extra: object) -> dict:
    return {**flags, "monitoring": True, "prometheus_port": 19090, "alertmanager_port": 19093, **extra}


def test_without_the_flag_the_stack_has_no_monitoring(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    assert set(load_compose(site)["services"]) == {"proxy", "storefront", "agent", "db"}
    assert not (site / "monitoring").exists()
    assert json.loads((site / "kitctl.lock").read_text())["inputs"]["monitoring"] is False


def test_with_monitoring_prometheus_and_alertmanager_run_beside_the_site(flags):
    render_site(_watched(flags, bind_address="0.0.0.0"))
    site = Path(flags["site_dir"])
    doc = load_compose(site)
    prom, am = doc["services"]["prometheus"], doc["services"]["alertmanager"]
    assert prom["image"].endswith("kitctl/prometheus:0.1.0") and am["image"].endswith("kitctl/alertmanager:0.1.0")
    assert prom["ports"] == ["127.0.0.1:19090:9090"]  # loopback whatever --bind-address says
    assert am["ports"] == ["127.0.0.1:19093:9093"]
    assert am["read_only"] is True and prom["cap_drop"] == am["cap_drop"] == ["ALL"]
    assert "prometheus-data" in doc["volumes"]
    assert (site / "monitoring" / "kitctl-rules.yml").read_bytes() == (
        ROOT / "monitoring" / "prometheus" / "kitctl-rules.yml").read_bytes()
    config = yaml.safe_load((site / "monitoring" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"kitagent": ["agent:9464"], "kitshop": ["storefront:9465"]}
    assert config["rule_files"] == ["/etc/prometheus/kitctl-rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "authorization" not in config["scrape_configs"][0] and prom["secrets"] == []
    lock = json.loads((site / "kitctl.lock").read_text())
    assert lock["inputs"]["monitoring"] is True and lock["inputs"]["prometheus_port"] == 19090
    assert {"prometheus", "alertmanager"} <= set(lock["services"])


def test_an_agent_metrics_token_reaches_prometheus_as_a_secret(flags):
    render_site(_watched(flags, metrics_bind_address="0.0.0.0"))
    doc = load_compose(flags["site_dir"])
    config = yaml.safe_load((Path(flags["site_dir"]) / "monitoring" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["authorization"] == {"credentials_file": "/run/secrets/agent_token"}
    assert doc["services"]["prometheus"]["secrets"] == ["agent_token"]


def test_the_rendered_files_pass_promtool_and_amtool(flags):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is not installed"
    render_site(_watched(flags))
    site = Path(flags["site_dir"]) / "monitoring"
    # promtool resolves rule_files as written: point them at the rendered copy
    config = yaml.safe_load((site / "prometheus.yml").read_text())
    config["rule_files"] = [str(site / "kitctl-rules.yml")]
    (site.parent / "prom-check.yml").write_text(yaml.safe_dump(config))
    run = subprocess.run([promtool, "check", "config", str(site.parent / "prom-check.yml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "17 rules found" in run.stdout
    amtool = shutil.which("amtool")
    if amtool:  # Debian's prometheus-alertmanager
        run = subprocess.run([amtool, "check-config", str(site / "alertmanager.yml")], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr


def test_monitoring_ports_must_differ_from_the_sites(flags):
    with pytest.raises(InvalidInput, match="ports must differ"):
        render_site(_watched(flags, prometheus_port=flags["http_port"]))
    render_site({**flags, "prometheus_port": flags["http_port"]})  # unused without monitoring: no clash


def test_the_structure_check_refuses_a_published_prometheus_or_half_of_the_pair(flags):
    render_site(_watched(flags))
    doc = load_compose(flags["site_dir"])
    wide = json.loads(json.dumps(doc))
    wide["services"]["prometheus"]["ports"] = ["0.0.0.0:19090:9090"]
    with pytest.raises(RenderError, match="127.0.0.1 only"):
        check_structure(wide)
    half = json.loads(json.dumps(doc))
    del half["services"]["alertmanager"]
    with pytest.raises(RenderError, match="needs both"):
        check_structure(half)
    check_structure(doc)


def test_kitctl_deploys_what_it_renders(flags):
    from kitctl.deploy.compose import load_project

    render_site(_watched(flags))
    site = Path(flags["site_dir"])
    project = load_project(site / "compose.yaml")
    prom = project.services["prometheus"]
    assert [(p.host_ip, p.host_port, p.container_port) for p in prom.ports] == [("127.0.0.1", 19090, 9090)]
    assert {m.target for m in prom.mounts} == {"/etc/prometheus/prometheus.yml", "/etc/prometheus/kitctl-rules.yml",
                                               "/prometheus"}
    assert project.services["alertmanager"].read_only and set(project.services) >= {"prometheus", "alertmanager"}


def test_a_render_from_the_recorded_inputs_keeps_monitoring(flags):
    from kitctl.render.api import rerender_site

    render_site(_watched(flags))
    rerender_site(Path(flags["site_dir"]))
    assert {"prometheus", "alertmanager"} <= set(load_compose(flags["site_dir"])["services"])
    render_site({**_watched(flags), "monitoring": False})
    assert "prometheus" not in load_compose(flags["site_dir"])["services"]
    assert not (Path(flags["site_dir"]) / "monitoring").exists()


def test_the_cli_flag_turns_it_on(flags, capsys):
    from kitctl.cli import run

    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    assert run(["render", *args, "--with-monitoring", "--prometheus-port", "19090"]) == 0
    assert load_compose(flags["site_dir"])["services"]["prometheus"]["ports"] == ["127.0.0.1:19090:9090"]


def test_a_second_render_with_monitoring_touches_nothing(flags):
    from .conftest import snapshot

    render_site(_watched(flags))
    before = snapshot(Path(flags["site_dir"]))
    assert not render_site(_watched(flags)).changed
    assert snapshot(Path(flags["site_dir"])) == before
