"""Every exec whose output is read goes through kitctl.deploy.engine_exec.

docker-py's own readers (`Container.exec_run`, `APIClient.exec_start` without `detach`) drop output
the engine sends together with the response's headers: an exec then looks silent with exit code 0
(one CI run failed on it). engine_exec reads through that buffer; this keeps new code from going back.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kitcore", "kitctl", "hq", "agent", "storefront", "sitedb", "plugins", "demo", "tests", "bench", "scripts")
ALLOWED = {"kitctl/deploy/engine_exec.py", "tests/deploy/test_engine_exec.py",  # the reader, and its proof
           "tests/test_exec_reads.py"}


def _docker_py_reads(source: str) -> list[int]:
    """Lines calling `.exec_run(…)` or `.exec_start(…)` without `detach=True`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            detached = any(k.arg == "detach" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
            if node.func.attr == "exec_run" or (node.func.attr == "exec_start" and not detached):
                lines.append(node.lineno)
    return lines


def test_the_rule_sees_both_calls_and_lets_a_detached_start_through() -> None:
    source = "c.exec_run(['id'])\napi.exec_start(e)\napi.exec_start(e, detach=True)\nengine_exec.start(api, e)\n"
    assert _docker_py_reads(source) == [1, 2]


def test_no_exec_output_is_read_with_docker_py_s_own_readers() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED:
                continue
            offenders += [f"{rel}:{line}" for line in _docker_py_reads(path.read_text())]
    assert offenders == [], f"read exec output with kitctl.deploy.engine_exec (run, run_in, start): {offenders}"
