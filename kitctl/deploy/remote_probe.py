"""What `kitctl doctor` and `kitctl up`'s preflight measure on an ssh:// engine's host: ports and free disk.

The engine's host is where ports are published and volumes live; the SSH
connection kitctl already uses to copy the site there (kitctl.deploy.remote)
reads the kernel's TCP tables, `df`, and which process owns which socket
(/proc/*/fd, readable for the login's own processes, all of them as root) in
one command, so nothing is started there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from kitctl.deploy.port_holder import listening_by_inode

SPLIT = "--kitctl-df--"
SOCKETS = "--kitctl-sockets--"
# each process's socket fds ("/proc/PID/fd socket:[INODE]"), then each process's name ("/proc/PID/comm:NAME")
OWNERS = "find /proc/[0-9]*/fd -lname 'socket:*' -printf '%h %l\\n' 2>/dev/null; grep -sH . /proc/[0-9]*/comm"


@dataclass(frozen=True)
class HostFacts:
    listening: set[int]
    free_bytes: int | None
    holders: dict[int, str] = field(default_factory=dict)  # port -> "name (pid N)" where the host showed it


def parse_facts(output: str) -> HostFacts:
    """The command's output: the TCP tables, `df -Pk`'s last line (1024-byte blocks), the sockets' owners."""
    tables, _, rest = output.partition(SPLIT)
    df, _, owners = rest.partition(SOCKETS)
    fields = (df.strip().splitlines() or [""])[-1].split()
    free = int(fields[3]) * 1024 if len(fields) > 3 and fields[3].isdigit() else None
    ports = listening_by_inode(tables)
    return HostFacts(set(ports.values()), free, _holders(ports, owners))


def _holders(ports: dict[str, int], owners: str) -> dict[int, str]:
    pids: dict[str, str] = {}  # socket inode -> pid
    names: dict[str, str] = {}  # pid -> process name
    for line in owners.splitlines():
        if line.endswith("]") and " socket:[" in line:
            fd_dir, _, link = line.partition(" ")
            pids.setdefault(link[len("socket:["):-1], fd_dir.split("/")[2])
        elif line.startswith("/proc/") and "/comm:" in line:
            path, _, name = line.partition(":")
            names[path.split("/")[2]] = name.strip()
    return {port: f"{names.get(pids[inode], '?')} (pid {pids[inode]})" for inode, port in ports.items() if inode in pids}


def host_facts(target: str, root: str) -> HostFacts:
    from kitctl.deploy.remote import _run, _ssh

    command = (f"cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; echo {SPLIT}; df -Pk {shlex.quote(root)} 2>/dev/null; "
               f"echo {SOCKETS}; {OWNERS}")
    with _ssh(target) as ssh:
        _, output = _run(ssh, command)
    return parse_facts(output)


def probe_for(target: str | None) -> Callable[[str], HostFacts] | None:
    """The host probe for an ssh:// engine (given the engine's root directory); None for a local one, which the
    checks measure themselves."""
    from kitctl.engine import is_remote

    return partial(host_facts, target) if is_remote(target) else None
