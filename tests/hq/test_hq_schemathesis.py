"""Fuzz every operation of /openapi.json with schemathesis: no 5xx, whatever the input.

The operations are driven with Hypothesis directly (one bounded run per
operation) against a real HQ server; schemathesis generates the cases and
runs its `not_a_server_error` check on each response.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from hq.testing import RunningHQ, running_hq

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_hq(tmp_path_factory) -> Iterator[RunningHQ]:
    with running_hq(tmp_path_factory.mktemp("fuzz"), site_rate_per_second=10_000, site_rate_burst=10_000) as hq:
        hq.seed_item("game-100")
        hq.seed_card_keys("game-100", 50)
        hq.site_token = hq.issue_licence("fuzz-site")  # type: ignore[attr-defined]
        yield hq


def _operations(hq: RunningHQ) -> list:
    schema = schemathesis.openapi.from_url(f"{hq.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_lists_every_endpoint(fuzz_hq):
    labels = {op.label for op in _operations(fuzz_hq)}
    for expected in ("GET /v1/keys", "GET /v1/catalog", "POST /v1/orders", "GET /v1/orders/{order_id}",
                     "POST /v1/heartbeat", "POST /v1/admin/licences", "POST /v1/admin/licences/{site}/revoke",
                     "PUT /v1/admin/catalog/items/{sku}", "POST /v1/admin/catalog/card-keys",
                     "POST /v1/admin/reviews/{hq_order_id}/resolve", "PUT /v1/admin/risk-rules"):
        assert expected in labels


def test_no_server_errors(fuzz_hq):
    failures: list[str] = []
    for operation in _operations(fuzz_hq):
        token = fuzz_hq.operator_token if operation.path.startswith("/v1/admin") else fuzz_hq.site_token

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            if operation.path.endswith("/revoke") or operation.path.endswith("/suspend"):
                case.path_parameters = {**(case.path_parameters or {}), "site": "someone-else"}
            headers = {"Authorization": f"Bearer {token}", **(case.headers or {})}
            case.call_and_validate(base_url=fuzz_hq.url, headers=headers, checks=[not_a_server_error])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup; collect them all
            failures.append(f"{operation.label}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    assert not failures, "\n".join(failures)
