"""For an `ssh://` engine: copy the site directory to the remote host so binds resolve there.

Bind mounts name paths on the engine's host, so the rendered files (Caddyfile,
site.json, branding, secrets) are streamed as a tar over SSH (paramiko, the same
transport docker-py uses; only `tar` is needed on the host, no SFTP) into a
per-site directory, keeping file modes (secrets stay 0600); bind sources are
then mapped onto that directory. Unchanged content is not sent again.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import stat
import tarfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from kitctl.deploy.compose import Project
from kitcore.errors import InvalidInput, KitError
from kitcore.sitedir import CACHE

REMOTE_ROOT = "/var/lib/kitctl/sites"


def remote_site_dir(project: Project, remote_dir: str | None) -> str:
    path = remote_dir or f"{REMOTE_ROOT}/{project.name}"
    if not path.startswith("/") or ".." in path.split("/"):
        raise InvalidInput(f"--remote-dir {path!r} must be an absolute path without '..'")
    return path.rstrip("/")


def map_path(site_dir: Path, remote_dir: str) -> Callable[[str], str]:
    """local bind source → remote path; anything outside the site directory is refused."""
    root = str(site_dir)

    def host_path(local: str) -> str:
        if local != root and not local.startswith(root + os.sep):
            raise InvalidInput(f"bind source {local} is outside the site directory; a remote engine cannot see it")
        return remote_dir + local[len(root):]

    return host_path


def sync_site(target: str, project: Project, remote_dir: str | None) -> Callable[[str], str]:
    """Upload the site directory when it changed; return the local→remote path mapping for binds."""
    destination = remote_site_dir(project, remote_dir)
    archive, digest = _tar_site(project.working_dir)
    site_mode = stat.S_IMODE(project.working_dir.stat().st_mode)
    quoted = shlex.quote(destination)
    with _ssh(target) as ssh:
        code, current = _run(ssh, marker_command(destination))
        if current.strip() != digest:
            code, output = _run(ssh, f"mkdir -p {quoted} && chmod {site_mode:o} {quoted} && tar -x -p -f - -C {quoted} "
                                     f"&& echo {digest} > {quoted}/{MARKER}", stdin=archive)
            if code != 0:
                raise KitError(f"cannot copy the site to {destination} on the engine's host: {output.strip()[:200]}")
    return map_path(project.working_dir, destination)


MARKER = ".kitctl-synced"


def marker_command(destination: str) -> str:
    """Prints the digest of what was last copied to `destination` (nothing if never)."""
    return f"cat {shlex.quote(destination)}/{MARKER} 2>/dev/null || true"


def site_digest(root: Path) -> str:
    """The digest `sync_site` stores beside the copy: equal digests, equal copies (what `up` compares)."""
    return _tar_site(root, archive=False)[1]


def remove_site_copy(target: str, project: Project, remote_dir: str | None) -> str | None:
    """`down --volumes`: delete the site's copy (secrets included) from the engine's host; only a directory
    kitctl itself filled (it holds the sync marker) is removed, anything else is kept and said so."""
    destination = remote_site_dir(project, remote_dir)
    quoted = shlex.quote(destination)
    with _ssh(target) as ssh:
        code, output = _run(ssh, f"if [ -f {quoted}/{MARKER} ]; then rm -rf {quoted} && echo removed; "
                                 f"elif [ -e {quoted} ]; then echo foreign; else echo absent; fi")
    answer = output.strip()
    if code != 0 or answer not in ("removed", "foreign", "absent"):
        raise KitError(f"cannot remove {destination} on the engine's host: {answer[:200]}")
    if answer == "removed":
        return f"removed the site's copy {destination} on the engine's host"
    if answer == "foreign":
        return f"kept {destination} on the engine's host: kitctl did not copy it there (no {MARKER})"
    return None


def _tar_site(root: Path, archive: bool = True) -> tuple[bytes, str]:
    """The site directory as a tar (modes kept: secrets stay 0600; no members without `archive`) and a digest
    of its contents."""
    buffer, digest = io.BytesIO(), hashlib.sha256()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != CACHE)  # kitctl's own notes stay local
            if Path(dirpath) != root:  # directories too, so their modes (0755 branding, 0700 secrets) travel
                rel_dir = Path(dirpath).relative_to(root).as_posix()
                mode = stat.S_IMODE(os.stat(dirpath).st_mode)
                digest.update(f"{rel_dir}/\0{mode:o}\0".encode())
                info = tarfile.TarInfo(rel_dir)
                info.type, info.mode = tarfile.DIRTYPE, mode
                if archive:
                    tar.addfile(info)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                rel = path.relative_to(root).as_posix()
                data = path.read_bytes()
                digest.update(f"{rel}\0{stat.S_IMODE(path.stat().st_mode):o}\0".encode() + hashlib.sha256(data).digest())
                info = tarfile.TarInfo(rel)
                info.size, info.mode, info.mtime = len(data), stat.S_IMODE(path.stat().st_mode), int(path.stat().st_mtime)
                if archive:
                    tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), digest.hexdigest()


def make_dirs_on(target: str) -> Callable[[str], None]:
    """`mkdir -p` (mode 0700) on the engine's host, for volumes bound onto a data directory there."""
    def make_dirs(path: str) -> None:
        with _ssh(target) as ssh:
            code, output = _run(ssh, f"mkdir -p -m 700 {shlex.quote(path)}")
        if code != 0:
            raise KitError(f"cannot create {path} on the engine's host: {output.strip()[:200]}")

    return make_dirs


def _run(ssh, command: str, stdin: bytes | None = None) -> tuple[int, str]:
    chan_in, chan_out, chan_err = ssh.exec_command(command, timeout=120)
    if stdin is not None:
        chan_in.write(stdin)
        chan_in.channel.shutdown_write()
    output = chan_out.read().decode("utf-8", "replace")
    errors = chan_err.read().decode("utf-8", "replace")
    return chan_out.channel.recv_exit_status(), output or errors


class _ssh:
    """SSH session to the engine's host, authenticated the way docker-py's paramiko transport is."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __enter__(self):
        import paramiko

        url = urlparse(self.target)
        config = paramiko.SSHConfig()
        config_file = Path.home() / ".ssh" / "config"
        if config_file.exists():
            with config_file.open() as f:
                config.parse(f)
        host = config.lookup(url.hostname or "")
        self.client = paramiko.SSHClient()
        self.client.load_system_host_keys()
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self.client.connect(
                hostname=host.get("hostname", url.hostname), port=url.port or int(host.get("port", 22)),
                username=url.username or host.get("user"), key_filename=host.get("identityfile"), timeout=15)
        except (paramiko.SSHException, OSError) as exc:
            self.client.close()
            raise KitError(f"cannot reach {url.hostname} over ssh to copy the site: {exc}") from None
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
