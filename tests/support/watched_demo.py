"""One demo with monitoring, shared by the e2e modules that need a second running site (session scope).

HQ runs in a container with fast fleet alerts (heartbeat every 2 s, silent after 3 missed, checked every
second) and a webhook receiver on HQ's network; the site is deployed by `kitctl up --with-monitoring`.
The monitoring tests stop and start its services; the isolation test checks that another demo's whole
life leaves it untouched. Sharing it saves a full stack launch (about 1.5 minutes) per user.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest

from tests.conftest import require
from tests.support.postgres import free_port

HEARTBEAT, MISSED, CHECK = 2, 3, 1  # HQ: heartbeat every 2 s, silent after 3 missed, looks every second
WINDOW = HEARTBEAT * MISSED + CHECK + 10  # the webhook must have the alert within this (10 s slack for load)
# A webhook receiver in a container on HQ's network (the engine has no route from containers to the host).
RECEIVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
got = []
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        body = json.dumps(got).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


@pytest.fixture(scope="session")
def watched(tmp_path_factory) -> Iterator[Any]:
    import docker

    from demo.stack import DEMO_LABEL, Demo, demo_down, services
    from tests.support.demo_stack import demo_up_with_run_images

    try:
        services("start", "all")
    except Exception as exc:  # noqa: BLE001
        require(False, f"services did not start: {exc}")
    suffix = uuid.uuid4().hex[:6]
    hook = f"kitctl-e2e-hook-{suffix}"
    d = Demo(root=tmp_path_factory.mktemp("watched"), site_id=f"watched-{suffix}", network=f"kitctl-e2e-{suffix}",
             hq_container=f"kitctl-e2e-hq-{suffix}", hq_port=free_port(), http_port=free_port(),
             https_port=free_port(), metrics_port=free_port(), heartbeat_seconds=HEARTBEAT, monitoring=True,
             prometheus_port=free_port(), alertmanager_port=free_port(),
             registry=f"127.0.0.1:{free_port()}",  # its own registry: never the demo's or the shared one
             hq_env=(("KIT_HQ_ALERT_WEBHOOK_URL", f"http://{hook}:8080/alerts"),
                     ("KIT_HQ_SILENT_HEARTBEATS", str(MISSED)), ("KIT_HQ_ALERT_CHECK_SECONDS", str(CHECK))))
    client = docker.from_env()
    hook_port = free_port()
    try:
        client.networks.create(d.network, driver="bridge", labels={DEMO_LABEL: d.instance})
        client.containers.run("kitctl/base:bookworm", ["python3", "-c", RECEIVER], name=hook, detach=True,
                              network=d.network, ports={"8080/tcp": ("127.0.0.1", hook_port)},
                              labels={DEMO_LABEL: d.instance})
        demo_up_with_run_images(d)
        yield d, client, f"http://127.0.0.1:{hook_port}"
    finally:
        demo_down(d)  # removes the receiver too (it carries this demo's label), and the network
        client.close()
