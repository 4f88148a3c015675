"""What the host service has done: the last upgrade command it handled and whether HQ heard the outcome.

Kept beside kitctl's other notes in the site directory (mode 0600, written
whole or not at all), so a command is run once even across restarts, and an
outcome HQ did not hear yet is sent again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kitcore.sitedir import SiteDir

STATE_FILE = "host-service.json"


@dataclass
class Handled:
    seq: int = 0  # the last upgrade command's seq acted on (or set aside); only a higher one is acted on
    command_id: str = ""
    version: str = ""  # the version the site runs after it
    outcome: str = ""  # upgraded | rolled_back
    detail: str = ""
    reported: bool = True
    previous: str = ""  # the version the site ran before it (HQ's rollback goes back to it)
    # a command received outside the maintenance window, held here (its token may expire meanwhile) until
    # the window opens: it survives a restart of the service
    pending_seq: int = 0
    pending_id: str = ""
    pending_version: str = ""
    pending_reported: bool = True  # HQ heard "waiting for window" for it
    announced: str | None = None  # the settings HQ last heard (`settings_text`); None: never sent any

    @property
    def pending(self) -> bool:
        return self.pending_seq > self.seq


def state_path(site_dir: Path) -> Path:
    return SiteDir(site_dir).cache / STATE_FILE


def load(site_dir: Path) -> Handled | None:
    """None when the service never ran for this site (or its note does not read)."""
    try:
        data = json.loads(state_path(site_dir).read_text(encoding="utf-8"))
        return Handled(**{k: data[k] for k in Handled.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError):
        return None


def save(site_dir: Path, handled: Handled) -> None:
    path = state_path(site_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(handled), handle)
    os.replace(tmp, path)
