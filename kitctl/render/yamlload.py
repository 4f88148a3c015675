"""Parse YAML safely, with libyaml's C parser when PyYAML has it (ten times faster)."""

from __future__ import annotations

from typing import Any


def load_yaml(text: str | bytes) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader variant
