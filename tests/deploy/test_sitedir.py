"""One owner for the site directory's layout and for 'which directory' and 'does it need rendering'."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kitcore.sitedir import SiteDir, chosen_site_dir

ROOT = Path(__file__).resolve().parents[2]


def test_which_site_directory_flag_then_environment_then_default() -> None:
    assert chosen_site_dir("given", {"KITCTL_SITE_DIR": "env"}) == Path("given")
    assert chosen_site_dir(None, {"KITCTL_SITE_DIR": "env"}) == Path("env")
    assert chosen_site_dir("", {}) == Path("site")
    assert SiteDir.chosen(None, {}).root == Path("site")


def test_the_cli_fast_path_and_the_renderer_choose_the_same_directory(tmp_path: Path, monkeypatch) -> None:
    """`up` (full CLI), the no-op fast path and the renderer's site.toml lookup all follow KITCTL_SITE_DIR."""
    from kitctl.cli.deploy import _render_if_asked
    from kitctl.entry import plain_up
    from kitctl.site.load import load_site_inputs

    site = tmp_path / "chosen"
    SiteDir(site).root.mkdir()
    SiteDir(site).compose.write_text("services: {}\n")
    SiteDir(site).site_toml.write_text('name = "from the chosen dir"\n')
    monkeypatch.setenv("KITCTL_SITE_DIR", str(site))
    assert load_site_inputs({}).name == "from the chosen dir"
    assert plain_up([]) is None  # a site.toml there: the full CLI renders first
    SiteDir(site).site_toml.unlink()
    assert _render_if_asked({"site_dir": None}, dry_run=False) == site  # rendered, no inputs: deploy as is


def test_needs_render_when_inputs_are_given_a_site_toml_exists_or_nothing_is_rendered(tmp_path: Path) -> None:
    site = SiteDir(tmp_path)
    assert site.needs_render() and not site.is_rendered
    site.compose.write_text("services: {}\n")
    assert not site.needs_render() and site.needs_render(inputs_given=True)
    site.site_toml.write_text("")
    assert site.needs_render()


def test_the_write_lock_sits_beside_the_directory(tmp_path: Path) -> None:
    site = SiteDir(tmp_path / "shop")
    with site.locked():
        assert (tmp_path / ".shop.lock").is_file()
    assert not site.root.exists()  # the directory itself may be swapped: the lock is never inside it


@pytest.mark.parametrize("package", ["kitctl", "kitcore", "storefront", "agent", "plugins", "hq", "demo"])
def test_the_licence_token_path_is_spelled_only_by_the_site_directory(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "secrets/licence_token" in node.value:
                offenders.append(str(path.relative_to(ROOT)))
            if (isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant) and node.right.value == "licence_token"
                    and isinstance(node.left, ast.BinOp) and getattr(node.left.right, "value", None) == "secrets"):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_kernel_layout_module_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "kitcore" / "sitedir.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "contextlib", "dataclasses", "fcntl", "os", "pathlib", "typing"}
