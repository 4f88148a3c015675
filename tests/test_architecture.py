"""The one direction of imports (docs/architecture.md), read from the source with `ast`.

    kitcore  <-  sitedb  <-  plugins  <-  agent, storefront, hq  ;  kitctl  <-  demo

Every import counts, including those inside functions and under TYPE_CHECKING:
a lazy import is still a dependency a newcomer has to know about.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kitcore", "sitedb", "plugins", "agent", "storefront", "hq", "kitctl", "demo")

# What each package may import from the others (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "kitcore": frozenset(),
    "sitedb": frozenset({"kitcore"}),
    "plugins": frozenset({"kitcore", "sitedb"}),
    "agent": frozenset({"kitcore", "sitedb", "plugins"}),
    "storefront": frozenset({"kitcore", "sitedb", "plugins"}),
    "hq": frozenset({"kitcore"}),
    "kitctl": frozenset({"kitcore", "sitedb", "plugins", "hq"}),
    "demo": frozenset({"kitcore", "kitctl", "hq", "sitedb"}),
}
# Inside kitctl, only the HQ operator commands reach into the HQ server's code.
HQ_GATEWAYS = frozenset({"kitctl.cli.hq"})


def source_modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the kit's packages (migrations excluded)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The kit module that `import name` loads (the longest known prefix), or None for a library."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str, path: Path) -> list[str]:
    """Every dotted name the module imports, relative imports resolved, `from a import b` as `a.b`."""
    is_package = path.name == "__init__.py"
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names.extend(f"{origin}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """module -> the kit modules it imports (a submodule named in `from pkg import sub` counts as itself)."""
    modules = source_modules(root)
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for name in _imported_names(module, path):
            target = _owner(name, modules)
            if target and target != module:
                graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    nodes = set(graph) | {t for targets in graph.values() for t in targets}
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def collapse(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages (depth 1) or sub-packages (depth 2)."""
    out: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        a = ".".join(source.split(".")[:depth])
        for target in targets:
            b = ".".join(target.split(".")[:depth])
            if a != b:
                out[a].add(b)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_cycle_between_files(graph):
    assert cycles(graph) == []


def test_no_cycle_between_packages_or_subpackages(graph):
    assert cycles(collapse(graph, 1)) == []
    assert cycles(collapse(graph, 2)) == []


def test_each_package_imports_only_what_lies_below_it(graph):
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if target.split(".")[0] != source.split(".")[0]
        and target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    )
    assert wrong == []


def test_only_the_hq_operator_commands_import_hq_from_the_cli(graph):
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        if source.startswith("kitctl") and source not in HQ_GATEWAYS
        for target in targets
        if target.split(".")[0] == "hq"
    )
    assert wrong == []


# The checks themselves must be able to fail: a small tree with the faults they look for.
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_the_graph_sees_lazy_relative_and_type_checking_imports(tmp_path):
    root = _tree(tmp_path, {
        "kitcore/__init__.py": "",
        "kitcore/a.py": "def f():\n    from . import b\n",
        "kitcore/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kitcore.a import f\n",
        "kitctl/__init__.py": "import json\n",
        "hq/__init__.py": "from kitctl import x\n",
    })
    found = import_graph(root)
    assert found["kitcore.a"] == {"kitcore.b"} and found["kitcore.b"] == {"kitcore.a"}
    assert cycles(found) == [["kitcore.a", "kitcore.b"]]
    assert found["hq"] == {"kitctl"} and "kitctl" not in found


def test_package_cycles_are_seen_through_files_that_are_not_cyclic(tmp_path):
    root = _tree(tmp_path, {
        "kitctl/__init__.py": "", "kitctl/x.py": "import hq.y\n",
        "hq/__init__.py": "", "hq/y.py": "", "hq/z.py": "import kitctl\n",
    })
    found = import_graph(root)
    assert cycles(found) == []
    assert cycles(collapse(found, 1)) == [["hq", "kitctl"]]


def test_no_module_name_stands_twice_in_the_kernel_or_the_cli():
    """`plan.py` in two places of one package sends a reader to the wrong file; names say what each holds."""
    for package in ("kitcore", "kitctl"):
        names = [m.rpartition(".")[2] for m, path in source_modules().items()
                 if m.split(".")[0] == package and path.name != "__init__.py"]
        assert sorted({n for n in names if names.count(n) > 1}) == [], package
