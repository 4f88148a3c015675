"""A persistent SSH connection to an ssh:// engine's host, kept between kitctl commands (OpenSSH ControlMaster).

Every command used to open its own SSH connection (handshake, authentication)
and its own sessions, and each session runs the login's shell and its rc files
on the host: about 0.3 s at the least, more than a whole no-op `up` on a local
socket. As Kamal and Ansible do, the first command leaves OpenSSH's control
master behind for `KITCTL_SSH_PERSIST` seconds (default 60, 0 = never) of idle
time, forwarding the engine's socket to a unix socket of our own: the next
no-op `up` speaks the Engine API through it with no handshake and no shell.

Host keys are checked as strictly as the paramiko connections do: only
~/.ssh/known_hosts (the file paramiko loads), `StrictHostKeyChecking=yes`,
never updated; a changed key refuses the master and the command takes the
paramiko path, which refuses it too. The sockets live in a directory only this
user can enter (0700, checked before every use); `kitctl down` closes the
master, as does `ssh -O exit -S <socket>`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    import threading

PERSIST_ENV = "KITCTL_SSH_PERSIST"
DEFAULT_PERSIST = 60
MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes
REMOTE_ENGINE = "/var/run/docker.sock"  # what `docker system dial-stdio` reaches on a default install


def persist_seconds() -> int:
    """How long an idle master stays (0: none is started nor used); a one-line error for anything else."""
    raw = os.environ.get(PERSIST_ENV, "").strip()
    if not raw:
        return DEFAULT_PERSIST
    if not raw.isdigit() or int(raw) > 86400:
        raise InvalidInput(f"{PERSIST_ENV}={raw!r} must be a number of seconds from 0 (off) to 86400")
    return int(raw)


def control_dir(create: bool = True) -> Path | None:
    """This user's socket directory, made 0700; None when it exists but another user could reach into it."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    path = Path(base) / f"kitctl-ssh-{os.getuid()}"
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        info = path.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077
    return path if private else None


def socket_paths(directory: Path, target: str) -> tuple[Path, Path]:
    """(the master's control socket, the forwarded engine socket) for `target`; short enough for sun_path."""
    name = hashlib.sha256(target.encode()).hexdigest()[:16]
    return directory / f"{name}.ctl", directory / f"{name}.engine.sock"


def forwarded_engine(target: str) -> str | None:
    """`unix://` path of the engine forwarded by a live master for `target`, if one is there and ours."""
    if persist_seconds() == 0:
        return None
    directory = control_dir(create=False)
    if directory is None:
        return None
    control, engine = socket_paths(directory, target)
    if not (_own_socket(control) and _own_socket(engine)):
        return None
    return f"unix://{engine}"


def _own_socket(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid()


def master_command(target: str, control: Path, engine: Path, persist: int) -> list[str]:
    """`ssh` starting the master that forwards the engine's socket (in the background once it is up)."""
    url = urlparse(target)
    ssh_dir = Path.home() / ".ssh"
    config = ssh_dir / "config"
    command = ["ssh", "-F", str(config) if config.exists() else "none",
               "-o", "ControlMaster=yes", "-o", f"ControlPath={control}", "-o", f"ControlPersist={persist}",
               "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
               "-o", "GlobalKnownHostsFile=none", "-o", "UpdateHostKeys=no", "-o", "BatchMode=yes",
               "-o", "ConnectTimeout=15", "-o", "StreamLocalBindUnlink=yes", "-o", "ExitOnForwardFailure=yes",
               "-N", "-f", "-L", f"{engine}:{REMOTE_ENGINE}"]
    if url.username:
        command += ["-l", url.username]
    if url.port:
        command += ["-p", str(url.port)]
    return command + ["--", url.hostname or ""]


def start(target: str) -> "threading.Thread | None":
    """Start the master for the next command, in a thread this command's exit waits for (the handshake runs
    beside this command's own connection). One at a time per target: two masters starting together would
    leave the loser as a plain connection that never ends, so starting holds `<id>.lock`, and a live master
    (its control socket answers) is left alone."""
    import threading

    persist = persist_seconds()
    directory = control_dir() if persist else None
    if directory is None:
        return None
    control, engine = socket_paths(directory, target)
    if len(str(engine)) > MAX_SOCKET_PATH:
        return None  # a long $XDG_RUNTIME_DIR: ssh could not bind the sockets
    lock = _try_lock(control.with_suffix(".lock"))
    if lock is None:
        return None  # another command is starting it
    if _answers(control):
        os.close(lock)
        return None
    control.unlink(missing_ok=True)  # a stale socket would make ssh give up multiplexing and stay for good
    worker = threading.Thread(target=_run_master, args=(master_command(target, control, engine, persist), lock),
                              name="kitctl-ssh-master")
    worker.start()
    return worker


def _run_master(command: list[str], lock: int) -> None:
    """`ssh -f` returns once authenticated and forwarding (or refused); the master stays in the background."""
    import subprocess

    try:
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no ssh binary, or a host that never answered: every command takes the paramiko path
    finally:
        os.close(lock)


def _try_lock(path: Path) -> int | None:
    import fcntl

    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _answers(control: Path) -> bool:
    import socket

    if not _own_socket(control):
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(control))
            return True
        except OSError:
            return False


def close(target: str) -> bool:
    """Ask the master for `target` to exit (`kitctl down`); True when one was there."""
    directory = control_dir(create=False)
    if directory is None:
        return False
    control, engine = socket_paths(directory, target)
    if not _own_socket(control):
        return False
    import subprocess

    done = subprocess.run(["ssh", "-F", "none", "-o", f"ControlPath={control}", "-O", "exit", "--", "kitctl"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    engine.unlink(missing_ok=True)
    return done.returncode == 0
