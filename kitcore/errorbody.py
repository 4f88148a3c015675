"""The one error body every kitctl HTTP endpoint answers with: `{"error": code, "detail": one line}`.

HQ's API, the storefront's JSON endpoints and the agent's local endpoints
all use it (docs/hq-api.md, "Errors"), so a client handles every refusal
the same way: `error` is a stable lowercase code to branch on, `detail`
one line for a person. Endpoints may add fields; these two are always there.
"""

from __future__ import annotations

import re
from typing import Any

CODE = re.compile(r"^[a-z][a-z0-9_]*$")  # also a pydantic pattern (whose `$` is the very end): fullmatch here


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The error document: `code` must be a lowercase identifier; `detail` is cut to its first line."""
    if not CODE.fullmatch(code):
        raise ValueError(f"error code {code!r} is not a lowercase identifier")
    line = detail.splitlines()[0] if detail and detail.strip() else code
    return {**extra, "error": code, "detail": line}
