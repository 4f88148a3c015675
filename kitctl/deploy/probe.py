"""kitctl runs a new container's own health check itself, as soon as it runs.

The engine runs a healthcheck's first probe one `interval` after the start (and
Docker 20.10 has no `start_interval`), so a service ready in one second was
reported healthy only after ten, and every service gated on it waited as long.
The same command, run the same way (an exec in the container, as its user,
with the healthcheck's timeout), passing once is what the engine itself takes
for healthy; a failing probe only means "not yet": failing a service stays the
engine's verdict (retries, start period), so no gate is weakened. kitctl stops
once the engine ran its first probe (its cadence from then on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Healthcheck

GAP_SECONDS = 0.25  # between the end of the first probe and the start of the next
BACKOFF = 1.5  # each further gap this much longer: a slow service's log is not filled with probes
POLL_SECONDS = 0.05  # how often a running probe's exit is looked at


@dataclass(frozen=True)
class OwnProbe:
    command: tuple[str, ...]
    timeout: float

    def passes(self, api: "APIClient", container: str) -> bool:
        """True when the probe exits 0 within its timeout; an engine refusal (not running yet) is False."""
        from docker.errors import APIError

        try:
            exec_id = api.exec_create(container, list(self.command), stdout=False, stderr=False)["Id"]
            api.exec_start(exec_id, detach=True)
            end = time.monotonic() + self.timeout
            while time.monotonic() < end:
                info = api.exec_inspect(exec_id)
                if not info.get("Running") and info.get("ExitCode") is not None:
                    return info["ExitCode"] == 0
                time.sleep(POLL_SECONDS)
        except APIError:
            return False
        return False


def own_probe(check: "Healthcheck | None") -> OwnProbe | None:
    """The healthcheck as an exec command (CMD as it is, CMD-SHELL through /bin/sh as the engine does)."""
    if check is None:
        return None
    kind, *args = check.test
    command = tuple(args) if kind == "CMD" else ("/bin/sh", "-c", " ".join(args))
    return OwnProbe(command, check.timeout)
