"""Alipay and WeChat Pay sandboxes in containers of their own beside the demo's HQ (issue 16; the e2e tests use them).

HQ takes an Alipay or WeChat Pay gateway only over HTTPS or on loopback
(hq.payments.alipay / wechat refuse anything else), so each sandbox container
shares the network namespace of HQ's container: HQ calls it at
`http://127.0.0.1:PORT`, it notifies HQ at HQ's own name, and a payer's press
of "pay" is sent from inside the sandbox's container (it has no port on the
host). Its keys are made here, on the operator's side: HQ gets the
credentials (`config.configure`, which enables the gateway), the sandbox the
other halves in a state file (mode 0600, the sandbox's own `state()`), so
HQ's real verification code checks what the sandbox signs. Never printed.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from demo.payments import merchant_file
from demo.stack import DEMO_LABEL, HQ_UID, Demo, _chown_tree, open_hq
from kitcore import __version__
from kitcore.errors import KitError
from kitcore.licence.keys import write_private
from kitctl.deploy.engine_exec import run_in

if TYPE_CHECKING:
    import docker

PORTS = {"alipay": 8611, "wechat": 8612}  # inside HQ's network namespace (HQ itself listens on 8600)
PROBE = ("import sys, urllib.request, urllib.error\n"
         "try:\n    urllib.request.urlopen(sys.argv[1], timeout=2)\nexcept urllib.error.HTTPError:\n    pass\n")
PAY = "import sys, httpx\nprint(httpx.post(sys.argv[1], timeout=10).status_code)\n"


def container_name(demo: Demo, gateway: str) -> str:
    return f"{demo.pay_container}-{gateway}"


def _made_sandbox(gateway: str) -> tuple[Any, dict[str, str]]:
    """A sandbox of `gateway` made here, its links on its loopback port, and the credentials HQ is to hold."""
    from hq.payments.sandbox_alipay import AlipaySandbox
    from hq.payments.sandbox_wechat import WechatSandbox

    if gateway not in PORTS:
        raise KitError(f"no container sandbox for {gateway!r}: one of {', '.join(PORTS)}")
    box = AlipaySandbox() if gateway == "alipay" else WechatSandbox()
    box.url = f"http://127.0.0.1:{PORTS[gateway]}/"
    return box, (box.add_app() if gateway == "alipay" else box.add_merchant())


def start_remote_sandbox(client: "docker.DockerClient", demo: Demo, gateway: str) -> None:
    """Run `gateway`'s sandbox in HQ's network namespace and make it HQ's enabled gateway."""
    from hq.payments import config

    box, credentials = _made_sandbox(gateway)
    folder = merchant_file(demo).parent
    state = folder / f"{gateway}-state.json"
    write_private(state, json.dumps(box.state()).encode())
    _chown_tree(folder, HQ_UID)  # the sandbox runs as the kit's user
    stop_container(client, demo, gateway)
    container = client.containers.run(
        f"kitctl/hq:{__version__}",
        ["python", "-m", "hq.payments.sandbox_serve", "--state", f"/run/pay-sandbox/{state.name}",
         "--host", "127.0.0.1", "--port", str(PORTS[gateway]), "--url", box.url],
        name=container_name(demo, gateway), detach=True, network_mode=f"container:{demo.hq_container}",
        volumes={str(folder.resolve()): {"bind": "/run/pay-sandbox", "mode": "ro"}},
        tmpfs={"/var/lib/kit/hq": ""}, labels={DEMO_LABEL: demo.instance})
    _wait_inside(container, box.url, 60)
    hq = open_hq(demo)
    try:
        config.configure(hq, "demo", gateway, credentials)
    finally:
        hq.close()
    _chown_tree(demo.hq_dir, HQ_UID)


def _wait_inside(container: Any, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_in(container, ["python", "-c", PROBE, url]).exit_code == 0:
            return
        time.sleep(0.5)
    raise KitError(f"the sandbox in {container.name} did not answer within {timeout:.0f} s")


def pay_inside(client: "docker.DockerClient", demo: Demo, gateway: str, pay_url: str) -> int:
    """The payer presses "pay" at `pay_url` (the sandbox's page behind the QR code); the sandbox's HTTP status."""
    got = run_in(client.containers.get(container_name(demo, gateway)), ["python", "-c", PAY, pay_url])
    if got.exit_code != 0:
        raise KitError(f"paying at the {gateway} sandbox failed: {got.output.decode(errors='replace')[-300:]}")
    return int(got.stdout.decode().split()[-1])


def stop_remote_sandbox(client: "docker.DockerClient", demo: Demo, gateway: str) -> None:
    """HQ back to the test mode for `gateway`; its sandbox container gone."""
    from hq.payments import config

    hq = open_hq(demo)
    try:
        config.disable(hq, "demo", gateway)
    finally:
        hq.close()
    _chown_tree(demo.hq_dir, HQ_UID)
    stop_container(client, demo, gateway)


def stop_container(client: "docker.DockerClient", demo: Demo, gateway: str) -> None:
    import docker

    try:
        client.containers.get(container_name(demo, gateway)).remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
