"""The licence features HQ may grant: the one place that decides which names are known.

Today they are the features of the tiers (`kitcore.licence.tiers`); a feature
registry (third-party plugins' features) extends `known()`, and every check
and the schema's enum follow.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from kitcore.licence.tiers import TIERS


def known() -> tuple[str, ...]:
    """Every feature name a licence may carry, in a stable order."""
    return tuple(dict.fromkeys(f for tier in TIERS.values() for f in tier.features))


def check(name: str) -> str:
    """`name` if HQ knows the feature; else a one-line refusal listing the known ones."""
    if name not in known():
        raise ValueError(f"unknown feature {name!r} (known: {', '.join(known())})")
    return name


def json_schema() -> dict[str, Any]:
    return {"type": "string", "enum": list(known())}


Feature = Annotated[str, AfterValidator(check), WithJsonSchema(json_schema())]
