"""Dependency order of services: start order, stop order, and cycles refused."""

from __future__ import annotations

from typing import Mapping, Sequence

from kitcore.errors import InvalidInput


def start_order(dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    """Services so that each comes after everything it depends on.

    Ties are broken by name so the order (and so the output) is stable.
    A cycle is an input error naming the services in it.
    """
    remaining = {name: set(deps) for name, deps in dependencies.items()}
    ordered: list[str] = []
    while remaining:
        ready = sorted(n for n, deps in remaining.items() if not deps - set(ordered))
        if not ready:
            raise InvalidInput(f"depends_on has a cycle between: {', '.join(sorted(remaining))}")
        for name in ready:
            ordered.append(name)
            del remaining[name]
    return ordered


def stop_order(dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    """The reverse of the start order: dependents stop before what they use."""
    return list(reversed(start_order(dependencies)))


def with_dependencies(dependencies: Mapping[str, Sequence[str]], wanted: Sequence[str]) -> set[str]:
    """`wanted` plus everything they need, transitively (for `up SERVICE…`)."""
    found: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in found:
            continue
        if name not in dependencies:
            raise InvalidInput(f"unknown service {name!r} (services: {', '.join(sorted(dependencies))})")
        found.add(name)
        stack.extend(dependencies[name])
    return found
