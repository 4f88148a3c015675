"""The demo takes money the way a shop does: HQ's epay gateway, pointed at the epay sandbox in a container.

The sandbox (hq.payments.sandbox_serve, in HQ's image) sits on the demo's
network: HQ calls its API by container name, it notifies HQ by container name,
and payers open its cashier on a loopback port (epay's `submit_url`). The
merchant's pid and key are made once, kept mode 0600 beside the demo's other
secrets and handed to both ends; never printed.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from demo.stack import DEMO_LABEL, HQ_UID, Demo, _chown_tree, open_hq, say, wait_http
from kitcore import __version__
from kitcore.licence.keys import write_private

if TYPE_CHECKING:
    from pathlib import Path

    import docker

SANDBOX_PORT = 8610  # inside its container (hq.payments.sandbox_serve.PORT)
PID = "1001"


def merchant_file(demo: Demo) -> "Path":
    """The sandbox merchant's pid and key, made once (the directory is mounted into the sandbox read-only)."""
    path = demo.root / "pay-sandbox" / "merchant.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, json.dumps({"pid": PID, "key": secrets.token_hex(16)}).encode())
        _chown_tree(path.parent, HQ_UID)  # the sandbox runs as the kit's user
    return path


def credentials(demo: Demo) -> dict[str, str]:
    """HQ's epay credentials for the sandbox: its API by container name, its cashier on the loopback port."""
    merchant = json.loads(merchant_file(demo).read_text())
    return {"api_url": f"http://{demo.pay_container}:{SANDBOX_PORT}/", "submit_url": f"http://127.0.0.1:{demo.pay_port}/",
            "pid": merchant["pid"], "key": merchant["key"], "type": "alipay"}


def start_sandbox(client: "docker.DockerClient", demo: Demo) -> None:
    import docker

    image = f"kitctl/hq:{__version__}"
    try:
        existing = client.containers.get(demo.pay_container)
        if existing.status == "running" and existing.image.id == client.images.get(image).id:
            return
        existing.remove(force=True, v=True)  # with the anonymous volume the HQ image declares
    except docker.errors.NotFound:
        pass
    folder = merchant_file(demo).parent
    client.containers.run(
        image, ["python", "-m", "hq.payments.sandbox_serve", "--merchant", "/run/pay-sandbox/merchant.json"],
        name=demo.pay_container, detach=True, network=demo.network,
        ports={f"{SANDBOX_PORT}/tcp": ("127.0.0.1", demo.pay_port)},
        volumes={str(folder.resolve()): {"bind": "/run/pay-sandbox", "mode": "ro"}},
        tmpfs={"/var/lib/kit/hq": ""},  # the sandbox keeps no state: no anonymous volume for the HQ image's VOLUME
        labels={DEMO_LABEL: demo.instance}, restart_policy={"Name": "unless-stopped"})
    wait_http(f"http://127.0.0.1:{demo.pay_port}/api.php", 60)  # answers 200 "KEY校验失败" without a key


def enable_payments(client: "docker.DockerClient", demo: Demo) -> None:
    """Start the sandbox and make epay, pointed at it, HQ's enabled gateway (again on every `make demo`)."""
    from hq.payments import config

    say(f"payments: epay sandbox on http://127.0.0.1:{demo.pay_port}/, HQ's gateway")
    start_sandbox(client, demo)
    hq = open_hq(demo)
    try:
        config.configure(hq, "demo", "epay", credentials(demo))
    finally:
        hq.close()
    _chown_tree(demo.hq_dir, HQ_UID)


def disable_payments(demo: Demo) -> None:
    """Back to the test mode (HQ's approval settles an order); the sandbox keeps running until `demo down`."""
    from hq.payments import config

    hq = open_hq(demo)
    try:
        config.disable(hq, "demo", "epay")
    finally:
        hq.close()
