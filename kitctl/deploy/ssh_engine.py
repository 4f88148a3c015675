"""One SSH connection to an ssh:// engine's host for the no-op check of `kitctl up`.

docker-py opens an SSH session (running `docker system dial-stdio`) per
pooled request and `sync_site` a second connection to compare the site copy;
a no-op `up` paid about 4 s for that. Here one paramiko connection (authenticated
as `kitctl.deploy.remote` does) and one session carry both: a shell command (the
copy's digest), then dial-stdio speaking the Engine API over keep-alive HTTP,
read by the same `EngineSocket` the local check uses.
"""

from __future__ import annotations

import http.client
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from kitcore.unixhttp import UnixHTTPClient

if TYPE_CHECKING:
    import paramiko

DIAL = "docker system dial-stdio"
SEP = "--kitctl-dial-stdio--"


class ChannelHTTPConnection(http.client.HTTPConnection):
    """An `http.client` connection over SSH channels to the engine: `channels()` gives the next one whenever
    the engine closed the last (it does after `exec start`)."""

    def __init__(self, channels: Callable[[], "paramiko.Channel"], timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.channels = channels

    def connect(self) -> None:
        channel = self.channels()
        channel.settimeout(self.timeout)
        self.sock = channel

    def close(self) -> None:
        """Let go of the channel without closing it: `http.client` closes a connection that ends with its
        answer before reading the body (a socket's file keeps the socket open, a channel's does not); the
        channel ends with the SSH connection."""
        self.sock = None
        super().close()


class ChannelHTTPClient(UnixHTTPClient):
    """`UnixHTTPClient`'s requests, carried by dial-stdio channels instead of a unix socket."""

    def __init__(self, channels: Callable[[], "paramiko.Channel"], timeout: float) -> None:
        self._conn = ChannelHTTPConnection(channels, timeout)


class SSHHost:
    """The engine's host over one SSH connection and ONE session: a shell command's output, then the engine API.

    sshd takes about 0.2 s to set up each session, so the command and `docker system dial-stdio` share one
    (`COMMAND; echo SEP; exec docker system dial-stdio`), and connecting runs in the background (`open`)
    while the caller does its local work.
    """

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.target, self.timeout = target, timeout
        self._thread: threading.Thread | None = None
        self._output: str | None = None
        self._channels: list[paramiko.Channel] = []
        self._error: BaseException | None = None
        self._ssh = None

    def __enter__(self) -> SSHHost:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.join(self.timeout)
        if self._ssh is not None:
            self._ssh.__exit__(*exc)

    def open(self, command: str, spare: bool = False) -> None:
        """Connect and start `command` then the engine's dial-stdio, in the background; with `spare`, a second
        dial-stdio session beside it, set up at the same time, for after an `exec` (the engine then closes)."""
        self._thread = threading.Thread(target=self._open, args=(command, spare), daemon=True)
        self._thread.start()

    def result(self) -> tuple[str, ChannelHTTPClient]:
        """(what `command` printed, an HTTP client to the engine); EngineError if any of it failed."""
        from kitctl.deploy.engine_socket import EngineError

        assert self._thread is not None, "open() first"
        self._thread.join(3 * self.timeout)
        if self._output is None:
            raise EngineError(f"no engine over ssh: {self._error or 'timed out'}")
        return self._output, ChannelHTTPClient(self._next_channel, self.timeout)

    def _open(self, command: str, spare: bool) -> None:
        try:
            _import_paramiko()
            from kitctl.deploy.remote import _ssh

            self._ssh = _ssh(self.target)
            self.client = self._ssh.__enter__()
            first = self._session(f"{command}; echo {SEP}; exec {DIAL}")
            self._channels = [first] + ([self._session(DIAL)] if spare else [])
            self._output = _read_through(first, f"{SEP}\n".encode())
        except Exception as exc:  # paramiko's errors are not OSError; the caller falls back to the full path
            self._error = exc

    def _session(self, command: str) -> "paramiko.Channel":
        channel = self.client.get_transport().open_session(timeout=self.timeout)
        channel.settimeout(self.timeout)
        channel.exec_command(command)
        return channel

    def _next_channel(self) -> "paramiko.Channel":
        """The next dial-stdio session: one set up beforehand, else a new one."""
        import paramiko

        if self._channels:
            return self._channels.pop(0)
        try:
            return self._session(DIAL)
        except paramiko.SSHException as exc:
            raise OSError(f"ssh session refused: {exc}") from None


def _read_through(channel: "paramiko.Channel", end: bytes, limit: int = 1 << 16) -> str:
    """The command's output up to `end` (the engine says nothing before it is asked)."""
    data = b""
    while not data.endswith(end):
        chunk = channel.recv(4096)
        if not chunk or len(data) > limit:
            raise EOFError("the engine's host closed the session before dial-stdio started")
        data += chunk
    return data[:-len(end)].decode("utf-8", "replace")


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
