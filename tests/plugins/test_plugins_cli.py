"""`kitctl plugins …` through the real CLI entry: tables, --json, refusals with exit code 2, secrets."""

from __future__ import annotations

import json
import stat

import pytest
from kitcore.sitedir import SiteDir



def licence(site_dir, token: str) -> None:
    SiteDir(site_dir).licence_token.write_text(token)


def test_list_shows_installed_plugins_with_licence_state(kit, site_dir, issue):
    licence(site_dir, issue("pro"))
    code, out, _ = kit("list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["coupons"]["licensed"] and rows["coupons"]["loaded"] and rows["coupons"]["enabled"]
    assert not rows["regional-pricing"]["licensed"] and rows["regional-pricing"]["needs_tier"] == "flagship"
    code, out, _ = kit("list")
    assert code == 0 and "coupons" in out and "needs flagship" in out and "regional-pricing" in out


def test_enable_refuses_an_unlicensed_plugin_naming_the_tier(kit, site_dir, issue):
    licence(site_dir, issue("basic"))
    code, out, err = kit("enable", "coupons")
    assert code == 2
    assert "error: coupons needs feature 'coupons' (tier pro or higher); this licence is basic" in err
    assert "Traceback" not in err and not SiteDir(site_dir).plugins_toml.exists()


def test_disable_then_enable_is_recorded_in_plugins_toml(kit, site_dir, issue):
    licence(site_dir, issue("pro"))
    assert kit("disable", "notify")[0] == 0
    assert 'disabled = ["notify"]' in SiteDir(site_dir).plugins_toml.read_text()
    rows = {r["name"]: r for r in json.loads(kit("list", "--json")[1])}
    assert not rows["notify"]["enabled"] and not rows["notify"]["loaded"]
    code, out, _ = kit("enable", "notify")
    assert code == 0 and "notify enabled" in out
    assert 'disabled = []' in SiteDir(site_dir).plugins_toml.read_text()


def test_config_stores_secrets_0600_and_never_prints_them(kit, site_dir, issue):
    licence(site_dir, issue("pro"))
    code, out, err = kit("config", "notify", "webhook_url=https://hooks.example.org/kit", "webhook_secret=hunter2-very-secret", "--json")
    assert code == 0, err
    assert json.loads(out)["webhook_secret"] == "***" and "hunter2" not in out + err
    secret_file = site_dir / "secrets" / "plugins" / "notify.json"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert json.loads(secret_file.read_text()) == {"webhook_secret": "hunter2-very-secret"}
    assert "hunter2" not in SiteDir(site_dir).plugins_toml.read_text()
    for argv in (("config", "notify"), ("list", "--json"), ("list",)):
        code, out, err = kit(*argv)
        assert code == 0 and "hunter2" not in out + err


@pytest.mark.parametrize("argv, message", [
    (("config", "notify", "nonsense"), "expected key=value"),
    (("config", "notify", "colour=red"), "notify has no setting 'colour'"),
    (("config", "notify", "retries=99"), "notify settings refused: retries:"),
    (("config", "notify", "webhook_url=https://x.example"), "webhook_url needs webhook_secret"),
    (("config", "ghost", "a=b"), "no plugin named 'ghost' is installed"),
    (("enable", "ghost"), "no plugin named 'ghost' is installed"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(kit, site_dir, issue, argv, message):
    licence(site_dir, issue("pro"))
    code, out, err = kit(*argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not SiteDir(site_dir).plugins_toml.exists() and not (site_dir / "secrets" / "plugins").exists()


def test_a_licence_that_does_not_verify_is_refused(kit, site_dir):
    licence(site_dir, "eyJhbGciOiJub25lIn0.e30.")
    code, _, err = kit("list")
    assert code == 2 and err.startswith("error: ")


def test_admin_adds_and_lists_coupons_on_the_site_database(kit, site_dir, issue, site_db):
    licence(site_dir, issue("pro"))
    code, out, err = kit("admin", "coupons", "add", "code=WELCOME", "percent=15", "max_uses=50", "--database-url", site_db, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["code"] == "WELCOME"
    code, out, _ = kit("admin", "coupons", "list", "--database-url", site_db)
    assert code == 0 and "WELCOME" in out and "15%" in out
    code, _, err = kit("admin", "coupons", "explode", "--database-url", site_db)
    assert code == 2 and "coupons has no action 'explode'" in err


@pytest.mark.parametrize("url", ["not a url", "postgresql+psycopg://kit:pw-s3cret@127.0.0.1:1/site"])
def test_admin_with_an_unusable_database_is_one_line_without_the_password(kit, site_dir, issue, url):
    licence(site_dir, issue("pro"))
    code, out, err = kit("admin", "coupons", "list", "--database-url", url)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "pw-s3cret" not in out + err and "Traceback" not in err



def test_an_action_answering_datetimes_decimals_and_uuids_prints_as_json(site_dir, issue, site_db, capsys):
    """A third-party action's rows as a database hands them back (`--json` crashed: datetime is not JSON
    serializable); the storefront's plugin-admin goes through the same AdminAction.rows."""
    from kitctl.console import print_json
    from kitctl.siteplugins import SiteLicence, run_admin
    from tests.plugins.fixture_plugins import DatedPlugin, source

    rows = run_admin(site_dir, "dated", "show", [], site_db, SiteLicence("pro", ("coupons",)), sources=[source(DatedPlugin)])
    print_json(rows)
    assert json.loads(capsys.readouterr().out) == [{
        "when": "2026-03-01T08:30:00+00:00", "day": "2026-03-01", "balance": "12.50",
        "id": "00000000-0000-0000-0000-000000000007", "tags": ["2026-03-01T08:30:00+00:00"],
    }]
