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


FAKE_MUTANTS = '''import os


def x_add__mutmut_orig(a, b):
    return a + b


def x_add__mutmut_1(a, b):
    return a - b


def x_add__mutmut_2(a, b):
    return b + a


def x_add__mutmut_3(a, b):
    while True:
        pass


def x_other__mutmut_orig():
    return 1


def x_other__mutmut_1():
    return 2


def _pick(name, orig):
    wanted = os.environ.get("MUTANT_UNDER_TEST", "").rpartition(".")[2]
    return globals()[wanted] if wanted.startswith(name + "__mutmut_") else orig


def add(a, b):
    return _pick("x_add", x_add__mutmut_orig)(a, b)


def other():
    return _pick("x_other", x_other__mutmut_orig)()
'''


def test_the_fork_loop_runs_only_the_tests_that_reach_a_mutant_and_records_each_verdict(tmp_path):
    """--fork: one collection, one traced run to learn which test calls which function, then a child per mutant:
    a failing test kills it, a hang is stopped at the timeout (killed), a mutant no test reaches survives unrun."""
    import json

    (tmp_path / "fakemod.py").write_text(FAKE_MUTANTS)
    (tmp_path / "test_fake.py").write_text("import fakemod\n\ndef test_add():\n    assert fakemod.add(2, 3) == 5\n\n"
                                          "def test_nothing():\n    assert True\n")
    names = ["fakemod.x_add__mutmut_1", "fakemod.x_add__mutmut_2", "fakemod.x_add__mutmut_3",
             "fakemod.x_other__mutmut_1"]
    meta = tmp_path / "fakemod.py.meta"
    meta.write_text(json.dumps({"exit_code_by_key": dict.fromkeys(names)}))
    runner = _runner()
    loop = runner.MutantLoop(names, tmp_path / "fakemod.py", meta, timeout=3)
    assert runner.fork_loop(tmp_path, ["-q", "-p", "no:cacheprovider", "test_fake.py"], loop) == 0
    assert json.loads(meta.read_text())["exit_code_by_key"] == {
        "fakemod.x_add__mutmut_1": 1, "fakemod.x_add__mutmut_2": 0, "fakemod.x_add__mutmut_3": runner.TIMEOUT,
        "fakemod.x_other__mutmut_1": 0}
    assert runner.function_of("agent.outbox.xǁForwarderǁ_postpone__mutmut_5") == "xǁForwarderǁ_postpone"


def test_a_retest_can_keep_to_the_functions_a_change_touched() -> None:
    runner = _runner()
    assert runner.plain_name("hq.batch.x_decide_new__mutmut_12") == "decide_new"
    assert runner.plain_name("hq.batch.x__known__mutmut_3") == "_known"
    assert runner.plain_name("agent.outbox.xǁForwarderǁ_postpone__mutmut_5") == "_postpone"
    assert runner.plain_name("hq.batch.x_x_ray__mutmut_1") == "x_ray"  # only mutmut's own prefix goes
