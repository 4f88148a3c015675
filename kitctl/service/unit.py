"""`kitctl service install`: a systemd unit on the licensee's host that runs `kitctl service run` for one site.

One unit per site (`kitctl-<project>.service`), restarted when it stops, with
the site directory and the Docker engine it was installed with. Where systemd
manages the host the unit is enabled and started; elsewhere (a container, a
host with another init) it is written and the command to run under any
supervisor is printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kitcore.errors import InvalidInput, KitError

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")


@dataclass(frozen=True)
class UnitSpec:
    project: str
    site_dir: Path
    command: list[str]  # the kitctl to run: an absolute path first
    host: str | None = None
    hq_url: str | None = None
    interval: float = 5.0
    window: str | None = None  # "HH:MM-HH:MM Zone/Name" (kitcore.upgrade_window); None: any time
    auto_upgrade: bool = True

    @property
    def name(self) -> str:
        return f"kitctl-{self.project}.service"

    def exec_args(self) -> list[str]:
        args = [*self.command, "service", "run", "--site-dir", str(self.site_dir), "--interval", f"{self.interval:g}"]
        if self.host:
            args += ["--docker-host", self.host]
        if self.hq_url:
            args += ["--hq-url", self.hq_url]
        if self.window:
            hours, _, zone = self.window.partition(" ")
            args += ["--window", hours, "--timezone", zone]
        if not self.auto_upgrade:
            args += ["--no-auto-upgrade"]
        return args


def kitctl_command() -> list[str]:
    """How this very kitctl is started again: its interpreter and module, by absolute paths."""
    return [str(Path(sys.executable).absolute()), "-m", "kitctl"]


def render(spec: UnitSpec) -> str:
    """The unit file's text (systemd quoting: each argument quoted, `%` and `$` escaped)."""
    exec_start = " ".join(_quote(a) for a in spec.exec_args())
    return (
        "[Unit]\n"
        f"Description=kitctl host service for site {spec.project}: runs the upgrades HQ rolls out\n"
        "After=docker.service network-online.target\n"
        "Wants=network-online.target\n\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        "Restart=always\n"
        "RestartSec=5\n"
        "UMask=0077\n"
        "NoNewPrivileges=yes\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def _quote(arg: str) -> str:
    if any(c in arg for c in "\n\r"):
        raise InvalidInput("a service argument holds a line break")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def install(spec: UnitSpec, unit_dir: Path = DEFAULT_UNIT_DIR) -> tuple[Path, bool]:
    """Write the unit (mode 0644); enable and start it when systemd runs this host. (path, started)."""
    if not unit_dir.is_dir():
        raise InvalidInput(f"{unit_dir} is not a directory")
    path = unit_dir / spec.name
    tmp = path.with_name(f".{spec.name}.tmp")
    tmp.write_text(render(spec), encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    if not systemd_running() or unit_dir != DEFAULT_UNIT_DIR:
        return path, False
    for args in (["daemon-reload"], ["enable", "--now", spec.name]):
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise KitError(f"systemctl {' '.join(args)}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return path, True


def systemd_running() -> bool:
    """systemd is this host's init (the test sd_booted(3) uses)."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def verify(path: Path) -> str:
    """`systemd-analyze verify` on the unit: '' when it found nothing, else what it said."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        raise KitError("systemd-analyze is not installed")
    done = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    said = (done.stdout + done.stderr).strip()
    return said if done.returncode != 0 or said else ""


def shell_command(spec: UnitSpec) -> str:
    """The same command for another supervisor."""
    return shlex.join(spec.exec_args())
