"""`render_site`: the directory it writes, validity, idempotence, secrets, atomicity."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from kitcore.errors import InvalidInput, KitError
from kitctl.render import compose_hash, load_compose, render_site
from kitctl.render.escape import compose_unescape
from kitctl.render.structure import SECRET_NAMES

from .conftest import snapshot
from kitcore.sitedir import SiteDir

SCHEMA = Path(__file__).resolve().parent.parent / "data" / "compose-spec.json"


def compose_validator():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def test_render_writes_the_site_directory(flags):
    result = render_site(flags)
    site = Path(flags["site_dir"])
    assert result.changed
    for name in ("compose.yaml", "Caddyfile", "site.json", "hq-keys.json", "kitctl.lock",
                 "branding/logo.png", "theme.css", "branding/offline.html"):
        assert (site / name).is_file(), name
    compose = load_compose(site)
    assert set(compose["services"]) == {"proxy", "storefront", "agent", "db"}
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["restart"] == "unless-stopped"
        assert set(service["deploy"]["resources"]["limits"]) == {"cpus", "memory"}
        assert service["image"].endswith(f"kitctl/{name}:0.1.0")
    assert compose["services"]["proxy"]["ports"] == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    assert compose["services"]["agent"]["ports"] == ["127.0.0.1:19464:9464"]
    assert compose["services"]["proxy"]["depends_on"] == {"storefront": {"condition": "service_healthy"}}
    assert compose["services"]["storefront"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert compose["services"]["db"]["healthcheck"]["test"][1] == "pg_isready"
    config = json.loads(SiteDir(site).site_json.read_text())
    assert config["name"] == "星辰游戏"
    assert config["domain"] == "商店.example.cn" and config["domain_ascii"] == "xn--czrs0t.example.cn"
    assert config["licence"]["tier"] == "pro" and config["logo_url"] == "/branding/logo.png"
    assert "xn--czrs0t.example.cn {" in (site / "Caddyfile").read_text()


def test_compose_validates_against_the_compose_spec_schema(flags, tmp_path):
    render_site({**flags, "hq_network": "kit-hq", "data_dir": str(tmp_path / "data"), "tls": "off",
                 "hq_url": "http://hq:8600", "registry": "127.0.0.1:5000", "image_tag": "dev"})
    doc = load_compose(flags["site_dir"])
    errors = sorted(compose_validator().iter_errors(doc), key=str)
    assert errors == []
    assert doc["networks"]["hq"] == {"external": True, "name": "kit-hq"}
    assert doc["services"]["agent"]["environment"]["KIT_HQ_URL"] == "http://hq:8600"
    assert doc["services"]["db"]["image"] == "127.0.0.1:5000/kitctl/db:dev"
    assert doc["volumes"]["db-data"]["driver_opts"]["device"] == str(tmp_path / "data" / "db-data")
    assert doc["services"]["proxy"]["ports"] == ["127.0.0.1:8080:80"]


def test_the_schema_check_can_fail(flags):
    render_site(flags)
    doc = load_compose(flags["site_dir"])
    doc["services"]["db"]["privileged_mode"] = True
    assert list(compose_validator().iter_errors(doc))


def _docker_compose() -> str | None:
    found = shutil.which("docker-compose")
    if found is None and os.environ.get("CI"):
        pytest.fail("docker-compose (Debian's v1) is required in CI: apt-get install docker-compose")
    return found


@pytest.mark.parametrize("name", ["星辰 \"游戏\" ${HOME} $$x: #a", "a'b {{ x }} &anchor *ref", "plain"])
def test_docker_compose_config_accepts_it_and_keeps_values_literal(flags, name):
    binary = _docker_compose()
    if binary is None:
        pytest.skip("docker-compose not installed (not CI)")
    render_site({**flags, "name": name})
    out = subprocess.run([binary, "-f", "compose.yaml", "config"], cwd=flags["site_dir"], capture_output=True,
                         text=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert compose_unescape(resolved["services"]["proxy"]["labels"]["com.kitctl.site-name"]) == name
    assert set(resolved["services"]) == {"proxy", "storefront", "agent", "db"}


def test_rerender_is_byte_identical_and_touches_nothing(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    before = snapshot(site)
    again = render_site(dict(flags))
    assert not again.changed
    assert snapshot(site) == before  # same bytes, modes and mtimes


def test_rerender_after_deleting_a_file_restores_the_same_bytes(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    before = {k: v[0] for k, v in snapshot(site).items()}
    SiteDir(site).compose.unlink()
    assert render_site(flags).changed
    assert {k: v[0] for k, v in snapshot(site).items()} == before


def test_secrets_are_created_once_mode_0600_and_survive(flags, make_licence):
    first = render_site(flags)
    secrets = Path(flags["site_dir"]) / "secrets"
    assert sorted(first.secrets_created) == sorted(SECRET_NAMES)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    values = {}
    for name in SECRET_NAMES:
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
        values[name] = (secrets / name).read_bytes()
    assert values["database_url"].startswith(b"postgresql+psycopg://kit:")
    assert values["database_url"].endswith(b"@db:5432/kit")
    assert len(__import__("base64").b64decode(values["site_key"])) == 32

    changed = render_site({**flags, "primary_colour": "#123456"})
    assert changed.changed and changed.secrets_created == []
    new_licence = make_licence("pro", ("game", "phone"))
    render_site({**flags, "licence": f"@{new_licence}"})
    for name in SECRET_NAMES:
        if name == "licence_token":
            assert (secrets / name).read_bytes() == new_licence.read_bytes().strip()
        else:
            assert (secrets / name).read_bytes() == values[name], name
    lock = (Path(flags["site_dir"]) / "kitctl.lock").read_text()
    for name in SECRET_NAMES:
        assert values[name].decode() not in lock


def test_a_missing_secret_is_recreated_alone(flags):
    render_site(flags)
    secrets = Path(flags["site_dir"]) / "secrets"
    kept = (secrets / "db_password").read_bytes()
    (secrets / "agent_token").unlink()
    result = render_site(flags)
    assert result.secrets_created == ["agent_token"]
    assert (secrets / "db_password").read_bytes() == kept


def test_the_licensees_own_files_are_kept(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    SiteDir(site).site_toml.write_text('contact = "from toml"\n')
    (site / "notes").mkdir()
    (site / "notes" / "todo.txt").write_text("keep me")
    render_site({**flags, "accent_colour": "#000000"})
    assert (site / "notes" / "todo.txt").read_text() == "keep me"
    assert SiteDir(site).site_toml.is_file()
    assert not list(site.parent.glob(".site.new-*")) and not list(site.parent.glob(".site.old-*"))


def test_a_logo_change_removes_the_old_logo(flags, tmp_path):
    from .conftest import SVG_OK

    render_site(flags)
    svg = tmp_path / "brand.svg"
    svg.write_bytes(SVG_OK)
    render_site({**flags, "logo": str(svg)})
    branding = Path(flags["site_dir"]) / "branding"
    assert sorted(p.name for p in branding.iterdir()) == ["logo.svg", "offline.html"]


def test_invalid_input_leaves_the_previous_directory_intact(flags, tmp_path):
    render_site(flags)
    site = Path(flags["site_dir"])
    before = snapshot(site)
    bad_logo = tmp_path / "evil.svg"
    bad_logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    with pytest.raises(InvalidInput):
        render_site({**flags, "logo": str(bad_logo), "primary_colour": "#000000"})
    assert snapshot(site) == before


def test_a_failure_while_writing_leaves_the_previous_directory_intact(flags, monkeypatch):
    render_site(flags)
    site = Path(flags["site_dir"])
    before = snapshot(site)

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kitctl.render.writer.ensure_secrets", disk_full)
    with pytest.raises(KitError, match="No space left on device; the previous one is unchanged"):
        render_site({**flags, "primary_colour": "#000000"})
    assert snapshot(site) == before
    assert not list(site.parent.glob(".site.new-*")) and not list(site.parent.glob(".site.old-*"))


def test_a_site_dir_that_is_a_file_is_refused(flags):
    Path(flags["site_dir"]).write_text("not a dir")
    with pytest.raises(InvalidInput, match="(?i)not a directory"):
        render_site(flags)


def test_hq_keys_that_is_a_directory_is_refused(flags, tmp_path):
    with pytest.raises(InvalidInput, match="HQ keys"):
        render_site({**flags, "hq_keys": str(tmp_path)})


def test_an_interrupted_swap_is_recovered(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    before = {k: v[0] for k, v in snapshot(site).items()}
    SiteDir(site).site_toml.write_text("")
    os.rename(site, site.parent / ".site.old-crash")  # as if kitctl died between the two renames
    result = render_site(flags)
    assert not result.changed
    assert SiteDir(site).site_toml.is_file()
    assert {k: v[0] for k, v in snapshot(site).items() if k != "site.toml"} == before


def test_lock_records_versions_hashes_and_secret_presence(flags):
    result = render_site(flags)
    site = Path(flags["site_dir"])
    lock = json.loads(SiteDir(site).lock_file.read_text())
    assert lock["kit_version"] == "0.1.0"
    assert lock["licence"]["jti"] == result.site.licence.claims.jti
    assert set(lock["secrets"]) == set(SECRET_NAMES)
    import hashlib

    for name, digest in lock["files"].items():
        assert hashlib.sha256((site / name).read_bytes()).hexdigest() == digest
    compose = load_compose(site)
    assert lock["services"] == {n: compose_hash(s) for n, s in compose["services"].items()}
    assert "timestamp" not in json.dumps(lock)


def test_compose_hash_is_stable_and_sensitive():
    service = {"image": "a", "labels": {"x": "1"}, "ports": ["127.0.0.1:1:1"]}
    reordered = {"ports": ["127.0.0.1:1:1"], "labels": {"x": "1"}, "image": "a"}
    assert compose_hash(service) == compose_hash(reordered)
    assert compose_hash(service) != compose_hash({**service, "image": "b"})
    assert len(compose_hash(service)) == 64


def test_tls_modes_reach_the_caddyfile(flags):
    render_site({**flags, "domain": "localhost"})
    caddy = (Path(flags["site_dir"]) / "Caddyfile").read_text()
    assert "localhost, 127.0.0.1 {" in caddy and "tls internal" in caddy  # a local site answers on its IP too
    render_site({**flags, "domain": "shop.example.cn"})
    caddy = (Path(flags["site_dir"]) / "Caddyfile").read_text()
    assert "shop.example.cn {" in caddy and "tls internal" not in caddy
    render_site({**flags, "domain": "shop.example.cn", "tls": "off"})
    caddy = (Path(flags["site_dir"]) / "Caddyfile").read_text()
    assert "http://shop.example.cn {" in caddy


def test_registry_comes_from_the_licence_unless_overridden(flags, make_licence):
    lic = make_licence("pro", ("game",), registry={"url": "http://127.0.0.1:5000", "username": "site"})
    render_site({**flags, "licence": f"@{lic}"})
    assert load_compose(flags["site_dir"])["services"]["agent"]["image"] == "127.0.0.1:5000/kitctl/agent:0.1.0"
    render_site({**flags, "licence": f"@{lic}", "registry": "registry.example.cn:443/kit"})
    assert load_compose(flags["site_dir"])["services"]["agent"]["image"] == "registry.example.cn:443/kit/kitctl/agent:0.1.0"


def test_a_render_keeps_the_version_the_site_runs(flags):
    """After `kitctl upgrade --to V` rewrote compose.yaml, changing a colour must not move the images back."""
    from kitcore import __version__
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.upgrade import record_images, upgraded_images

    site = Path(flags["site_dir"])
    render_site(flags)
    images = {s.image for s in load_project(site).services.values()}
    assert images and all(i.endswith(f":{__version__}") for i in images)  # a first render: the kit's version
    project = load_project(site)
    record_images(project.config_file, project, upgraded_images(project, "9.1.0"))  # what upgrade does
    render_site({**flags, "primary_colour": "#123456"})
    assert {s.image.rsplit(":", 1)[1] for s in load_project(site).services.values()} == {"9.1.0"}
    render_site({**flags, "primary_colour": "#123456", "image_tag": "9.2.0"})  # an explicit tag wins
    assert {s.image.rsplit(":", 1)[1] for s in load_project(site).services.values()} == {"9.2.0"}


def test_the_project_is_named_after_the_site_id_not_the_folder(flags, tmp_path):
    """Two sites rendered into folders both called `site` are two projects; Compose tools read the same name."""
    from kitcore.sitedir import SiteDir
    from kitctl.deploy.compose import load_project

    render_site(flags)
    site = SiteDir(Path(flags["site_dir"]))
    assert load_project(site.root).name == "kit-xingchen"
    assert site.compose_env.read_text() == "COMPOSE_PROJECT_NAME=kit-xingchen\n"


def test_the_colours_are_the_storefronts_not_the_proxys(flags):
    """theme.css is bound into the storefront (which the proxy forwards /branding/theme.css to), and nothing the
    proxy mounts holds it: a colour change must not replace the proxy, which holds the host ports."""
    render_site(flags)
    site = SiteDir(Path(flags["site_dir"]))
    services = yaml.safe_load((site.root / "compose.yaml").read_text())["services"]
    storefront = services["storefront"]
    assert {"type": "bind", "source": "./theme.css", "target": "/srv/branding/theme.css", "read_only": True} \
        in storefront["volumes"]
    assert storefront["environment"]["KIT_BRANDING_DIR"] == "/srv/branding"
    proxy_sources = [site.root / v["source"] for v in services["proxy"]["volumes"] if v["type"] == "bind"]
    assert all(not p.is_dir() or not (p / "theme.css").exists() for p in proxy_sources)
    assert site.theme_css not in proxy_sources and b"--kit-primary" in site.theme_css.read_bytes()
