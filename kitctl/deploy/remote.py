"""For an `ssh://` engine: copy the site directory to the remote host so binds resolve there.

Bind mounts name paths on the engine's host, so the rendered files (Caddyfile,
site.json, branding, secrets) are uploaded over SFTP (paramiko, the same
transport docker-py uses) into a per-site directory, keeping file modes
(secrets stay 0600); bind sources are then mapped onto that directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from kitctl.deploy.compose import Project
from kitctl.errors import InvalidInput, KitError

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
    """Upload the site directory; return the local→remote path mapping for binds."""
    destination = remote_site_dir(project, remote_dir)
    with _sftp(target) as sftp:
        _upload_tree(sftp, project.working_dir, destination)
    return map_path(project.working_dir, destination)


class _sftp:
    """SFTP session to the engine's host, authenticated the way docker-py's paramiko transport is."""

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
            self.sftp = self.client.open_sftp()
        except (paramiko.SSHException, OSError) as exc:
            self.client.close()
            raise KitError(f"cannot copy the site to {url.hostname}: {exc}") from None
        return self.sftp

    def __exit__(self, *exc) -> None:
        self.sftp.close()
        self.client.close()


def _upload_tree(sftp, local_root: Path, remote_root: str) -> None:
    _mkdirs(sftp, remote_root, 0o700)
    for dirpath, dirnames, filenames in os.walk(local_root):
        rel = os.path.relpath(dirpath, local_root)
        remote = remote_root if rel == "." else f"{remote_root}/{rel}"
        for name in dirnames:
            _mkdirs(sftp, f"{remote}/{name}", stat.S_IMODE(os.stat(os.path.join(dirpath, name)).st_mode))
        for name in filenames:
            local = os.path.join(dirpath, name)
            info = os.stat(local)
            if _same(sftp, f"{remote}/{name}", info):
                continue  # unchanged since the last upload: keep the inode a container may bind
            tmp = f"{remote}/.{name}.kitctl-upload"
            sftp.put(local, tmp)
            sftp.chmod(tmp, stat.S_IMODE(info.st_mode))
            sftp.utime(tmp, (info.st_atime, info.st_mtime))
            sftp.posix_rename(tmp, f"{remote}/{name}")


def _same(sftp, path: str, info: os.stat_result) -> bool:
    try:
        theirs = sftp.stat(path)
    except FileNotFoundError:
        return False
    return (theirs.st_size == info.st_size and int(theirs.st_mtime or 0) == int(info.st_mtime)
            and stat.S_IMODE(theirs.st_mode or 0) == stat.S_IMODE(info.st_mode))


def _mkdirs(sftp, path: str, mode: int) -> None:
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        current = "/" + "/".join(parts[:i])
        try:
            sftp.stat(current)
        except FileNotFoundError:
            sftp.mkdir(current, mode if i == len(parts) else 0o755)
