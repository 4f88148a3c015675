"""Preflight checks (`kitctl doctor`, and automatically before `kitctl up`).

Each check is a small function returning a `Check`; a `fail` stops `up`, a
`warn` is printed and `up` goes on.
"""

from __future__ import annotations

import shutil
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project
    from kitctl.deploy.remote_probe import HostFacts

MIN_ENGINE = (20, 10)
SUPPORTED_ARCH = {"x86_64", "amd64", "aarch64", "arm64"}
FAIL_FREE_BYTES = 2 * 1024**3
WARN_FREE_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_engine(client: "docker.DockerClient") -> Check:
    version = client.version()
    text = version.get("Version", "?")
    try:
        major, minor = (int(p) for p in text.split("+")[0].split(".")[:2])
    except ValueError:
        return Check("engine", "warn", f"Docker {text} (version not understood), API {version.get('ApiVersion')}")
    if (major, minor) < MIN_ENGINE:
        return Check("engine", "fail", f"Docker {text} is older than {MIN_ENGINE[0]}.{MIN_ENGINE[1]}")
    return Check("engine", "ok", f"Docker {text}, API {version.get('ApiVersion')}, {version.get('Os')}")


def check_architecture(info: dict[str, Any]) -> Check:
    arch = info.get("Architecture", "?")
    if arch not in SUPPORTED_ARCH:
        return Check("architecture", "fail", f"{arch} is not supported (x86_64 or aarch64)")
    return Check("architecture", "ok", arch)


def check_disk(info: dict[str, Any], remote: bool, facts: "HostFacts | None" = None) -> Check:
    """Free space under the engine's root: measured here, or on an ssh:// engine's host through `facts`."""
    root = info.get("DockerRootDir", "/var/lib/docker")
    if facts is not None and facts.free_bytes is not None:
        free = facts.free_bytes
    elif remote or not Path(root).exists():
        return Check("disk", "warn", f"not measured: cannot read the engine's host ({root})")
    else:
        free = shutil.disk_usage(root).free
    where = " on the engine's host" if remote else ""
    text = f"{free / 1024**3:.1f} GiB free under {root}{where}"
    if free < FAIL_FREE_BYTES:
        return Check("disk", "fail", text + " (need at least 2 GiB)")
    if free < WARN_FREE_BYTES:
        return Check("disk", "warn", text + " (less than 5 GiB)")
    return Check("disk", "ok", text)


def check_ports(client: "docker.DockerClient", project: "Project", remote: bool,
                proc: Path = Path("/proc"), facts: "HostFacts | None" = None) -> Check:
    """Every host port the stack publishes is free, or already held by this stack; a taken one is named with
    the flag that moves it and, where the host lets us see it, what holds it."""
    from kitctl.deploy.identity import is_ours
    from kitctl.deploy.port_holder import flag_for, holder_text, process_holding

    wanted = {(p.host_ip, p.host_port, p.protocol): flag_for(name, p.container_port)
              for name, s in project.services.items() for p in s.ports if p.host_port}
    if not wanted:
        return Check("ports", "ok", "the stack publishes no host ports")
    ours: set[int] = set()
    others: dict[int, str] = {}
    for c in client.api.containers(all=False):
        mine = is_ours(project, c.get("Labels"))
        for port in c.get("Ports") or []:
            held = port.get("PublicPort")
            if held and mine:
                ours.add(held)
            elif held:
                others.setdefault(held, c["Names"][0].lstrip("/"))
    for (host_ip, host_port, proto), flag in sorted(wanted.items(), key=lambda w: w[0][1]):
        if host_port in ours:
            continue
        if host_port in others:
            return _port_taken(host_ip, host_port, proto, flag, holder_text(others[host_port], None))
        if facts is not None and host_port in facts.listening:
            holder = holder_text(None, facts.holders.get(host_port))
            return _port_taken(host_ip, host_port, proto, flag, holder + " on the engine's host")
        if not remote and not _can_bind(host_ip, host_port, proto):
            return _port_taken(host_ip, host_port, proto, flag, holder_text(None, process_holding(host_port, proc)))
    ports = ", ".join(f"{ip}:{port}" for ip, port, _ in sorted(wanted, key=lambda w: w[1]))
    if remote and facts is None:
        return Check("ports", "warn", f"not measured on the engine's host; no container holds {ports}")
    return Check("ports", "ok", f"free or held by this stack: {ports}")


def _port_taken(host_ip: str, port: int, proto: str, flag: str | None, holder: str) -> Check:
    move = f"; choose another with {flag}" if flag else ""
    named = f" ({flag})" if flag else ""
    return Check("ports", "fail", f"{host_ip}:{port}/{proto}{named} is already in use, {holder}{move}")


def _can_bind(host_ip: str, port: int, proto: str) -> bool:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip, port))
        except OSError:
            return False
    return True


def check_licence(load: Callable[[], Any]) -> Check:
    from kitcore.errors import InvalidInput

    try:
        licence = load()
    except InvalidInput as exc:
        return Check("licence", "fail", str(exc))
    claims = licence.claims
    if licence.status == "grace":
        return Check("licence", "warn", f"{claims.sub}: EXPIRED, in the grace period ({-licence.days_left} days past exp)")
    return Check("licence", "ok", f"{claims.sub}: {claims.tier}, {licence.days_left} days left")


def check_domain(domain: str | None, timeout: float = 1.5) -> Check:
    """Warn (never fail) when the site's domain does not resolve: TLS and buyers need it."""
    if not domain or domain in ("localhost",) or domain.replace(".", "").isdigit():
        return Check("domain", "ok", f"{domain or 'no domain'}: nothing to resolve")
    result: list[str] = []

    def resolve() -> None:
        try:
            result.append(socket.getaddrinfo(domain, 443)[0][4][0])
        except OSError as exc:
            result.append(f"!{exc.strerror or exc}")

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        return Check("domain", "warn", f"{domain}: no answer from DNS within {timeout:.1f}s")
    if result[0].startswith("!"):
        return Check("domain", "warn", f"{domain} does not resolve ({result[0][1:]}); buyers cannot reach it yet")
    return Check("domain", "ok", f"{domain} → {result[0]}")


def start_domain_check(domain: str | None) -> Callable[[], list[str]]:
    """Resolve the domain while other work runs; the returned call gives its warning, if any."""
    box: list[Check] = []
    worker = threading.Thread(target=lambda: box.append(check_domain(domain)), daemon=True)
    worker.start()

    def warnings() -> list[str]:
        worker.join(2.0)
        return [box[0].detail] if box and box[0].status != "ok" else []

    return warnings


def run_checks(client: "docker.DockerClient", project: "Project", remote: bool,
               load_licence: Callable[[], Any], domain: str | None,
               probe: "Callable[[str], HostFacts] | None" = None) -> list[Check]:
    """All checks; `probe` reads an ssh:// engine's host (ports, disk) given the engine's root directory."""
    return [
        *host_checks(client, project, remote, probe),
        check_licence(load_licence),
        check_domain(domain),
        check_buyer_addresses(client, project),
    ]


def host_checks(client: "docker.DockerClient", project: "Project", remote: bool,
                probe: "Callable[[str], HostFacts] | None" = None) -> list[Check]:
    """Engine, architecture, disk and ports (what `up`'s preflight shares with `doctor`); disk and ports are
    measured through `probe` on an ssh:// engine's host."""
    info = client.info()
    facts = probe(info.get("DockerRootDir", "/var/lib/docker")) if probe is not None else None
    return [
        check_engine(client),
        check_architecture(info),
        check_disk(info, remote, facts),
        check_ports(client, project, remote, facts=facts),
    ]


# Of the newest orders, how many came without a buyer address (the storefront records the gateway as unknown).
ADDRESS_QUERY = ("SELECT count(*) FILTER (WHERE buyer_ip IS NULL) || '|' || count(*) FROM "
                 "(SELECT buyer_ip FROM orders ORDER BY created_at DESC LIMIT 50) newest")


def check_buyer_addresses(client: "docker.DockerClient", project: "Project") -> Check:
    """Warn when the engine hides buyers' addresses (the userland proxy): HQ's IP rules cannot apply."""
    from kitctl.deploy.operate import db_query

    answer = db_query(client, project, ADDRESS_QUERY)
    unknown, _, total = (answer or "").partition("|")
    return address_verdict(int(unknown) if unknown.isdigit() else None, int(total) if total.isdigit() else 0)


def address_verdict(unknown: int | None, total: int) -> Check:
    if unknown is None or total == 0:
        return Check("addresses", "ok", "no orders yet to tell whether buyers' addresses reach the shop")
    if unknown == total:
        return Check("addresses", "warn", f"the last {total} orders have no buyer address: the engine hides it "
                     "(userland proxy, e.g. dockerd --iptables=false), so orders record it as unknown and HQ's "
                     "IP rules do not apply; publish the ports with iptables enabled to keep it")
    return Check("addresses", "ok", f"{total - unknown} of the last {total} orders carry the buyer's address")


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "fail"]
