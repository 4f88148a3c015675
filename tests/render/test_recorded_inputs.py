"""Changing one input needs only that flag (issue 14, bad case 2).

Every command that renders takes what the site directory recorded as the defaults of the inputs not given
again; `--reset NAME` takes one back to its built-in default; `plan` leads with a summary and shows diffs
only with `--diff`, never kitctl.lock's hashes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir
from kitctl.deploy.compose import load_project
from kitctl.render import plan_site, render_site
from tests.support.cli import kitctl


@pytest.fixture
def rendered(flags):
    render_site({**flags, "hq_network": "kit-hq-net"})
    return SiteDir(Path(flags["site_dir"]))


def published(site: SiteDir) -> list[str]:
    return [f"{p.host_ip}:{p.host_port}->{p.container_port}" for p in load_project(site.root).services["proxy"].ports]


def lock_inputs(site: SiteDir) -> dict:
    return json.loads(site.lock_file.read_text())["inputs"]


def test_one_flag_changes_that_input_and_nothing_else(rendered):
    before = lock_inputs(rendered)
    ports = published(rendered)
    render_site({"site_dir": str(rendered.root), "primary_colour": "#00AA00"})  # no --licence, --name, --domain …
    after = lock_inputs(rendered)
    assert {k for k in after if after[k] != before[k]} == {"primary_colour"}
    assert after["contact"] == "QQ 123456" and after["hq_network"] == "kit-hq-net"
    assert published(rendered) == ports and "8080" in ports[0]
    assert "kit-hq-net" in rendered.compose.read_text()
    assert json.loads(rendered.site_json.read_text())["logo"]  # the logo is kept too


def test_plan_with_one_flag_leads_with_a_summary(rendered):
    plan = plan_site({"site_dir": str(rendered.root), "primary_colour": "#00AA00"})
    assert set(plan.inputs) == {"primary_colour"} and plan.inputs["primary_colour"][1].lower() == "#00aa00"
    assert "db" in plan.acting("unchanged") and "storefront" in plan.acting("recreate")
    lock = [f for f in plan.files if f.path == rendered.lock_file.name]
    assert lock and lock[0].diff == ""  # named, never shown: it holds hashes


def test_reset_takes_an_input_back_to_its_default(rendered):
    render_site({"site_dir": str(rendered.root), "reset": ["http-port"]})
    inputs = lock_inputs(rendered)
    assert inputs["http_port"] == 80 and inputs["https_port"] == 8443


def test_reset_of_an_unknown_or_required_input_is_one_line(rendered):
    for name in ("nonsense", "licence"):
        with pytest.raises(InvalidInput, match=f"--reset {name}"):
            plan_site({"site_dir": str(rendered.root), "reset": [name]})


def test_plan_cli_summary_first_diffs_only_when_asked(rendered):
    args = ["plan", "--site-dir", str(rendered.root), "--primary-color", "#00AA00"]
    plain = kitctl(*args).stdout
    assert plain.splitlines()[0].startswith("inputs changed: primary_colour")
    assert "services to recreate:" in plain and "files changed:" in plain and "@@" not in plain
    full = kitctl(*args, "--diff").stdout
    assert "@@" in full and "+" in full
    assert '"sha256' not in full and "inputs_sha256" not in full  # no lock hashes
