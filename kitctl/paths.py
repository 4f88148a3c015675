"""Where kitctl keeps state by default (XDG base directories)."""

from __future__ import annotations

import os
from pathlib import Path


def xdg_data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def default_hq_dir() -> Path:
    """HQ's private state (signing keys, database) when --hq-dir is not given."""
    return xdg_data_home() / "kitctl" / "hq"
