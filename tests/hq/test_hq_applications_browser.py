"""An application in headless Chromium: apply with materials (a disguised script refused) → rejected by an
operator with a reason → resubmitted → each stage on the fleet page → licence issued → the mailed install
command's licence renders a site (`kitctl render`; tests/e2e/test_application_up.py launches one)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require
from tests.hq.applications_flow import apply_and_get_licensed, command_args
from tests.hq.helpers import http
from tests.monitoring.receivers import smtp_server
from tests.support.browser import CHROMIUM, chromium

pytestmark = [pytest.mark.browser]


def test_apply_reject_resubmit_approve_and_render_the_mailed_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hq.testing import running_hq
    from kitctl.cli import run

    require(CHROMIUM.exists(), "Debian chromium is not installed")
    with smtp_server() as (box, port), running_hq(tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                                                  registry_url=None) as hq, chromium() as browser:
        hq.seed_item("game-100", category="game")
        command = apply_and_get_licensed(browser, hq, box, tmp_path / "files", "xingchen-e2e")
        (tmp_path / "hq-keys.json").write_text(json.dumps(http.get(f"{hq.url}/v1/keys").json()))
    site_dir = tmp_path / "site"
    args = command_args(command)
    assert args[args.index("--domain") + 1] == "localhost" and args[args.index("--name") + 1] == "星辰网络 E2E"
    keys = args.index("--hq-keys") + 1
    args[keys] = str(tmp_path / "hq-keys.json")  # step 1 of the mail fetched them here
    assert run(["render", *args, "--site-dir", str(site_dir), "--tls", "off"]) == 0
    assert (site_dir / "compose.yaml").is_file() and "xingchen-e2e" in (site_dir / "compose.yaml").read_text()
