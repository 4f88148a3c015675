"""`kitctl doctor`'s port line names the flag that moves the port and what holds it (issue 23, item 5)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kitctl.deploy.compose import parse_project
from kitctl.deploy.doctor import check_ports
from kitctl.deploy.port_holder import UNKNOWN, listening_inodes, process_holding


class FakeApi:
    """The engine's container list: all doctor reads from it."""

    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self._containers = containers

    def containers(self, all: bool = False) -> list[dict[str, Any]]:
        return self._containers


class FakeClient:
    def __init__(self, containers: list[dict[str, Any]] | None = None) -> None:
        self.api = FakeApi(containers or [])


def _project(tmp_path: Path, http: int, https: int) -> Any:
    services = {"proxy": {"image": "kitctl/proxy:1", "ports": [f"127.0.0.1:{http}:80", f"127.0.0.1:{https}:443"]}}
    return parse_project({"services": services}, tmp_path, tmp_path / "compose.yaml", "shop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_held_by_another_container_names_the_flag_and_the_container(tmp_path: Path) -> None:
    other = {"Names": ["/someone-else"], "Labels": {"com.docker.compose.project": "other"},
             "Ports": [{"PublicPort": 18443, "PrivatePort": 443}]}
    check = check_ports(FakeClient([other]), _project(tmp_path, _free_port(), 18443), remote=False)
    assert check.status == "fail"
    assert "(--https-port)" in check.detail and "held by container someone-else" in check.detail
    assert check.detail.endswith("choose another with --https-port")


def test_a_port_held_by_a_process_names_the_flag_and_the_process(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        check = check_ports(FakeClient(), _project(tmp_path, port, _free_port()), remote=False)
    assert check.status == "fail"
    assert f"127.0.0.1:{port}/tcp (--http-port) is already in use" in check.detail
    assert f"(pid {os.getpid()})" in check.detail and "choose another with --http-port" in check.detail


def test_an_unreadable_holder_is_called_another_program(tmp_path: Path) -> None:
    """No /proc to read (another user's process, or another OS): the line still says the port is taken."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        check = check_ports(FakeClient(), _project(tmp_path, port, _free_port()), remote=False, proc=tmp_path / "none")
    assert check.status == "fail" and UNKNOWN in check.detail and "(--http-port)" in check.detail


def test_proc_tables_are_read_for_listening_sockets_only(tmp_path: Path) -> None:
    """A fake /proc: the listening socket on 0x1F90 (8080) is found, the established one on it is not."""
    net = tmp_path / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    net.joinpath("tcp").write_text(header
        + "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1\n"
        + "   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 222 1\n")
    fd = tmp_path / "42" / "fd"
    fd.mkdir(parents=True)
    (tmp_path / "42" / "comm").write_text("nginx\n")
    os.symlink("socket:[111]", fd / "3")
    assert listening_inodes(8080, tmp_path) == {"111"}
    assert process_holding(8080, tmp_path) == "nginx (pid 42)"
    assert process_holding(8081, tmp_path) is None


def test_ports_this_stack_holds_are_fine(tmp_path: Path) -> None:
    mine = {"Names": ["/shop-proxy-1"], "Labels": {"com.docker.compose.project": "shop"},
            "Ports": [{"PublicPort": 18080, "PrivatePort": 80}]}
    check = check_ports(FakeClient([mine]), _project(tmp_path, 18080, _free_port()), remote=False)
    assert check.status == "ok", check.detail


TABLES = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
          "   0: 0100007F:4650 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0        0 9 1\n")


def test_an_ssh_hosts_tables_df_and_socket_owners_are_read_into_facts() -> None:
    from kitctl.deploy.remote_probe import SOCKETS, SPLIT, parse_facts

    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100 40 3145728 40% /\n"
    owners = "/proc/7/fd socket:[8]\n/proc/42/fd socket:[9]\n/proc/42/comm:nginx\n/proc/7/comm:sshd\n"
    facts = parse_facts(f"{TABLES}{SPLIT}\n{df}{SOCKETS}\n{owners}")
    assert facts.listening == {18000} and facts.free_bytes == 3 * 1024**3
    assert facts.holders == {18000: "nginx (pid 42)"}
    unreadable = parse_facts(f"{TABLES}{SPLIT}\n{SOCKETS}\n")  # another user's process: no fds to read
    assert unreadable.free_bytes is None and unreadable.listening == {18000} and unreadable.holders == {}


def test_over_ssh_a_port_listening_on_the_engines_host_fails_and_disk_is_measured(tmp_path: Path) -> None:
    from kitctl.deploy.doctor import check_disk
    from kitctl.deploy.remote_probe import HostFacts

    facts = HostFacts({18000}, 3 * 1024**3, {18000: "nginx (pid 42)"})
    check = check_ports(FakeClient(), _project(tmp_path, 18000, 18443), remote=True, facts=facts)
    assert check.status == "fail" and "(--http-port)" in check.detail
    assert "held by nginx (pid 42) on the engine's host" in check.detail
    disk = check_disk({"DockerRootDir": "/srv/docker"}, remote=True, facts=facts)
    assert disk.status == "warn" and disk.detail.startswith("3.0 GiB free under /srv/docker on the engine's host")
    unmeasured = check_ports(FakeClient(), _project(tmp_path, 18001, 18443), remote=True)
    assert unmeasured.status == "warn" and "not measured" in unmeasured.detail


class PreflightClient(FakeClient):
    """An engine on another host: its version and info, and no containers."""

    def version(self) -> dict[str, str]:
        return {"Version": "24.0.7", "ApiVersion": "1.43", "Os": "linux"}

    def info(self) -> dict[str, str]:
        return {"Architecture": "x86_64", "DockerRootDir": "/srv/docker"}


def test_up_over_ssh_stops_on_a_port_taken_on_the_engines_host_with_exit_2(tmp_path: Path, monkeypatch) -> None:
    """`up`'s preflight measures the engine's host as `doctor` does: a port listening there is refused before
    anything changes, naming the flag and the holder (on the old code it was not measured and `up` went on)."""
    import pytest

    from kitctl.deploy import remote_probe
    from kitctl.deploy.remote_probe import HostFacts
    from kitctl.deploy.up import _preflight
    from kitcore.errors import InvalidInput

    asked: list[tuple[str, str]] = []
    licence = SimpleNamespace(claims=SimpleNamespace(sub="shop", tier="standard"), status="valid", days_left=30)

    def host_facts(target: str, root: str) -> HostFacts:
        asked.append((target, root))
        return HostFacts({18000}, 30 * 1024**3, {18000: "nginx (pid 42)"})

    monkeypatch.setattr(remote_probe, "host_facts", host_facts)
    with pytest.raises(InvalidInput) as refused:
        _preflight(PreflightClient(), _project(tmp_path, 18000, 18443), "ssh://root@box:22", lambda: licence)
    assert asked == [("ssh://root@box:22", "/srv/docker")]
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
    assert str(refused.value) == ("preflight ports: 127.0.0.1:18000/tcp (--http-port) is already in use, held by "
                                  "nginx (pid 42) on the engine's host; choose another with --http-port")
