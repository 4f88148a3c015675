"""The site's plugin settings reach the storefront and the agent: plugins.toml bound, secrets files as secrets."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from kitcore.errors import InvalidInput
from kitctl.render import render_site
from kitctl.render.api import deliver_plugin_secrets, plan_site
from kitctl.render.escape import RenderError
from kitctl.render.plugin_config import CONTAINER_DIR, DEFAULT_CHOICE
from kitctl.render.structure import check_structure
from kitctl.render.yamlload import load_yaml
from plugins.site_config import PLUGINS_TOML, SiteChoice, read_choice, read_secrets, write_choice, write_secrets
from kitcore.sitedir import SiteDir

SECRET = "hunter2-do-not-leak-8c1f"
NOTIFY_TARGET = f"{CONTAINER_DIR}/secrets/plugins/notify.json"


def compose(site_dir: Path) -> dict[str, Any]:
    return load_yaml(SiteDir(site_dir).compose.read_text(encoding="utf-8"))


def test_storefront_and_agent_get_the_config_dir_and_a_default_plugins_toml(flags):
    result = render_site(flags)
    doc = compose(result.site_dir)
    for name in ("storefront", "agent"):
        service = doc["services"][name]
        assert service["environment"]["KIT_PLUGIN_CONFIG_DIR"] == CONTAINER_DIR
        assert {"type": "bind", "source": "./plugins.toml", "target": f"{CONTAINER_DIR}/plugins.toml",
                "read_only": True} in service["volumes"]
        assert not [s for s in service["secrets"] if isinstance(s, dict)]  # no plugin secrets file yet
    for name in ("proxy", "db"):
        assert "KIT_PLUGIN_CONFIG_DIR" not in (doc["services"][name].get("environment") or {})
        assert all("plugins.toml" not in json.dumps(v) for v in doc["services"][name]["volumes"])
    choice_file = result.site_dir / PLUGINS_TOML
    assert choice_file.read_text() == DEFAULT_CHOICE and stat.S_IMODE(choice_file.stat().st_mode) == 0o644
    assert read_choice(result.site_dir) == SiteChoice()  # the default means "nothing chosen"
    assert not (result.site_dir / "secrets" / "plugins").exists()


def test_render_never_replaces_the_choices_kitctl_plugins_wrote(flags):
    site_dir = Path(flags["site_dir"])
    site_dir.mkdir()
    write_choice(site_dir, SiteChoice(disabled=["notify"], settings={"coupons": {"max_codes": 5}}))
    chosen = (site_dir / PLUGINS_TOML).read_bytes()
    render_site(flags)
    assert (site_dir / PLUGINS_TOML).read_bytes() == chosen
    render_site({**flags, "name": "另一个名字"})  # a change: the directory is swapped
    assert (site_dir / PLUGINS_TOML).read_bytes() == chosen
    assert render_site({**flags, "name": "另一个名字"}).changed is False


def test_a_missing_plugins_toml_is_written_again_on_the_next_render(flags):
    first = render_site(flags)
    (first.site_dir / PLUGINS_TOML).unlink()
    again = render_site(flags)
    assert again.changed and (first.site_dir / PLUGINS_TOML).read_text() == DEFAULT_CHOICE


def test_each_plugin_secrets_file_present_becomes_a_secret_of_storefront_and_agent_only(flags):
    site_dir = Path(flags["site_dir"])
    render_site(flags)
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    render_site(flags)
    doc = compose(site_dir)
    assert doc["secrets"]["plugin-notify"] == {"file": "./secrets/plugins/notify.json"}
    assert not [k for k in doc["secrets"] if k.startswith("plugin-") and k != "plugin-notify"]  # coupons has none
    for name in ("storefront", "agent"):
        assert doc["services"][name]["secrets"][-1] == {"source": "plugin-notify", "target": NOTIFY_TARGET}
    assert doc["services"]["db"]["secrets"] == ["db_password"] and "secrets" not in doc["services"]["proxy"]
    lock = json.loads(SiteDir(site_dir).lock_file.read_text())
    assert lock["secrets"]["plugin-notify"] == "present"


def test_the_deploy_reader_sees_the_secret_mounts_at_their_targets(flags):
    from kitctl.deploy.compose import load_project

    site_dir = Path(flags["site_dir"])
    site_dir.mkdir()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    render_site(flags)
    project = load_project(site_dir, "pcfg")
    for name in ("storefront", "agent"):
        service = project.services[name]
        secret = [m for m in service.secrets() if m.target == NOTIFY_TARGET]
        assert len(secret) == 1 and secret[0].source == str((site_dir / "secrets/plugins/notify.json").resolve())
        assert ("KIT_PLUGIN_CONFIG_DIR", CONTAINER_DIR) in service.environment
        binds = [m for m in service.mounts if m.kind == "bind" and m.target == f"{CONTAINER_DIR}/plugins.toml"]
        assert binds and binds[0].read_only and binds[0].source == str((site_dir / PLUGINS_TOML).resolve())
    assert not [m for m in project.services["db"].mounts if CONTAINER_DIR in m.target]


def test_secret_values_are_never_in_compose_lock_summary_or_any_rendered_file(flags):
    site_dir = Path(flags["site_dir"])
    site_dir.mkdir()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET, "smtp_password": SECRET[::-1]})
    result = render_site(flags)
    for value in (SECRET, SECRET[::-1]):
        assert value not in json.dumps(result.summary(), ensure_ascii=False)
        for name, data in result.rendered.files.items():
            assert value.encode() not in data, name
        assert value not in (site_dir / PLUGINS_TOML).read_text()


def test_plugin_secrets_survive_renders_with_mode_0600_in_a_0700_dir(flags):
    site_dir = Path(flags["site_dir"])
    render_site(flags)
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    render_site({**flags, "name": "改名"})  # a changed render swaps the whole directory
    folder = site_dir / "secrets" / "plugins"
    assert read_secrets(site_dir, "notify") == {"webhook_secret": SECRET}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "notify.json").stat().st_mode) == 0o600


def test_a_file_no_plugin_could_own_is_refused_and_nothing_changes(flags):
    site_dir = Path(flags["site_dir"])
    render_site(flags)
    before = SiteDir(site_dir).compose.read_bytes()
    (site_dir / "secrets" / "plugins").mkdir(mode=0o700)
    (site_dir / "secrets" / "plugins" / "Bad Name.json").write_text("{}")
    with pytest.raises(InvalidInput, match=r"^secrets/plugins/Bad Name.json is not named after a plugin"):
        render_site({**flags, "name": "改名"})
    assert SiteDir(site_dir).compose.read_bytes() == before


def test_a_symlink_among_plugin_secrets_is_refused(flags, tmp_path):
    site_dir = Path(flags["site_dir"])
    render_site(flags)
    (site_dir / "secrets" / "plugins").mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    (site_dir / "secrets" / "plugins" / "notify.json").symlink_to(elsewhere)
    with pytest.raises(InvalidInput, match=r"^secrets/plugins/notify.json is not a regular file$"):
        render_site({**flags, "name": "改名"})


def test_plan_shows_the_new_secret_entry_before_render_writes_it(flags):
    site_dir = Path(flags["site_dir"])
    render_site(flags)
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    plan = plan_site(flags)
    assert {f.path for f in plan.files} == {"compose.yaml", "kitctl.lock"}
    assert {n for n, change in plan.services.items() if change != "unchanged"} == {"storefront", "agent"}
    assert SECRET not in json.dumps(plan.to_json(), ensure_ascii=False)


def test_deliver_plugin_secrets_renders_only_when_the_set_of_files_changes(flags):
    site_dir = Path(flags["site_dir"])
    assert deliver_plugin_secrets(site_dir) is False  # never rendered: nothing to do
    render_site(flags)
    assert deliver_plugin_secrets(site_dir) is False
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    assert deliver_plugin_secrets(site_dir) is True
    assert "plugin-notify" in compose(site_dir)["secrets"]
    compose_bytes = SiteDir(site_dir).compose.read_bytes()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET + "-rotated"})  # contents only: up applies it
    assert deliver_plugin_secrets(site_dir) is False
    assert SiteDir(site_dir).compose.read_bytes() == compose_bytes


def _rendered_with_notify(flags) -> tuple[dict[str, Any], Any]:
    site_dir = Path(flags["site_dir"])
    site_dir.mkdir()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    result = render_site(flags)
    return result.rendered.compose, result.rendered.plugins


def _without_config_dir(doc):
    del doc["services"]["agent"]["environment"]["KIT_PLUGIN_CONFIG_DIR"]


def _secret_to_db(doc):
    doc["services"]["db"]["secrets"].append({"source": "plugin-notify", "target": "/tmp/x"})


def _secret_elsewhere(doc):
    doc["services"]["storefront"]["secrets"][-1]["target"] = "/run/secrets/notify.json"


def _secret_file_outside(doc):
    doc["secrets"]["plugin-notify"]["file"] = "../../etc/shadow"


def _writable_choice(doc):
    for mount in doc["services"]["storefront"]["volumes"]:
        if mount.get("source") == "./plugins.toml":
            mount["read_only"] = False


def _extra_mount_in_config_dir(doc):
    doc["services"]["agent"]["volumes"].append({"type": "bind", "source": "./secrets", "target": f"{CONTAINER_DIR}/secrets"})


def _config_dir_on_proxy(doc):
    doc["services"]["proxy"]["volumes"].append({"type": "bind", "source": "./plugins.toml", "target": f"{CONTAINER_DIR}/plugins.toml"})


def _undeclared_plugin_secret(doc):
    doc["secrets"]["plugin-coupons"] = {"file": "./secrets/plugins/coupons.json"}


@pytest.mark.parametrize("tamper", [_without_config_dir, _secret_to_db, _secret_elsewhere, _secret_file_outside,
                                    _writable_choice, _extra_mount_in_config_dir, _config_dir_on_proxy,
                                    _undeclared_plugin_secret])
def test_structure_check_refuses_any_other_shape_of_the_plugin_settings(flags, tamper):
    doc, plugins = _rendered_with_notify(flags)
    check_structure(doc, plugins, ("notify",))  # as rendered: fine
    bad = copy.deepcopy(doc)
    tamper(bad)
    with pytest.raises(RenderError):
        check_structure(bad, plugins, ("notify",))


def test_structure_check_needs_the_secrets_files_it_was_told_of(flags):
    doc, plugins = _rendered_with_notify(flags)
    with pytest.raises(RenderError):
        check_structure(doc, plugins, ())
    with pytest.raises(RenderError):
        check_structure(doc, plugins, ("notify", "coupons"))


def test_compose_with_plugin_secrets_is_valid_compose(flags):
    """The Compose spec schema, and Debian's docker-compose when installed, accept the long-syntax secrets."""
    import os
    import shutil
    import subprocess

    from tests.render.test_render import compose_validator

    site_dir = Path(flags["site_dir"])
    site_dir.mkdir()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    render_site(flags)
    assert sorted(compose_validator().iter_errors(compose(site_dir)), key=str) == []
    binary = shutil.which("docker-compose")
    if binary is None:
        return
    out = subprocess.run([binary, "-f", "compose.yaml", "config"], cwd=site_dir, capture_output=True, text=True,
                         timeout=60, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    resolved = load_yaml(out.stdout)
    assert {"source": "plugin-notify", "target": NOTIFY_TARGET} in resolved["services"]["agent"]["secrets"]
    assert SECRET not in out.stdout


def test_the_deploy_fingerprints_change_for_storefront_and_agent_only(flags):
    """What makes `kitctl up` recreate exactly the services that read the settings (kitctl.deploy.container_hashes)."""
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.container_hashes import config_hash, mounts_hash

    site_dir = Path(flags["site_dir"])
    site_dir.mkdir()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET})
    render_site(flags)

    def fingerprints() -> dict[str, tuple[str, str]]:
        project = load_project(site_dir, "pcfg")
        return {name: (config_hash(project, name), mounts_hash(project, name)) for name in project.services}

    def changed(before: dict, after: dict) -> set[str]:
        return {name for name in before if before[name] != after[name]}

    start = fingerprints()
    write_secrets(site_dir, "notify", {"webhook_secret": SECRET + "-rotated"})
    rotated = fingerprints()
    assert changed(start, rotated) == {"storefront", "agent"}
    write_choice(site_dir, SiteChoice(settings={"notify": {"retries": 1}}))
    assert changed(rotated, fingerprints()) == {"storefront", "agent"}
    assert render_site(flags).changed is False  # contents only: compose.yaml stays as it is
