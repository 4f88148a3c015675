"""The plugin docs' code samples are run (issue 28): the tutorial's plugin and tests are the scaffold's, and
every Python sample of docs/plugins-tutorial.md and docs/plugins.md executes."""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import pytest

from kitctl.plugin_scaffold import PLUGIN, PYPROJECT, TESTS, package_names
from tests.support.cli import kitctl

DOCS = Path(__file__).resolve().parents[2] / "docs"
TUTORIAL = DOCS / "plugins-tutorial.md"
NAMES = package_names("loyalty-points")


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_tutorials_package_is_exactly_what_the_scaffold_writes() -> None:
    plugin, tests = blocks(TUTORIAL, "python")
    assert plugin == PLUGIN.format(**NAMES)
    assert tests == TESTS.format(**NAMES)
    assert blocks(TUTORIAL, "toml") == [PYPROJECT.format(**NAMES)]


def test_the_tutorials_scaffold_command_prints_what_it_shows(tmp_path: Path) -> None:
    (console,) = [b for b in blocks(TUTORIAL, "console") if "plugins new" in b]
    command, shown = console.splitlines()
    args = command.removeprefix("$ kitctl ").split()
    done = kitctl(*args[:-1], str(tmp_path))
    assert done.stdout.strip().replace(str(tmp_path) + "/", "") == shown


def test_the_tutorials_plugin_and_its_tests_run(tmp_path_factory, monkeypatch) -> None:
    plugin, tests = blocks(TUTORIAL, "python")
    module = types.ModuleType(NAMES["module"])
    exec(compile(plugin, f"{TUTORIAL.name}:plugin", "exec"), module.__dict__)  # noqa: S102 - the doc's own code
    monkeypatch.setitem(sys.modules, NAMES["module"], module)
    namespace: dict = {"__name__": "tutorial_tests"}
    exec(compile(tests, f"{TUTORIAL.name}:tests", "exec"), namespace)  # noqa: S102
    ran = []
    for name, test in namespace.items():
        if name.startswith("test_") and callable(test):
            wants = inspect.signature(test).parameters
            test(**({"tmp_path": tmp_path_factory.mktemp(name[:20])} if "tmp_path" in wants else {}))
            ran.append(name)
    assert len(ran) == 3


@pytest.mark.parametrize("index", range(len(blocks(DOCS / "plugins.md", "python"))))
def test_every_python_sample_of_the_plugin_reference_runs(index: int) -> None:
    sample = blocks(DOCS / "plugins.md", "python")[index]
    namespace: dict = {"__name__": f"plugins_md_{index}"}
    exec(compile(sample, f"plugins.md:sample {index}", "exec"), namespace)  # noqa: S102 - the doc's own code
    from plugins.contract import Plugin, check_manifest

    for value in list(namespace.values()):
        if isinstance(value, type) and issubclass(value, Plugin) and value is not Plugin:
            check_manifest(value.manifest)
