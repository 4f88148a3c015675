"""What a render would change: a unified diff per file and the services to recreate."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from kitctl.render.content_hashes import compose_hash


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str  # "added" | "removed" | "modified"
    diff: str  # unified diff; a one-line note for binary files


@dataclass(frozen=True)
class Plan:
    files: list[FileChange]
    services: dict[str, str]  # name -> "create" | "recreate" | "remove" | "unchanged"
    secrets_to_create: list[str] = field(default_factory=list)
    inputs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # input -> (recorded, new); no licence

    @property
    def changed(self) -> bool:
        return bool(self.files or self.secrets_to_create) or any(v != "unchanged" for v in self.services.values())

    def acting(self, action: str) -> list[str]:
        return [name for name, a in self.services.items() if a == action]

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "inputs_changed": {k: {"from": old, "to": new} for k, (old, new) in self.inputs.items()},
            "files": [{"path": f.path, "change": f.change, "diff": f.diff} for f in self.files],
            "services": self.services,
            "secrets_to_create": self.secrets_to_create,
        }


def input_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The recorded inputs that differ (kitctl.lock's `inputs` before and after)."""
    old = old or {}
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def diff_files(old: dict[str, bytes], new: dict[str, bytes], no_diff: frozenset[str] = frozenset()) -> list[FileChange]:
    """Changed files; those in `no_diff` (kitctl.lock: hashes only) are named without their content."""
    changes = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        change = "added" if before is None else "removed" if after is None else "modified"
        diff = "" if path in no_diff else _unified(path, before, after)
        changes.append(FileChange(path, change, diff))
    return changes


def _unified(path: str, before: bytes | None, after: bytes | None) -> str:
    try:
        a = (before or b"").decode("utf-8").splitlines(keepends=True)
        b = (after or b"").decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"Binary file {path} {'added' if before is None else 'removed' if after is None else 'changed'}\n"
    lines = difflib.unified_diff(
        a, b, fromfile="/dev/null" if before is None else f"a/{path}", tofile="/dev/null" if after is None else f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def service_changes(old_compose: dict[str, Any] | None, new_compose: dict[str, Any]) -> dict[str, str]:
    """Per service: compare compose_hash of the old and new definitions."""
    old = (old_compose or {}).get("services") or {}
    new = new_compose["services"]
    result = {}
    for name in sorted(set(old) | set(new)):
        if name not in old:
            result[name] = "create"
        elif name not in new:
            result[name] = "remove"
        else:
            same = isinstance(old[name], dict) and compose_hash(old[name]) == compose_hash(new[name])
            result[name] = "unchanged" if same else "recreate"
    return result
