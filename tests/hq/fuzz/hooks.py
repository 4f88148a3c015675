"""Schemathesis hooks for HQ's run: one more check, `refusal_is_documented`.

A schema-valid request may still be refused for a reason JSON Schema cannot
state: a rule across two fields, or HQ's state (an idempotency key used with
another body, a cursor from another database). The run's config allows those
statuses for the operations that have them (`schemathesis.toml`); this check
keeps that allowance narrow: a schema-valid request refused with 410 or 422
must carry one of the codes documented for its operation, never
`invalid_request` (which would mean the server validates something the schema
does not say).
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.core.failures import Failure

# (method, path) -> codes a schema-valid request can be refused with (documented in docs/hq-api.md and /openapi.json)
DOMAIN_REFUSALS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/v1/catalog"): frozenset({"cursor_expired"}),
    ("POST", "/v1/orders"): frozenset({"idempotency_conflict", "duplicate_order_id", "total_above_list_price"}),
    ("PUT", "/v1/admin/catalog/items/{sku}"): frozenset({"qty_range", "invalid_account_pattern"}),
    # a well-formed feature HQ has not registered (the registry is HQ's state, not the schema's)
    ("POST", "/v1/admin/licences"): frozenset({"invalid_licence_request"}),
    ("POST", "/v1/admin/licences/{site}/upgrade"): frozenset({"invalid_licence_request"}),
    # a grading configuration that is not monotonic or whose grade thresholds are out of order
    ("PUT", "/v1/admin/grades/config"): frozenset({"grading_rule"}),
    # an application's materials are checked by content (magic bytes, size), its categories against the catalog,
    # their number against the tier; a resubmission is for a rejected application only
    ("POST", "/v1/applications"): frozenset({"material_type", "material_kind", "category_not_sold",
                                             "too_many_categories"}),
    ("POST", "/v1/applications/{number}/resubmit"): frozenset({"material_type", "material_kind"}),
    # an operator's decision names its reason (`why`, not blank) and, for a licence, a site id HQ has not issued
    ("POST", "/v1/admin/applications/{number}/decide"): frozenset({"invalid_request", "invalid_licence_request"}),
    # a host's report: command_id, version and outcome together, or none of them and auto_upgrade
    ("POST", "/v1/upgrade-report"): frozenset({"incomplete_report"}),
}


@schemathesis.check
def refusal_is_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (410, 422):
        return None
    try:
        code = str(json.loads(response.content).get("error"))
    except (ValueError, AttributeError):
        code = "<not an error body>"
    allowed = DOMAIN_REFUSALS.get((case.method.upper(), case.operation.path), frozenset())
    if code not in allowed:
        raise Failure(operation=case.operation.label, title="Schema-valid request refused without a documented reason",
                      message=f"{response.status_code} `{code}`; a schema-valid request may be refused here only with "
                              f"{', '.join(sorted(allowed)) or 'no code'}")
    return None
