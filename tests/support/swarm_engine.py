"""A Docker engine of the test's own, in Swarm mode, in a network namespace of its own.

The shared engine must never become a Swarm manager (other tests and the demo use it), so the
Swarm tests start a second dockerd: its own data root, exec root, pid file and unix socket under a
temporary directory, its own containerd namespace, and its own network namespace joined to the host
by one veth pair with a /30 of its own. Inside the namespace dockerd runs with iptables (its rules
stay in the namespace), and host-mode published ports answer on the namespace's end of the veth.
`stop` removes exactly what `start` made: the daemon (by its pid), the namespace (and so the veth),
the mounts under the directory and the directory.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.registry import running  # an exited dockerd of ours is a zombie until reaped

KIT_SERVICES = ("db", "storefront", "agent", "proxy")  # the images a site needs
BASE_NET = ipaddress.ip_network("10.231.0.0/16")  # one /30 of it per engine, checked unused on the host first
NODES_NET = ipaddress.ip_network("10.232.0.0/16")  # one /24 per cluster: the manager's bridge, its workers' links


@dataclass
class SwarmEngine:
    ident: str
    root: Path
    host_addr: str  # the host's end of the veth
    addr: str  # the namespace's end: where the engine's published ports answer
    pid: int
    node_addr: str = "127.0.0.1"  # what Swarm advertises: on the cluster's bridge when workers may join
    workers: int = 0

    @property
    def socket(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.socket, timeout=120)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "-H", self.socket, *args], capture_output=True, text=True, check=check,
                              timeout=300)


def available() -> str | None:
    """Why a private engine cannot start here, or None."""
    if os.geteuid() != 0:
        return "starting a Docker engine needs root"
    for tool in ("dockerd", "docker", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def start(images: list[str], base: Path | None = None, cluster: bool = False) -> SwarmEngine:
    """A private engine in Swarm mode (a manager) with `images` copied from the shared engine.

    With `cluster`, its namespace also holds a bridge of its own with one address of a free /24, which
    Swarm advertises, so workers (`add_worker`) can join over veth links into that bridge.
    """
    ident = "ksw" + uuid.uuid4().hex[:7]
    root = Path(base or "/tmp") / ident
    root.mkdir(mode=0o700)
    host_addr, addr = _free_pair()
    _netns(ident, host_addr, addr)
    node_addr = _bridge(ident) if cluster else "127.0.0.1"
    proc = _dockerd(ident, root)
    engine = SwarmEngine(ident, root, host_addr, addr, proc.pid, node_addr)
    try:
        _wait_ping(engine, proc)
        engine.client().swarm.init(advertise_addr=node_addr, listen_addr=f"{node_addr}:2377")
        if images:
            _copy_images(engine, images)
    except BaseException:
        stop(engine)
        raise
    return engine


def add_worker(manager: SwarmEngine, images: list[str]) -> SwarmEngine:
    """A second engine in a namespace of its own, linked only to the manager's bridge (one veth pair,
    one address of the cluster's /24), joined to the swarm as a worker, with `images` copied in from the
    manager (the very images its services run)."""
    manager.workers += 1
    ident = "ksw" + uuid.uuid4().hex[:7]
    root = Path(manager.root.parent) / ident
    root.mkdir(mode=0o700)
    prefix = manager.node_addr.rsplit(".", 1)[0]
    addr = f"{prefix}.{1 + manager.workers}"
    for cmd in (["ip", "netns", "add", ident], ["ip", "-n", ident, "link", "set", "lo", "up"],
                ["ip", "-n", manager.ident, "link", "add", f"{ident}m", "type", "veth", "peer", "name", f"{ident}w",
                 "netns", ident],
                ["ip", "-n", manager.ident, "link", "set", f"{ident}m", "master", "kbr"],
                ["ip", "-n", manager.ident, "link", "set", f"{ident}m", "up"],
                ["ip", "-n", ident, "addr", "add", f"{addr}/24", "dev", f"{ident}w"],
                ["ip", "-n", ident, "link", "set", f"{ident}w", "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    proc = _dockerd(ident, root)
    worker = SwarmEngine(ident, root, "", addr, proc.pid, addr)
    try:
        _wait_ping(worker, proc)
        token = manager.client().swarm.attrs["JoinTokens"]["Worker"]
        worker.client().swarm.join([f"{manager.node_addr}:2377"], token, listen_addr=f"{addr}:2377",
                                   advertise_addr=addr)
        if images:
            _copy_images(worker, images, source=manager)
    except BaseException:
        stop(worker)
        raise
    return worker


def _dockerd(ident: str, root: Path) -> subprocess.Popen:
    log = open(root / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{ident}", "dockerd", "--data-root", str(root / "data"),
         "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{root / 'docker.sock'}",
         "--bridge=none", "--containerd-namespace", ident, "--containerd-plugins-namespace", f"{ident}-plugins"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


def stop(engine: SwarmEngine) -> None:
    """The daemon (its containers with it), then the namespace, the mounts and the directory it had."""
    try:
        os.killpg(engine.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    end = time.monotonic() + 60
    while running(engine.pid) and time.monotonic() < end:
        time.sleep(0.3)
    try:
        os.killpg(engine.pid, signal.SIGKILL)  # whatever of its group is left (its containerd)
        time.sleep(1)
    except ProcessLookupError:
        pass
    for mount in reversed(_mounts_under(engine.root)):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    subprocess.run(["ip", "netns", "del", engine.ident], check=False, capture_output=True)
    shutil.rmtree(engine.root, ignore_errors=True)


def _free_pair() -> tuple[str, str]:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for _ in range(50):
        index = int.from_bytes(os.urandom(2), "big") % (BASE_NET.num_addresses // 4)
        net = ipaddress.ip_network(f"{BASE_NET.network_address + index * 4}/30")
        host, ns = (str(a) for a in net.hosts())
        if host not in used and ns not in used and str(net.network_address) not in routes:
            return host, ns
    raise RuntimeError("no free /30 for the engine's veth")


def _bridge(ident: str) -> str:
    """A bridge inside the engine's namespace with the first address of a /24 unused on the host."""
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for _ in range(50):
        index = int.from_bytes(os.urandom(1), "big")
        net = ipaddress.ip_network(f"{NODES_NET.network_address + index * 256}/24")
        if str(net.network_address) not in used:
            break
    addr = str(net.network_address + 1)
    for cmd in (["ip", "-n", ident, "link", "add", "kbr", "type", "bridge"],
                ["ip", "-n", ident, "addr", "add", f"{addr}/24", "dev", "kbr"], ["ip", "-n", ident, "link", "set", "kbr", "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    return addr


def _netns(ident: str, host_addr: str, addr: str) -> None:
    for cmd in (["ip", "netns", "add", ident], ["ip", "-n", ident, "link", "set", "lo", "up"],
                ["ip", "link", "add", f"{ident}h", "type", "veth", "peer", "name", f"{ident}n", "netns", ident],
                ["ip", "addr", "add", f"{host_addr}/30", "dev", f"{ident}h"], ["ip", "link", "set", f"{ident}h", "up"],
                ["ip", "-n", ident, "addr", "add", f"{addr}/30", "dev", f"{ident}n"],
                ["ip", "-n", ident, "link", "set", f"{ident}n", "up"]):
        subprocess.run(cmd, check=True, capture_output=True)


def _wait_ping(engine: SwarmEngine, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("dockerd exited: " + (engine.root / "dockerd.log").read_text()[-600:])
        if engine.docker("version", check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError("the private dockerd did not answer within 60s")


def _copy_images(engine: SwarmEngine, images: list[str], source: SwarmEngine | None = None) -> None:
    """`docker save | docker load` from the shared engine (or `source`): one archive, shared layers once."""
    save = subprocess.Popen(["docker", *(["-H", source.socket] if source else []), "save", *images],
                            stdout=subprocess.PIPE)
    loaded = subprocess.run(["docker", "-H", engine.socket, "load", "-q"], stdin=save.stdout, capture_output=True,
                            timeout=600)
    save.wait(timeout=60)
    if save.returncode or loaded.returncode:
        raise RuntimeError(f"copying images failed: {loaded.stderr.decode()[-400:]}")


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
