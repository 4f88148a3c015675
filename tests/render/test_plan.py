"""`plan_site`: exact diffs and services to recreate, without writing anything."""

from __future__ import annotations

from pathlib import Path

from kitctl.render import plan_site, render_site

from .conftest import snapshot


def test_plan_on_an_empty_dir_creates_everything(flags):
    plan = plan_site(flags)
    assert not Path(flags["site_dir"]).exists()
    assert plan.services == {"agent": "create", "db": "create", "proxy": "create", "storefront": "create"}
    assert {f.change for f in plan.files} == {"added"}
    assert "db_password" in plan.secrets_to_create
    binary = next(f for f in plan.files if f.path == "branding/logo.png")
    assert binary.diff == "Binary file branding/logo.png added\n"


def test_plan_with_unchanged_inputs_shows_nothing(flags):
    render_site(flags)
    plan = plan_site(flags)
    assert not plan.changed and plan.files == [] and plan.secrets_to_create == []
    assert set(plan.services.values()) == {"unchanged"}


def test_plan_shows_the_exact_diff_after_a_colour_change_and_writes_nothing(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    before = snapshot(site)
    plan = plan_site({**flags, "primary_colour": "#000000"})
    assert snapshot(site) == before
    theme = next(f for f in plan.files if f.path == "theme.css")
    assert theme.change == "modified"
    assert theme.diff == (
        "--- a/theme.css\n"
        "+++ b/theme.css\n"
        "@@ -1,6 +1,6 @@\n"
        " /* Rendered by kitctl: the site theme. Change the colours and re-render. */\n"
        " :root {\n"
        "-  --kit-primary: #1F6FEB;\n"
        "+  --kit-primary: #000000;\n"
        "   --kit-primary-contrast: #FFFFFF;\n"
        "   --kit-accent: #F59E0B;\n"
        "   --kit-accent-contrast: #000000;\n"
    )
    site_json = next(f for f in plan.files if f.path == "site.json")
    assert [l for l in site_json.diff.splitlines() if l[:1] in "+-" and l[:3] not in ("---", "+++")] == [
        '-    "primary": "#1F6FEB"',
        '+    "primary": "#000000"',
    ]
    assert {f.path for f in plan.files} == {"theme.css", "site.json", "compose.yaml", "kitctl.lock"}
    # Only the storefront (site.json, theme.css) is recreated: not the proxy (its files did not change, so the
    # buyers' connections and the host ports stay with it), not the db, not the agent (agent.json).
    assert plan.services == {"agent": "unchanged", "db": "unchanged", "proxy": "unchanged", "storefront": "recreate"}

    # The plan is exactly what the render then does.
    render_site({**flags, "primary_colour": "#000000"})
    assert "--kit-primary: #000000;" in (site / "theme.css").read_text()
    assert not plan_site({**flags, "primary_colour": "#000000"}).changed


def test_plan_names_only_the_agent_when_the_hq_url_changes(flags):
    render_site(flags)
    plan = plan_site({**flags, "hq_url": "https://hq.example.cn"})
    assert plan.services == {"agent": "recreate", "db": "unchanged", "proxy": "unchanged", "storefront": "unchanged"}
    assert {f.path for f in plan.files} == {"compose.yaml", "kitctl.lock"}


def test_plan_reports_a_missing_secret(flags):
    render_site(flags)
    (Path(flags["site_dir"]) / "secrets" / "site_key").unlink()
    plan = plan_site(flags)
    assert plan.secrets_to_create == ["site_key"] and plan.changed
