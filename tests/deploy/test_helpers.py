"""Small deploy helpers: units, image refs, registry errors, remote paths, licence cache, upgrade record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitctl.deploy.compose import parse_project
from kitctl.engine import check_target
from kitctl.deploy.pull import _pull_error, _repo_tag, registry_host, split_registry
from kitctl.deploy.remote import map_path, remote_site_dir
from kitctl.deploy.rendered_site import CachedLicence, licence_summary, verified_licence
from kitctl.deploy.units import duration_seconds, size_bytes
from kitctl.deploy.upgrade import record_images, upgraded_images
from kitcore.errors import InvalidInput, LicenceError
from tests.deploy.stack import issue_test_licence
from kitcore.sitedir import SiteDir


def test_durations_and_sizes() -> None:
    assert duration_seconds("1m30s", "x") == 90 and duration_seconds("250ms", "x") == 0.25
    assert duration_seconds(5, "x") == 5.0
    assert size_bytes("512m", "x") == 512 * 1024**2 and size_bytes("1G", "x") == 1024**3 and size_bytes(100, "x") == 100
    for bad in ("5 s", "s", "1x", ""):
        with pytest.raises(InvalidInput):
            duration_seconds(bad, "x")
    with pytest.raises(InvalidInput):
        size_bytes("-1m", "x")


def test_image_refs_and_registries() -> None:
    assert split_registry("127.0.0.1:5000/kitctl/db:1") == ("127.0.0.1:5000", "kitctl/db:1")
    assert split_registry("kitctl/db:1") == (None, "kitctl/db:1")
    assert split_registry("localhost/x") == ("localhost", "x")
    assert registry_host("https://reg.example:5000/") == "reg.example:5000"
    assert _repo_tag("127.0.0.1:5000/kitctl/db:1.0") == ("127.0.0.1:5000/kitctl/db", "1.0")
    assert _repo_tag("127.0.0.1:5000/kitctl/db") == ("127.0.0.1:5000/kitctl/db", "latest")


def test_registry_errors_are_one_clear_line() -> None:
    assert "refused the licence's credentials" in _pull_error("r/x:1", "r", "Get ...: unauthorized: authentication required")
    assert "is not in the registry" in _pull_error("r/x:1", "r", "manifest unknown")
    assert _pull_error("r/x:1", "r", "connection refused").startswith("cannot pull r/x:1")


def test_engine_targets_are_checked() -> None:
    assert check_target("ssh://root@127.0.0.1:2222")
    assert check_target("unix:///var/run/docker.sock")
    for bad in ("http://x", "ssh://host", "ssh://root@h;rm -rf /", "tcp://10.0.0.1:2375"):
        with pytest.raises(InvalidInput):
            check_target(bad)


def test_remote_paths_stay_inside_the_site(tmp_path: Path) -> None:
    host_path = map_path(tmp_path, "/srv/sites/a")
    assert host_path(str(tmp_path / "secrets" / "pw")) == "/srv/sites/a/secrets/pw"
    with pytest.raises(InvalidInput, match="outside the site directory"):
        host_path("/etc/passwd")
    project = parse_project({"services": {"w": {"image": "x"}}}, tmp_path, tmp_path / "compose.yaml", "p")
    assert remote_site_dir(project, None) == "/var/lib/kitctl/sites/p"
    with pytest.raises(InvalidInput):
        remote_site_dir(project, "relative/dir")
    with pytest.raises(InvalidInput):
        remote_site_dir(project, "/srv/../etc")


def site_with_licence(tmp_path: Path, site: str = "shop") -> Path:
    token, jwks = issue_test_licence(tmp_path / "hq", site, None)
    site_dir = tmp_path / site
    (site_dir / "secrets").mkdir(parents=True)
    SiteDir(site_dir).licence_token.write_text(token)
    SiteDir(site_dir).hq_keys.write_text(json.dumps(jwks))
    SiteDir(site_dir).compose.write_text("services:\n  w:\n    image: x\n")
    return site_dir


def test_licence_verification_is_cached_only_while_unchanged(tmp_path: Path) -> None:
    site_dir = site_with_licence(tmp_path)
    first = licence_summary(site_dir, None, None)
    assert not isinstance(first, CachedLicence) and first.claims.sub == "shop"
    cached = licence_summary(site_dir, None, None)
    assert isinstance(cached, CachedLicence) and cached.claims.sub == "shop" and cached.days_left >= 29
    assert cached.claims.registry is None  # a pull always verifies in full
    # a different token (re-issued) is verified in full again
    token, _ = issue_test_licence(tmp_path / "hq", "shop", None)
    SiteDir(site_dir).licence_token.write_text(token)
    assert not isinstance(licence_summary(site_dir, None, None), CachedLicence)
    # a tampered token is refused, cache or not
    SiteDir(site_dir).licence_token.write_text(token[:-4] + "AAAA")
    with pytest.raises(LicenceError):
        licence_summary(site_dir, None, None)


def test_licence_from_other_keys_is_refused(tmp_path: Path) -> None:
    site_dir = site_with_licence(tmp_path)
    _, other_jwks = issue_test_licence(tmp_path / "other-hq", "shop", None)
    SiteDir(site_dir).hq_keys.write_text(json.dumps(other_jwks))
    with pytest.raises(LicenceError):
        verified_licence(site_dir, None, None)
    with pytest.raises(InvalidInput, match="no licence"):
        verified_licence(tmp_path, None, tmp_path / "x")


def test_upgrade_is_recorded_in_compose_keeping_the_layout(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("# rendered\nservices:\n  db:\n    image: 'reg:5000/kitctl/db:0.1.0'\n"
                       "  x:\n    image: redis:7\n")
    import yaml

    project = parse_project(yaml.safe_load(compose.read_text()), tmp_path, compose, "p")
    images = upgraded_images(project, "0.2.0")
    record_images(compose, project, images)
    text = compose.read_text()
    assert text.startswith("# rendered\n") and "'reg:5000/kitctl/db:0.2.0'" in text and "redis:7" in text


def test_secrets_are_copied_in_as_the_services_user(tmp_path: Path) -> None:
    import io
    import tarfile

    from kitctl.deploy.secret_copy import secrets_archive, service_owner
    from kitctl.deploy.spec import secrets_copied

    (tmp_path / "pw").write_text("s3cret")
    (tmp_path / "pw").chmod(0o600)
    project = parse_project({"services": {
        "app": {"image": "kitctl/storefront:1", "secrets": ["pw"]},
        "ro": {"image": "x", "secrets": ["pw"], "read_only": True, "user": "10001:10001"},
    }, "secrets": {"pw": {"file": "./pw"}}}, tmp_path, tmp_path / "compose.yaml", "p")
    app = project.services["app"]

    class Images:  # the one engine call service_owner makes: the image's configured user
        def __init__(self, user: str) -> None:
            self.user = user

        def inspect_image(self, ref: str) -> dict:
            return {"Config": {"User": self.user}}

    assert service_owner(Images("10001:10001"), app) == (10001, 10001, 0o400)
    assert service_owner(Images("10001"), app) == (10001, 10001, 0o400)
    assert service_owner(Images(""), app) == (0, 0, 0o400)
    assert service_owner(Images("kit"), app) == (0, 0, 0o444)
    with tarfile.open(fileobj=io.BytesIO(secrets_archive(app, (10001, 10001, 0o400)))) as tar:
        member = tar.getmember("run/secrets/pw")
        assert (member.uid, member.gid, member.mode) == (10001, 10001, 0o400)
        assert tar.extractfile(member).read() == b"s3cret"
        assert tar.getmember("run/secrets").isdir()
    assert secrets_copied(app) and not secrets_copied(project.services["ro"])  # read-only rootfs keeps the bind


def test_printed_url_prefers_https_and_the_site_name(tmp_path: Path) -> None:
    from kitctl.deploy.compose import parse_project
    from kitctl.deploy.rendered_site import site_url as _url

    def project(ports: list[str]):
        data = {"services": {"proxy": {"image": "kitctl/proxy:1", "ports": ports}}}
        return parse_project(data, tmp_path, tmp_path / "compose.yaml", "shop")

    assert _url(project(["127.0.0.1:8080:80", "127.0.0.1:8443:443"]), tmp_path) == "https://127.0.0.1:8443/"
    (tmp_path / "site.json").write_text(json.dumps({"domain": "localhost"}))
    assert _url(project(["127.0.0.1:8080:80", "127.0.0.1:8443:443"]), tmp_path) == "https://localhost:8443/"
    assert _url(project(["0.0.0.0:80:80"]), tmp_path) == "http://localhost/"
    assert _url(project([]), tmp_path) is None
