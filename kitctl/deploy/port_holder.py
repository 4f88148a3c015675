"""Who holds a host port, and which flag moves ours: `kitctl doctor`'s port line names both.

A port taken on the host is the commonest first-deploy failure; the person
needs the flag that moves the site off it and, where the host lets us see it,
the program in the way (a container via the engine, else a process found
through /proc/net/tcp and /proc/*/fd, readable for one's own processes).
"""

from __future__ import annotations

import os
from pathlib import Path

# (service, container port) -> the flag that sets its host port (kitctl.cli.site_options)
FLAGS = {("proxy", 80): "--http-port", ("proxy", 443): "--https-port", ("agent", 9464): "--metrics-port"}
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
UNKNOWN = "held by another program"


def flag_for(service: str, container_port: int) -> str | None:
    return FLAGS.get((service, container_port))


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str]:
    """Socket inodes listening on `port` (any address), from the kernel's TCP tables."""
    text = ""
    for table in ("tcp", "tcp6"):
        try:
            text += (proc / "net" / table).read_text()
        except OSError:
            continue
    return {inode for listening, inode in _listening(text) if listening == port}


def listening_by_inode(tables: str) -> dict[str, int]:
    """Listening sockets' inodes and ports in the text of /proc/net/tcp and tcp6 (read on another host too)."""
    return {inode: port for port, inode in _listening(tables)}


def _listening(tables: str) -> list[tuple[int, str]]:
    found = []
    for line in tables.splitlines():
        fields = line.split()
        if len(fields) > 9 and fields[3] == LISTEN and ":" in fields[1]:
            found.append((int(fields[1].rsplit(":", 1)[1], 16), fields[9]))
    return found


def process_holding(port: int, proc: Path = Path("/proc")) -> str | None:
    """`name (pid N)` of a process with a listening socket on `port`, when its fds are readable."""
    inodes = listening_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
            if any(os.readlink(pid_dir / "fd" / fd) in wanted for fd in fds):
                return f"{(pid_dir / 'comm').read_text().strip()} (pid {pid_dir.name})"
        except OSError:
            continue  # another user's process, or gone meanwhile
    return None


def holder_text(container: str | None, process: str | None) -> str:
    if container:
        return f"held by container {container}"
    if process:
        return f"held by {process}"
    return UNKNOWN
