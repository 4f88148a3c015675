"""What `kitctl doctor` measures on an ssh:// engine's host: listening ports and free disk.

The engine's host is where ports are published and volumes live; the SSH
connection kitctl already uses to copy the site there (kitctl.deploy.remote)
reads the kernel's TCP tables and `df` in one command, so nothing is started.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kitctl.deploy.port_holder import listening_ports

SPLIT = "--kitctl-df--"


@dataclass(frozen=True)
class HostFacts:
    listening: set[int]
    free_bytes: int | None


def parse_facts(output: str) -> HostFacts:
    """The command's output: the TCP tables, the marker, then `df -Pk`'s last line (1024-byte blocks)."""
    tables, _, df = output.partition(SPLIT)
    fields = (df.strip().splitlines() or [""])[-1].split()
    free = int(fields[3]) * 1024 if len(fields) > 3 and fields[3].isdigit() else None
    return HostFacts(listening_ports(tables), free)


def host_facts(target: str, root: str) -> HostFacts:
    from kitctl.deploy.remote import _run, _ssh

    command = f"cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; echo {SPLIT}; df -Pk {shlex.quote(root)} 2>/dev/null"
    with _ssh(target) as ssh:
        _, output = _run(ssh, command)
    return parse_facts(output)
