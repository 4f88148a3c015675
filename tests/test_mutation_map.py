"""The mutation runner's map (scripts/mutation.py): every critical module and its tests exist, and a retest
with named tests accepts only the module's own tests (a kill must come from the tests the score is over)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _runner():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("kit_mutation_runner", ROOT / "scripts" / "mutation.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_critical_modules_named_by_issue_27_are_mapped_to_tests_that_exist():
    modules = _runner().MODULES
    assert {m.path for m in modules.values()} >= {
        "kitcore/licence/token.py", "kitcore/licence/jws.py", "kitcore/licence/keys.py", "kitcore/licence/commands.py",
        "agent/commands.py", "hq/risk.py", "hq/orders.py", "hq/batch.py", "hq/inventory.py", "hq/reviews.py",
        "agent/outbox.py", "agent/decisions.py", "storefront/admin/auth.py", "kitctl/render/escape.py"}
    for key, module in modules.items():
        assert (ROOT / module.path).is_file(), key
        assert module.tests and all((ROOT / t).is_file() for t in module.tests), key


def test_a_retest_takes_only_the_modules_own_tests():
    runner = _runner()
    with pytest.raises(SystemExit) as refused:
        runner.retest_with("hq.orders", runner.MODULES["hq.orders"], ["tests/hq/test_hq_idempotency.py",
                                                                        "tests/agent/test_outbox_rules.py::test_x"])
    assert str(refused.value).startswith("tests/agent/test_outbox_rules.py::test_x is not one of hq.orders's tests")
