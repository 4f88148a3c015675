"""Mutation testing of the critical modules: `make mutation` (or `python scripts/mutation.py [KEY...]`).

Each critical module is mutated on its own, against only the tests that cover
it (MODULES below), so a run stays short. Two kinds of mutants:

- function mutants: mutmut 3 rewrites every function of the module (operators,
  comparisons, constants, arguments...) and runs, for each mutant, only the
  selected tests that call the mutated function (its own coverage map);
- table mutants: mutmut 3 leaves module- and class-level code alone, yet that is
  where some of the rules live (the admin role table, the licence clock skew and
  grace period, the tiers, the risk defaults). This script mutates those
  literals itself (each integer ±1, each string of a set or tuple dropped, each
  set widened with a sibling string) and runs the module's tests once per mutant.

Results: a score per module (killed / (mutants - equivalents)), the surviving
mutants with their diffs, and a summary table. Equivalent mutants (no test
could tell them apart from the original) are listed in
scripts/mutation_equivalents.json with the reason; docs/testing.md explains them.

Work happens under .mutation/<key>/ (never in the source tree); mutmut keeps
its results there, so a second run retests only what changed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterator

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
PACKAGES = ("kitcore", "kitctl", "hq", "agent", "storefront", "plugins", "sitedb")
ALSO = ("tests", "templates", "images", "docs", "monitoring")
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.json"
MARKERS = "not e2e and not browser and not slow"


@dataclass(frozen=True)
class Module:
    path: str
    tests: tuple[str, ...]
    pg: bool = False  # some selected tests need PostgreSQL (one cluster for the whole run)


# module key -> the file and the narrowest tests that cover it
def _tests(*names: str) -> tuple[str, ...]:
    return tuple(f"tests/{n}.py" for n in names)


# module key -> the file and the tests that cover it, the most specific first (pytest stops at the first failure)
LICENCE = ("licence/test_time_rules", "licence/test_claim_limits", "licence/test_tiers", "licence/test_jws_policy",
           "licence/test_keys", "licence/test_tokens", "licence/test_commands")
# in-process HQ only: the HTTP suites (test_hq_site_api, test_hq_admin_api) cost minutes per surviving mutant
HQ_ORDERS = ("hq/test_hq_order_rules",  # the rules of hq.orders and hq.batch called directly: seconds for the file
             "hq/test_hq_order_groups",  # several requests and sites in one batch (hq.order_groups)
             "hq/test_hq_decisions", "hq/test_hq_idempotency", "hq/test_hq_allocation", "hq/test_hq_batch",
             "hq/test_hq_risk", "hq/test_hq_ledger",  # the ledger: a delivered order posts its entries (both paths)
             "hq/test_hq_payments")  # with a gateway, an approval is payable (approve()'s payment branch)
AGENT = ("agent/test_outbox_rules", "agent/test_units", "agent/test_forwarding")
MODULES: dict[str, Module] = {
    "storefront.admin.auth": Module("storefront/admin/auth.py", _tests("storefront/test_roles", "security/test_sessions")),
    "licence.token": Module("kitcore/licence/token.py", _tests(*LICENCE)),
    "licence.jws": Module("kitcore/licence/jws.py", _tests("licence/test_jws_policy", "licence/test_tokens",
                                                           "licence/test_claim_limits",
                                                           "licence/test_commands", "licence/test_time_rules")),
    "licence.keys": Module("kitcore/licence/keys.py", _tests("licence/test_keys", "licence/test_tokens",
                                                             "licence/test_commands")),
    "licence.tiers": Module("kitcore/licence/tiers.py", _tests("licence/test_tiers", "licence/test_tokens")),
    "licence.commands": Module("kitcore/licence/commands.py", _tests("licence/test_commands", "licence/test_tokens")),
    "hq.risk": Module("hq/risk.py", _tests("hq/test_hq_risk_rules", "hq/test_hq_risk", "hq/test_hq_batch")),
    "hq.orders": Module("hq/orders.py", _tests(*HQ_ORDERS), pg=True),
    "hq.batch": Module("hq/batch.py", _tests("hq/test_hq_order_rules", "hq/test_hq_order_groups", "hq/test_hq_decisions",
                                             "hq/test_hq_allocation", "hq/test_hq_batch",
                                             "hq/test_hq_idempotency", "hq/test_hq_risk", "hq/test_hq_ledger",
                                             "hq/test_hq_payments"), pg=True),  # a gateway: decide_new's payable branch
    "hq.inventory": Module("hq/inventory.py", _tests("hq/test_hq_allocation", "hq/test_hq_decisions",
                                                     "hq/test_hq_csv_input", "hq/test_hq_batch"), pg=True),
    # the escapers' own tests; test_injection_properties renders whole sites per example (minutes per mutant)
    "render.escape": Module("kitctl/render/escape.py", _tests("render/test_escape_parsed", "render/test_escape")),
    "agent.outbox": Module("agent/outbox.py", _tests(*AGENT), pg=True),
    "agent.decisions": Module("agent/decisions.py", _tests(*AGENT), pg=True),
    # the agent's side of command verification: the site, expiry with clock skew, replayed sequence numbers, and
    # what each command changes (test_command_rules: a site database, no HQ server; test_commands runs one)
    "agent.commands": Module("agent/commands.py", _tests("agent/test_command_rules", "agent/test_command_times",
                                                         "agent/test_commands"), pg=True),
    # the operator's review resolution: the fourth path an order takes to its card keys
    # (test_hq_payments: the held-payment branch of resolve() and the refund after it)
    "hq.reviews": Module("hq/reviews.py", _tests("hq/test_hq_order_rules", "hq/test_hq_review_push",
                                                 "hq/test_hq_decisions", "hq/test_hq_allocation",
                                                 "hq/test_hq_payments"), pg=True),
}

# mutmut's exit-code classes (mutmut.stats.status_by_exit_code), folded into what a score needs
KILLED = {"killed", "timeout", "caught by type check"}
SURVIVED = {"survived", "no tests", "suspicious", "segfault"}


@dataclass
class Tally:
    key: str
    killed: int = 0
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (name, diff)
    equivalent: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    skipped: int = 0
    unchecked: int = 0  # not run yet (an interrupted run): neither killed nor survived

    @property
    def total(self) -> int:
        return self.killed + len(self.survivors) + len(self.equivalent)

    @property
    def score(self) -> float:
        counted = self.killed + len(self.survivors)
        return 100.0 * self.killed / counted if counted else 100.0


# -- a work directory per module ----------------------------------------------------------------

def prepare(key: str, module: Module, report: bool = False) -> Path:
    """`.mutation/<key>/`: links to the checkout and a pyproject.toml that tells mutmut what to do."""
    work = WORK / key
    work.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES + ALSO:
        link = work / name
        if not link.is_symlink() and (ROOT / name).exists():
            link.symlink_to(ROOT / name)
    config = {
        "source_paths": list(PACKAGES),
        "only_mutate": [module.path],
        "also_copy": [name for name in ALSO if (ROOT / name).exists()],
        "pytest_add_cli_args_test_selection": [t for t in module.tests if (ROOT / t).exists()],
        "pytest_add_cli_args": ["-m", MARKERS, "-p", "no:cacheprovider", "-W", "ignore"],
        "timeout_multiplier": 10.0,
    }
    lines = [(ROOT / "pyproject.toml").read_text(), "", "[tool.mutmut]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    mutated = work / "mutants" / module.path
    if not report and mutated.exists() and mutated.stat().st_mtime < (ROOT / module.path).stat().st_mtime:
        mutated.unlink()  # mutmut regenerates a file whose source changed
    return work


@contextmanager
def postgres(needed: bool) -> Iterator[None]:
    """One PostgreSQL cluster for every mutant (tests/conftest.py's pg_server takes it from KITCTL_TEST_PG_URL)."""
    if not needed or os.environ.get("KITCTL_TEST_PG_URL"):
        yield
        return
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import postgres_cluster

    from tests.hq.pg import migrated_template

    with postgres_cluster() as url:
        os.environ["KITCTL_TEST_PG_URL"] = url
        os.environ["KITCTL_TEST_HQ_PG_TEMPLATE"] = migrated_template(url)
        try:
            yield
        finally:
            del os.environ["KITCTL_TEST_PG_URL"], os.environ["KITCTL_TEST_HQ_PG_TEMPLATE"]


# -- function mutants (mutmut 3) --------------------------------------------------------------------

def run_mutmut(work: Path, jobs: int, names: list[str] | None = None) -> bool:
    """`mutmut run` in the work directory (only `names` when given: mutmut then tests them again).

    False when no selected test reaches the module at all (its mutants then all count as survivors).
    """
    mutmut = Path(sys.executable).with_name("mutmut")
    log = work / "mutmut.log"
    with log.open("a") as out:
        code = subprocess.call([str(mutmut), "run", "--max-children", str(jobs), *(names or [])], cwd=work,
                               stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        if NO_TESTS in "\n".join(log.read_text(errors="replace").splitlines()[-8:]):
            return False
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-15:]
        raise SystemExit(f"mutmut failed in {work} (exit {code}):\n" + "\n".join(tail))
    return True


NO_TESTS = "could not find any test case for any mutant"

GENERATE = """
from mutmut.__main__ import create_mutants
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
import os
os.makedirs("mutants", exist_ok=True)
set_mutant_under_test("mutant_generation")
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
create_mutants(1)
"""


def generate_mutants(work: Path) -> None:
    """mutmut's mutants tree and record, without its test run: what `--retest-with --unchecked` needs.

    `mutmut run` first runs every selected test to map tests to functions, which for the HQ modules costs longer
    than the named tests take over many mutants. mutmut keeps the verdicts of every function whose code is unchanged.
    """
    done = subprocess.run([sys.executable, "-c", GENERATE], cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mutant generation failed in {work}:\n" + done.stderr[-2000:])


def tests_digest(module: Module) -> str:
    """Changes when a selected test file changes: mutmut keeps old verdicts, so survivors are tested again."""
    import hashlib

    digest = hashlib.sha256()
    for test in module.tests:
        path = ROOT / test
        digest.update(test.encode() + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def mutmut_results(work: Path, module: Module) -> dict[str, str]:
    """mutant name -> status, from mutmut's per-file record."""
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / (module.path + ".meta")).read_text())
    return {name: "not checked" if code is None else status_by_exit_code[code]
            for name, code in meta["exit_code_by_key"].items()}


DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({name: get_diff_for_mutant(name, path=sys.argv[1]) for name in json.load(sys.stdin)}))
"""


def mutmut_diffs(work: Path, module: Module, names: list[str]) -> dict[str, str]:
    """The changed lines of each mutant (one process for all: `mutmut show` costs seconds each)."""
    if not names:
        return {}
    done = subprocess.run([sys.executable, "-c", DIFFS, module.path], cwd=work, input=json.dumps(names),
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {}  # the mutated file was regenerated since: names only
    out = done.stdout
    return {name: "\n".join(line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
            for name, diff in json.loads(out).items()}


# -- table mutants (module- and class-level literals) -----------------------------------------------

@dataclass(frozen=True)
class TableMutant:
    name: str
    line: int
    original: str
    replacement: str
    start: int  # offsets into the source text
    end: int


def _offsets(source: str) -> list[int]:
    starts, pos = [0], 0
    for line in source.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def table_mutants(path: str, source: str) -> list[TableMutant]:
    """Mutants of literals assigned at module or class level (what mutmut 3 does not touch)."""
    tree = ast.parse(source)
    starts = _offsets(source)
    mutants: list[TableMutant] = []

    def span(node: ast.AST) -> tuple[int, int]:
        return (starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset)  # type: ignore[attr-defined]

    def add(kind: str, node: ast.AST, replacement: str) -> None:
        a, b = span(node)
        mutants.append(TableMutant(f"{path}:{node.lineno}:{kind}:{len(mutants)}", node.lineno,  # type: ignore[attr-defined]
                                   source[a:b], replacement, a, b))

    def visit_value(value: ast.AST) -> None:
        for node in ast.walk(value):
            if isinstance(node, ast.Constant) and type(node.value) is int:
                add("int+1", node, str(node.value + 1))
                add("int-1", node, str(node.value - 1))
            elif isinstance(node, (ast.Set, ast.Tuple, ast.List)) and node.elts and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                members = [e.value for e in node.elts]  # type: ignore[attr-defined]
                for i, _ in enumerate(members):
                    rest = members[:i] + members[i + 1:]
                    add("drop", node, _display(node, rest))
                siblings = sorted({e.value for n in ast.walk(value) if isinstance(n, (ast.Set, ast.Tuple, ast.List))
                                   for e in n.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)})
                if isinstance(node, ast.Set):
                    for extra in siblings:
                        if extra not in members:
                            add("widen", node, _display(node, [*members, extra]))

    def visit_body(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
                visit_value(stmt.value)
            elif isinstance(stmt, ast.ClassDef):
                visit_body(stmt.body)

    visit_body(tree.body)
    return mutants


def _display(node: ast.AST, members: list[str]) -> str:
    inner = ", ".join(json.dumps(m, ensure_ascii=False) for m in members)
    if isinstance(node, ast.Set):
        return "{" + inner + "}" if members else "set()"
    if isinstance(node, ast.Tuple):
        return "(" + inner + ("," if len(members) == 1 else "") + ")"
    return "[" + inner + "]"


PRELOAD = ("pytest", "hypothesis", "sqlalchemy.orm", "pydantic", "fastapi", "starlette.testclient", "httpx", "jwt",
           "cryptography.hazmat.primitives.asymmetric.ed25519", "yaml", "jinja2", "psycopg", "alembic", "uvicorn",
           "msgspec", "orjson", "tinycss2", "typer", "docker", "paramiko")


TIMEOUT = 36  # mutmut's exit code for a timeout (counted killed: the mutant hangs the tests)


def pytest_in_fork(cwd: Path, args: list[str], timeout: float | None = None) -> int:
    """pytest in a child forked from this process, whose third-party imports are already done (seconds per mutant).

    The child forgets every module of the project, so the checkout copy in `cwd` (with the mutant) is what it imports.
    A child still running after `timeout` seconds is killed (with its process group) and TIMEOUT returned.
    """
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            os.setpgid(0, 0)  # its own group: a timeout ends whatever it started too
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            for name in [m for m in sys.modules if m.split(".")[0] in (*PACKAGES, "tests")]:
                del sys.modules[name]
            os.chdir(cwd)
            sys.path.insert(0, str(cwd))
            sys.dont_write_bytecode = True
            import pytest

            code = int(pytest.main(args))
        finally:
            os._exit(code)
    import signal

    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
            if done:
                pid = 0
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:  # type: ignore[operator]
                return TIMEOUT
            time.sleep(0.2)
    finally:  # timed out, or this run was stopped: the child's group goes too
        if pid:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def run_table_mutants(key: str, module: Module, only: list[str] | None = None,
                      markers: str = MARKERS) -> tuple[int, list[tuple[str, str]]]:
    """Each table mutant against the module's tests (or `only` these of them), in a scratch copy of the checkout;
    (killed, survivors)."""
    source = (ROOT / module.path).read_text()
    mutants = table_mutants(module.path, source)
    if not mutants:
        return 0, []
    tests = only or [t for t in module.tests if (ROOT / t).exists()]
    killed, survivors = 0, []
    with tempfile.TemporaryDirectory(prefix=f"kit-mut-{key}-") as tmp:
        scratch = Path(tmp)
        for name in PACKAGES + ALSO:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, scratch / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy2(ROOT / "pyproject.toml", scratch / "pyproject.toml")
        target = scratch / module.path
        for mutant in mutants:
            target.write_text(source[:mutant.start] + mutant.replacement + source[mutant.end:])
            code = pytest_in_fork(scratch, ["-x", "-q", "-p", "no:cacheprovider", "-m", markers, "-W", "ignore", *tests])
            if code == 0:
                survivors.append((mutant.name, f"- {mutant.original}\n+ {mutant.replacement}"))
            else:
                killed += 1
            print(f"    table {mutant.name}: {'survived' if code == 0 else 'killed'}", flush=True)
        target.write_text(source)
    return killed, survivors


# -- one collection, a child per mutant ----------------------------------------------------------------

def function_of(mutant: str) -> str:
    """`agent.outbox.xǁForwarderǁ_postpone__mutmut_5` -> `xǁForwarderǁ_postpone` (the name mutmut's copy of the
    original carries, with `__mutmut_orig` after it)."""
    return mutant.rpartition(".")[2].rpartition("__mutmut_")[0]


def plain_name(mutant: str) -> str:
    """`hq.batch.x_decide_new__mutmut_5` -> `decide_new`; a method's mutant -> the method's name."""
    mangled = function_of(mutant)
    return mangled.rpartition("ǁ")[2] if "ǁ" in mangled else mangled.removeprefix("x_")


class MutantLoop:
    """A pytest plugin that collects the named tests once, then tests each mutant in a child forked from the
    collected session, running only the collected tests that reach the mutated function.

    `--retest-with` starts a pytest session per mutant: on this machine its imports and collection cost more than
    a fast test file takes. Here one traced run of every collected test first finds which tests call which
    function of the module (mutmut's own map, made the same way: the mutants' trampolines call the original's
    copy, `x_<name>__mutmut_orig`); a mutant of a function no test reaches is a survivor without a run.
    A child stops at its first failing test (killed); one still running after `timeout` is killed (as mutmut's
    timeout: counted killed). Each verdict goes to mutmut's record as it comes.
    """

    def __init__(self, names: list[str], mutated_file: Path, meta_path: Path, timeout: float | None = None) -> None:
        self.names = names
        self.mutated_file = str(mutated_file)
        self.meta_path = meta_path
        self.timeout = timeout
        self.verdicts: dict[str, int] = {}
        self.took: list[float] = []  # each collected test's time in the traced run

    def pytest_runtestloop(self, session):  # type: ignore[no-untyped-def]
        items = list(session.items)
        started = time.monotonic()
        reach = self._reach(items)
        clean = time.monotonic() - started
        if reach is None:
            raise SystemExit("the named tests fail without a mutant")
        timeout = self.timeout or max(30.0, 3 * clean)
        print(f"\n   {len(self.names)} to test; the named tests take {clean:.0f} s unmutated and traced, "
              f"{len(reach)} functions reached (timeout {timeout:.0f} s)", flush=True)
        for name in self.names:
            begun = time.monotonic()
            # the quickest first: most mutants die at their first test (a test's module fixtures come with it)
            chosen = [items[i] for i in sorted(reach.get(function_of(name), ()), key=lambda i: (self.took[i], i))]
            code = self._child(name, chosen, timeout) if chosen else 0
            meta = json.loads(self.meta_path.read_text())
            if code > 0 or meta["exit_code_by_key"][name] is None:
                meta["exit_code_by_key"][name] = code if code in (1, TIMEOUT) else 1 if code > 0 else 0
                self.meta_path.write_text(json.dumps(meta))
            self.verdicts[name] = code
            verdict = ("timeout (killed)" if code == TIMEOUT else "killed" if code > 0
                       else "survived" if chosen else "survived [no test reaches it]")
            print(f"    {name}: {verdict} ({time.monotonic() - begun:.1f} s, {len(chosen)} tests)", flush=True)
        return True

    @staticmethod
    def _run(items: list, mutant: str) -> int:  # type: ignore[type-arg]
        """In a child: the items one after another, as pytest would; 1 at the first failure."""
        os.environ["MUTANT_UNDER_TEST"] = mutant
        session = items[0].session if items else None
        for i, item in enumerate(items):
            item.ihook.pytest_runtest_protocol(item=item, nextitem=items[i + 1] if i + 1 < len(items) else None)
            if session is not None and session.testsfailed:
                return 1
        return 0

    def _reach(self, items: list) -> dict[str, set[int]] | None:  # type: ignore[type-arg]
        """function -> indexes of the items that call it (None if a test fails unmutated)."""
        import threading

        out = tempfile.NamedTemporaryFile(prefix="kit-mut-reach-", suffix=".json", delete=False)
        out.close()
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                hits: dict[str, set[int]] = {}
                current = [0]
                target = self.mutated_file

                def profile(frame, event, arg):  # type: ignore[no-untyped-def]
                    if event == "call" and frame.f_code.co_filename == target:
                        name = frame.f_code.co_name
                        if name.endswith("__mutmut_orig"):
                            hits.setdefault(name[:-len("__mutmut_orig")], set()).add(current[0])

                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                sys.setprofile(profile)
                threading.setprofile(profile)
                os.environ["MUTANT_UNDER_TEST"] = ""
                session = items[0].session if items else None
                failed = False
                took = []
                for i, item in enumerate(items):
                    current[0] = i
                    begun = time.monotonic()
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=items[i + 1] if i + 1 < len(items) else None)
                    took.append(time.monotonic() - begun)
                    failed = failed or bool(session and session.testsfailed)
                sys.setprofile(None)
                Path(out.name).write_text(json.dumps({"failed": failed, "hits": {k: sorted(v) for k, v in hits.items()},
                                                      "took": took}))
                code = 0
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
        try:
            data = json.loads(Path(out.name).read_text() or "{}")
        finally:
            os.unlink(out.name)
        if not data or data["failed"]:
            return None
        self.took = data["took"]
        return {k: set(v) for k, v in data["hits"].items()}

    def _child(self, mutant: str, items: list, timeout: float) -> int:  # type: ignore[type-arg]
        import signal

        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.setpgid(0, 0)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                code = self._run(items, mutant)
            finally:
                os._exit(code)
        deadline = time.monotonic() + timeout
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    pid = 0
                    return os.waitstatus_to_exitcode(status)
                if time.monotonic() > deadline:
                    return TIMEOUT
                time.sleep(0.02)
        finally:
            if pid:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def fork_loop(cwd: Path, args: list[str], plugin: MutantLoop) -> int:
    """pytest with `plugin` in a child forked from this process (imports from `cwd`, the mutants tree)."""
    from pluggy import HookimplMarker

    if not hasattr(MutantLoop.pytest_runtestloop, "pytest_impl"):  # before pytest's own loop
        MutantLoop.pytest_runtestloop = HookimplMarker("pytest")(tryfirst=True)(MutantLoop.pytest_runtestloop)
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    templates = tempfile.mkdtemp(prefix="kit-mut-hq-")  # tests/hq/helpers.py: SQLite HQs copied, not migrated each
    os.environ["KITCTL_TEST_TEMPLATES"] = templates
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            for name in [m for m in sys.modules if m.split(".")[0] in (*PACKAGES, "tests")]:
                del sys.modules[name]
            os.chdir(cwd)
            sys.path.insert(0, str(cwd))
            sys.dont_write_bytecode = True
            import pytest

            code = int(pytest.main(args, plugins=[plugin]))
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:  # this run was stopped: the loop goes too (a mutant's child still running ends with its tests)
            import signal

            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        del os.environ["KITCTL_TEST_TEMPLATES"]
        shutil.rmtree(templates, ignore_errors=True)
    return os.waitstatus_to_exitcode(status)


# -- survivors again, against named tests -------------------------------------------------------------

def to_retest(recorded: dict[str, int | None], equivalents: Collection[str], unchecked: bool,
              survived: Callable[[int], bool]) -> list[str]:
    """The recorded survivors (and with `unchecked` the mutants not tested yet), listed equivalents left out.

    With `unchecked`, in one fixed random order of all the module's mutants, the same on every run: a run stopped
    early, or --limit N, has tested a seeded sample, and the next run continues that sample where it stopped.
    """
    names = sorted(recorded)
    if unchecked:
        import random

        random.Random(27).shuffle(names)
    return [n for n in names if n not in equivalents and (
        recorded[n] is None and unchecked or recorded[n] is not None and survived(recorded[n]))]


def retest_with(key: str, module: Module, tests: list[str], unchecked: bool = False, sqlite_only: bool = False,
                limit: int | None = None, fork: bool = False, functions: Collection[str] = ()) -> None:
    """Test the recorded survivors again against only `tests` (some of the module's own), in mutmut's mutants tree.

    On a loaded machine mutmut's own retest runs every test that reaches a function; this runs the named tests
    (stopping at the first failure) with MUTANT_UNDER_TEST set, as mutmut does. A survivor they kill is recorded
    killed in mutmut's record; one they miss stays a survivor. Listed equivalents are skipped. With `unchecked`,
    mutants mutmut has not tested yet are tested too, and one the named tests miss is recorded as a survivor
    (pessimistic: another of the module's tests might kill it; `--retest` asks them all).
    """
    unknown = [t for t in tests if t.split("::")[0] not in module.tests]
    if unknown:
        raise SystemExit(f"{unknown[0]} is not one of {key}'s tests: {', '.join(module.tests)}")
    from mutmut.stats import status_by_exit_code  # the `mutation` extra: not installed for the suite

    work = prepare(key, module)
    mutants = work / "mutants"
    meta_path = mutants / (module.path + ".meta")
    if unchecked or meta_path.exists() and not (mutants / module.path).exists():  # also after prepare() dropped a
        generate_mutants(work)  # stale mutated file: mutmut keeps the verdicts of the functions whose code is unchanged
    if not meta_path.exists() or not (mutants / module.path).exists():
        raise SystemExit(f"{key}: no mutmut record to retest (run the module first, or use --unchecked)")
    shutil.copytree(ROOT / "tests", mutants / "tests", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    equivalents = load_equivalents()
    survivors = [name for name in to_retest(json.loads(meta_path.read_text())["exit_code_by_key"], equivalents,
                                            unchecked, lambda code: status_by_exit_code[code] in SURVIVED)
                 if not functions or plain_name(name) in functions][:limit]
    markers = MARKERS + (" and not postgres" if sqlite_only else "")
    args = ["-x", "-q", "-p", "no:cacheprovider", "-m", markers, "-W", "ignore", *tests]
    if fork:  # one collection, a child per mutant running only the tests that reach its function
        with postgres(module.pg and not sqlite_only):
            code = fork_loop(mutants, ["-q", "-p", "no:cacheprovider", "-m", markers, "-W", "ignore", *tests],
                             MutantLoop(survivors, mutants / module.path, meta_path))
        if code not in (0, 5):
            raise SystemExit(f"{key}: the mutant loop ended with exit code {code}")
        return
    with postgres(module.pg and not sqlite_only):
        clean = 0.0
        for sentinel, must_pass in (("", True), ("fail", False)):  # passes unmutated; reaches the module at all
            os.environ["MUTANT_UNDER_TEST"] = sentinel
            started = time.monotonic()
            if (pytest_in_fork(mutants, args) == 0) != must_pass:
                raise SystemExit(f"{key}: the named tests {'fail without a mutant' if must_pass else 'never reach the module'}")
            clean = clean or time.monotonic() - started
        timeout = max(60.0, 10 * clean)  # as mutmut's timeout_multiplier: a hung mutant counts as killed
        print(f"   {len(survivors)} to test; the named tests take {clean:.0f} s unmutated (timeout {timeout:.0f} s)",
              flush=True)
        for name in survivors:
            started = time.monotonic()
            os.environ["MUTANT_UNDER_TEST"] = name
            code = pytest_in_fork(mutants, args, timeout)
            meta = json.loads(meta_path.read_text())
            if code > 0 or meta["exit_code_by_key"][name] is None:
                meta["exit_code_by_key"][name] = code if code in (1, TIMEOUT) else 1 if code > 0 else 0
                meta_path.write_text(json.dumps(meta))
            verdict = "timeout (killed)" if code == TIMEOUT else "killed" if code > 0 else "survived"
            print(f"    {name}: {verdict} ({time.monotonic() - started:.0f} s)", flush=True)
        del os.environ["MUTANT_UNDER_TEST"]


# -- the whole run ------------------------------------------------------------------------------------

def load_equivalents() -> dict[str, str]:
    if not EQUIVALENTS.exists():
        return {}
    return {e["mutant"]: e["why"] for e in json.loads(EQUIVALENTS.read_text())}


def run_module(key: str, module: Module, jobs: int, tables: bool, report: bool = False, retest: bool = False,
               tables_only: bool = False, tables_with: list[str] | None = None, sqlite_only: bool = False) -> Tally:
    equivalents = load_equivalents()
    tally = Tally(key)
    work = prepare(key, module, report)
    started = time.monotonic()
    print(f"== {key}: {module.path} against {', '.join(module.tests)}", flush=True)
    if not (ROOT / module.path).exists():
        print("   (not in this checkout)")
        return tally
    with postgres(module.pg and (not report or tables_only and not sqlite_only)):  # a report runs no tests
        seen, digest = work / "tests.sha256", tests_digest(module)
        changed = seen.exists() and seen.read_text() != digest
        reached = (work / "no-tests").exists() is False
        if not report:
            again = [n for n, status in mutmut_results(work, module).items() if status in SURVIVED] if retest else []
            if not again:  # with --retest, only the recorded survivors run (mutants not checked yet stay so)
                reached = run_mutmut(work, jobs)
                (work / "no-tests").unlink(missing_ok=True)
                if not reached:
                    (work / "no-tests").touch()
                if changed:  # mutmut keeps old verdicts: a survivor may die to a test added since
                    again = [n for n, status in mutmut_results(work, module).items() if status in SURVIVED]
            if again:
                run_mutmut(work, jobs, again)
            seen.write_text(digest)  # as the run started: a test changed meanwhile retests survivors next time
        recorded = work / "mutants" / (module.path + ".meta")
        results = {n: "no tests" if st == "not checked" and not reached else st
                   for n, st in (mutmut_results(work, module) if recorded.exists() or not tables_only else {}).items()}
        diffs = mutmut_diffs(work, module, [n for n, st in results.items() if st in SURVIVED])
        for name, status in sorted(results.items()):
            if status == "skipped":
                tally.skipped += 1
            elif status == "not checked":
                tally.unchecked += 1
            elif name in equivalents:
                tally.equivalent.append((name, equivalents[name]))
            elif status in KILLED:
                tally.killed += 1
            else:
                tally.survivors.append((f"{name} [{status}]", diffs.get(name, "")))
        if tables and (not report or tables_only):
            killed, survivors = run_table_mutants(key, module, tables_with,
                                                  MARKERS + (" and not postgres" if sqlite_only else ""))
            tally.killed += killed
            for name, diff in survivors:
                if name in equivalents:
                    tally.equivalent.append((name, equivalents[name]))
                else:
                    tally.survivors.append((name, diff))
    print(f"   {tally.killed} killed, {len(tally.survivors)} survived, {len(tally.equivalent)} equivalent"
          + (f", {tally.unchecked} not checked yet" if tally.unchecked else "")
          + f" -> {tally.score:.1f}% ({time.monotonic() - started:.0f} s)", flush=True)
    for name, diff in tally.survivors:
        print(f"   SURVIVED {name}\n" + "\n".join("      " + line for line in diff.splitlines()))
    return tally


def main(argv: list[str] | None = None) -> int:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the PostgreSQL cluster on the way out
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="KEY", help=f"modules to mutate (default: all): {', '.join(MODULES)}")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--no-tables", action="store_true", help="skip the module-level table mutants")
    parser.add_argument("--min-score", type=float, default=90.0, help="exit 1 if a module scores below this")
    parser.add_argument("--list", action="store_true", help="print the module map and exit")
    parser.add_argument("--report", action="store_true", help="only report mutmut's recorded results (no tables)")
    parser.add_argument("--retest", action="store_true", help="test only the recorded survivors again")
    parser.add_argument("--tables-only", action="store_true", help="run only the table mutants (function mutants: "
                        "what mutmut recorded, as --report)")
    parser.add_argument("--retest-with", metavar="TESTS", help="test the recorded survivors again against only these "
                        "of the module's tests (comma-separated pytest ids), then report")
    parser.add_argument("--unchecked", action="store_true", help="with --retest-with: also the mutants mutmut has "
                        "not tested yet (one the named tests miss counts as a survivor)")
    parser.add_argument("--sqlite-only", action="store_true", help="with --retest-with: leave out the PostgreSQL "
                        "variants of the named tests (faster; a mutant only they would kill counts as a survivor)")
    parser.add_argument("--tables-with", metavar="TESTS", help="run the table mutants against only these of the "
                        "module's tests (comma-separated pytest ids; a mutant they miss counts as a survivor)")
    parser.add_argument("--fork", action="store_true", help="with --retest-with: collect the named tests once and "
                        "test each mutant in a child forked from that session, running only the tests that reach its "
                        "function (found by one traced run): no pytest start-up per mutant")
    parser.add_argument("--functions", metavar="NAMES", help="with --retest-with: only the mutants of these functions "
                        "(comma-separated, e.g. the ones a change touched)")
    parser.add_argument("--limit", type=int, metavar="N", help="with --retest-with: test at most N mutants (with "
                        "--unchecked the first N of the fixed random order: a seeded sample)")
    args = parser.parse_args(argv)
    unknown = [k for k in args.modules if k not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r} (known: {', '.join(MODULES)})")
    if args.list:
        for key, module in MODULES.items():
            print(f"{key:24} {module.path:30} {' '.join(module.tests)}")
        return 0
    if args.retest_with:
        for key in args.modules:
            retest_with(key, MODULES[key], args.retest_with.split(","), args.unchecked, args.sqlite_only, args.limit,
                        args.fork, set(args.functions.split(",")) if args.functions else set())
        args.report = True
    args.report = args.report or args.tables_only
    tables_with = args.tables_with.split(",") if args.tables_with else None
    for key in args.modules if tables_with else ():
        unknown = [t for t in tables_with if t.split("::")[0] not in MODULES[key].tests]
        if unknown:
            parser.error(f"{unknown[0]} is not one of {key}'s tests")
    tallies = [run_module(k, MODULES[k], args.jobs, not args.no_tables, args.report, args.retest, args.tables_only,
                          tables_with, args.sqlite_only) for k in args.modules or MODULES]
    print("\nmodule                    mutants  killed  survived  equivalent  score")
    for t in tallies:
        print(f"{t.key:24} {t.total:8} {t.killed:7} {len(t.survivors):9} {len(t.equivalent):11}  {t.score:5.1f}%")
    return 0 if all(t.score >= args.min_score for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
