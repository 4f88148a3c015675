"""The mutation runner's map (scripts/mutation.py): every critical module and its tests exist, and a retest
with named tests accepts only the module's own tests (a kill must come from the tests the score is over)."""

from __future__ import annotations

import importlib.util
import sys
import time
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


def test_untested_mutants_are_sampled_in_one_fixed_order_that_a_later_run_continues():
    """--unchecked --limit N tests a seeded sample: the same N on every run, and a run after some were tested
    takes the next ones of the same order (survivors again too; listed equivalents never)."""
    runner = _runner()
    names = [f"m.x_f__mutmut_{i}" for i in range(1, 41)]
    fresh = dict.fromkeys(names)
    first = runner.to_retest(fresh, set(), True, lambda code: code == 0)
    assert sorted(first) == sorted(names) and first != sorted(names)  # all of them, shuffled
    assert runner.to_retest(dict(fresh), set(), True, lambda code: code == 0) == first  # seeded: the same order
    tested = {**fresh, first[0]: 1, first[1]: 0, first[2]: 1}  # killed, survived, killed
    again = runner.to_retest(tested, {first[3]}, True, lambda code: code == 0)
    assert again == [first[1], *first[4:]]
    assert runner.to_retest(tested, set(), False, lambda code: code == 0) == [first[1]]  # survivors only


def test_a_hung_test_run_is_stopped_at_its_timeout(tmp_path):
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hang():\n    time.sleep(60)\n")
    runner = _runner()
    started = time.monotonic()
    assert runner.pytest_in_fork(tmp_path, ["-q", "-p", "no:cacheprovider", "test_hang.py"], timeout=2) == runner.TIMEOUT
    assert time.monotonic() - started < 30


def test_table_mutants_run_only_against_the_modules_own_tests():
    import signal

    handler = signal.getsignal(signal.SIGTERM)  # main() sets its own
    try:
        with pytest.raises(SystemExit) as refused:
            _runner().main(["hq.risk", "--tables-only", "--tables-with", "tests/agent/test_outbox_rules.py"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert refused.value.code == 2
