"""A fake of the Engine API's exec calls as kitctl.deploy.engine_exec makes them.

The fake answers with the engine's own multiplexed stream (an 8-byte header before each frame), so the
code under test parses what a real engine sends.
"""

from __future__ import annotations

import io
import struct
from types import SimpleNamespace
from typing import Any

STDOUT, STDERR = 1, 2


def multiplexed(frames: list[tuple[int, bytes]]) -> bytes:
    """`frames` as the engine writes them on an exec's stream."""
    return b"".join(struct.pack(">BxxxL", stream, len(data)) + data for stream, data in frames)


class FakeExecAPI:
    """docker.APIClient's exec calls; a subclass says what each command writes in `answer`."""

    exit_code = 0

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def answer(self, command: list[str]) -> list[tuple[int, bytes]]:
        """The (STDOUT or STDERR, bytes) frames `command` writes; it may set `exit_code`."""
        raise NotImplementedError

    def exec_create(self, container: str, command: list[str], **_: Any) -> dict[str, str]:
        self.commands.append(command)
        return {"Id": f"exec-{len(self.commands)}"}

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"ExitCode": self.exit_code}

    # The docker.APIClient internals engine_exec.start reads the stream through.
    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post_json(self, url: str, **_: Any) -> Any:
        body = io.BufferedReader(io.BytesIO(multiplexed(self.answer(self.commands[-1]))))
        return SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(fp=body)), close=body.close)

    def _raise_for_status(self, response: Any) -> None:
        pass

    def _get_raw_response_socket(self, response: Any) -> Any:
        return response.raw._fp.fp

    def _disable_socket_timeout(self, sock: Any) -> None:
        pass
