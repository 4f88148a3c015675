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

    @property
    def changed(self) -> bool:
        return bool(self.files or self.secrets_to_create) or any(v != "unchanged" for v in self.services.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "files": [{"path": f.path, "change": f.change, "diff": f.diff} for f in self.files],
            "services": self.services,
            "secrets_to_create": self.secrets_to_create,
        }


def diff_files(old: dict[str, bytes], new: dict[str, bytes]) -> list[FileChange]:
    changes = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        change = "added" if before is None else "removed" if after is None else "modified"
        changes.append(FileChange(path, change, _unified(path, before, after)))
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
