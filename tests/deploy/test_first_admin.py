"""The first admin is asked for whenever the storefront was (re)deployed, whatever the marker says (issue 14, case 3)."""

from __future__ import annotations

from pathlib import Path

from kitcore.sitedir import SiteDir
from kitctl.deploy.admin import IF_NO_ADMIN, create_first_admin, needs_first_admin
from tests.support.exec_fake import STDERR, STDOUT, FakeExecAPI


class FakeExec(FakeExecAPI):
    """The storefront's exec answers with `stdout`."""

    def __init__(self, stdout: bytes) -> None:
        super().__init__()
        self.stdout = stdout

    def answer(self, command: list[str]) -> list[tuple[int, bytes]]:
        return [(STDOUT, self.stdout)]


def marked(tmp_path: Path) -> Path:
    SiteDir(tmp_path).admin_created.parent.mkdir()
    SiteDir(tmp_path).admin_created.write_text("admin\n")
    return tmp_path


def test_a_recreated_storefront_is_asked_even_with_the_marker(tmp_path: Path) -> None:
    site = marked(tmp_path)
    assert needs_first_admin(site, ["db", "storefront"])  # the db volume was removed: all created again
    assert not needs_first_admin(site, ["proxy"])
    assert needs_first_admin(tmp_path / "new", [])  # no marker yet


def test_the_storefront_decides_and_an_existing_admin_shows_nothing(tmp_path: Path) -> None:
    api = FakeExec(b"")
    result = create_first_admin(api, "c1", marked(tmp_path), "admin")
    assert result.ok and result.output == "" and api.commands[0][-1] == IF_NO_ADMIN
    result = create_first_admin(FakeExec(b"generated-password-123\n"), "c1", tmp_path, "admin")
    assert result.ok and result.output == "generated-password-123"


def test_plugin_admin_on_a_deployed_site_runs_in_the_storefront(monkeypatch) -> None:
    """`kitctl plugins admin` without a database URL asks the running storefront (issue 14, case 4)."""
    import json
    from types import SimpleNamespace

    import pytest

    from kitcore.errors import InvalidInput
    from kitctl.deploy import admin, identity, operate

    monkeypatch.setattr(identity, "check_ours", lambda api, project: None)
    monkeypatch.setattr(operate, "running_container", lambda client, project, service: f"{project}-{service}")
    api = FakeExec(b'[{"code": "SPRING", "off": "10%"}]\n')
    rows = admin.plugin_action(SimpleNamespace(api=api), "kit-s1", "coupons", "add", {"code": "spring", "percent": "10"})
    assert rows == [{"code": "SPRING", "off": "10%"}]
    assert api.commands == [["python", "-m", "storefront", "plugin-admin", "coupons", "add",
                             json.dumps({"code": "spring", "percent": "10"})]]

    class Refusing(FakeExec):
        exit_code = 2

        def answer(self, command: list[str]) -> list[tuple[int, bytes]]:
            return [(STDERR, b"error: coupons needs feature 'coupons' (tier pro or higher); this licence is basic\n")]

    with pytest.raises(InvalidInput, match=r"^coupons needs feature 'coupons' \(tier pro or higher\)"):
        admin.plugin_action(SimpleNamespace(api=Refusing(b"")), "kit-s1", "coupons", "add", {"code": "X1Y"})
