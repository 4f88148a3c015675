"""One SSH connection to an ssh:// engine's host for the no-op check of `kitctl up`.

docker-py opens an SSH session (running `docker system dial-stdio`) per
pooled request and `sync_site` a second connection to compare the site copy;
a no-op `up` paid about 4 s for that. Here one paramiko connection (authenticated
as `kitctl.deploy.remote` does) carries both: a shell command (the copy's
digest) and one dial-stdio session speaking the Engine API over keep-alive
HTTP, read by the same `EngineSocket` the local check uses.
"""

from __future__ import annotations

import http.client
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore.unixhttp import UnixHTTPClient

if TYPE_CHECKING:
    import paramiko

DIAL = "docker system dial-stdio"


class ChannelHTTPConnection(http.client.HTTPConnection):
    """An `http.client` connection over an open SSH channel (a socket-like stream to the engine)."""

    def __init__(self, channel: "paramiko.Channel", timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.channel = channel

    def connect(self) -> None:
        self.channel.settimeout(self.timeout)
        self.sock = self.channel


class ChannelHTTPClient(UnixHTTPClient):
    """`UnixHTTPClient`'s requests, carried by a dial-stdio channel instead of a unix socket."""

    def __init__(self, channel: "paramiko.Channel", timeout: float) -> None:
        self._conn = ChannelHTTPConnection(channel, timeout)


class SSHHost:
    """The engine's host over one SSH connection: `run` shell commands, `engine_client` for the API."""

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.target, self.timeout = target, timeout

    def __enter__(self) -> SSHHost:
        _import_paramiko()
        from kitctl.deploy.remote import _ssh

        self._ssh = _ssh(self.target)
        self.client = self._ssh.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ssh.__exit__(*exc)

    def start(self, command: str) -> "paramiko.Channel":
        """Start `command` on its own session of the connection; `output` reads it later."""
        import paramiko

        from kitctl.deploy.engine_socket import EngineError

        try:
            channel = self.client.get_transport().open_session(timeout=self.timeout)
            channel.settimeout(self.timeout)
            channel.exec_command(command)
        except paramiko.SSHException as exc:
            raise EngineError(f"ssh session refused: {exc}") from None
        return channel

    @staticmethod
    def output(channel: "paramiko.Channel") -> tuple[int, str]:
        """(exit status, stdout) of a started command."""
        data = channel.makefile("rb").read().decode("utf-8", "replace")
        return channel.recv_exit_status(), data

    def engine_client(self) -> ChannelHTTPClient:
        return ChannelHTTPClient(self.start(DIAL), self.timeout)


def _import_paramiko() -> None:
    """paramiko without `invoke` (a third of its import time), which only `Match exec` in ~/.ssh/config needs."""
    if "paramiko" in sys.modules or "invoke" in sys.modules or _config_uses_exec():
        import paramiko  # noqa: F401
        return
    sys.modules["invoke"] = None  # type: ignore[assignment]  # paramiko.config then runs without it
    try:
        import paramiko  # noqa: F401
    finally:
        del sys.modules["invoke"]


def _config_uses_exec() -> bool:
    try:
        return "exec" in (Path.home() / ".ssh" / "config").read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False
