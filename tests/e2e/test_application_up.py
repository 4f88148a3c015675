"""Issue 20 end to end: an application driven through HQ's pages in Chromium to its licence, then the install
command from the approval mail launches the site with `kitctl up` on the real engine, against that HQ.

The pages run on an in-process HQ over the HQ directory the stack's HQ container then serves (its public URL
is the container's, so the mailed licence points the site's agent at it).
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

from tests.conftest import require
from tests.hq.applications_flow import apply_and_get_licensed, command_args
from tests.monitoring.receivers import smtp_server
from tests.support.browser import CHROMIUM, chromium
from tests.support.kit_stack import SERVICES, SKU, engine_with_kit_images, new_stack, remove_stack, start_hq
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_the_mailed_install_command_launches_the_site(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kitcore import __version__

    require(CHROMIUM.exists(), "Debian chromium is not installed")
    s = new_stack(tmp_path, "ap", engine_with_kit_images())
    try:
        for service in SERVICES:
            s.client.images.get(f"kitctl/{service}:{__version__}").tag(f"kitctl/{service}", s.tag)
        s.client.networks.create(s.network, driver="bridge", labels={"com.kitctl.test": s.site_id})
        command = _licensed(s)
        for p in [s.root / "hq", *(s.root / "hq").rglob("*")]:
            if os.geteuid() == 0:
                os.lchown(p, 10001, 10001)  # the HQ image runs as uid 10001
        start_hq(s)
        args = command_args(command)
        args[args.index("--hq-keys") + 1] = str(s.root / "hq-keys.json")  # where step 1 of the mail put them
        s.kitctl("up", *args, "--tls", "off", "--http-port", str(s.http_port), "--metrics-port", str(s.metrics_port),
                 "--hq-network", s.network, "--image-tag", s.tag)
        eventually(lambda: httpx.get(f"{s.base}/p/{SKU}", timeout=3).status_code == 200, 120, what="catalog synced")
        assert "星辰网络 E2E" in httpx.get(f"{s.base}/", timeout=5).text
    finally:
        remove_stack(s)


def _licensed(s) -> str:  # type: ignore[no-untyped-def]
    from demo import catalog
    from hq import catalog_csv, inventory
    from hq.risk import parse_rules
    from hq.testing import running_hq
    from tests.agent.helpers import OPEN_RULES

    with smtp_server() as (box, port), running_hq(
            s.root, smtp_host="127.0.0.1", smtp_port=port, registry_url=None, heartbeat_interval_seconds=5,
            public_url=f"http://{s.hq_name}:8600") as hq, chromium() as browser:
        catalog_csv.import_items(hq.service, "test", catalog.items_csv())
        inventory.import_csv(hq.service, "test", catalog.card_keys_csv(per_sku=20))
        hq.service.rules.save(parse_rules(OPEN_RULES))
        (s.root / "hq-keys.json").write_text(json.dumps(hq.service.keys.jwks()))
        return apply_and_get_licensed(browser, hq, box, s.root / "files", s.site_id)
