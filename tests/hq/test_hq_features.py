"""The feature registry: a third party's licence feature is registered at HQ before a licence may grant it."""

from __future__ import annotations

import json

import pytest

from kitctl.cli import run
from kitcore.licence.keys import HQKeyStore, load_jwks
from kitcore.licence.token import verify_licence
from tests.hq.helpers import http


@pytest.fixture
def hq_dir(tmp_path):
    return tmp_path / "hq"


def kit(hq_dir, *args: str) -> int:
    return run(["hq", *args, "--hq-dir", str(hq_dir)])


def _issue(hq_dir, features: str) -> int:
    return kit(hq_dir, "licence", "issue", "--site", "loyal", "--tier", "pro", "--categories", "game",
               "--features", features, "--registry-url", "")


def test_an_unregistered_feature_is_refused_then_granted_once_registered(hq_dir, capsys):
    assert _issue(hq_dir, "storefront,loyalty") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: features: unknown feature 'loyalty'") and "kitctl hq features register" in err
    assert len(err.strip().splitlines()) == 1

    assert kit(hq_dir, "features", "register", "loyalty", "--description", "Points per yuan",
               "--vendor", "Acme Plugins", "--json") == 0
    registered = json.loads(capsys.readouterr().out)[0]
    assert (registered["name"], registered["source"], registered["vendor"]) == ("loyalty", "registered", "Acme Plugins")

    assert _issue(hq_dir, "storefront,loyalty") == 0
    token = capsys.readouterr().out.strip()
    assert verify_licence(token, HQKeyStore(hq_dir).pinned()).claims.features == ["storefront", "loyalty"]
    assert kit(hq_dir, "features", "list", "--json") == 0
    listed = {f["name"]: f["source"] for f in json.loads(capsys.readouterr().out)}
    assert listed["coupons"] == "tier" and listed["loyalty"] == "registered"


@pytest.mark.parametrize("name, extra, message", [
    ("coupons", (), "feature 'coupons' is already known"),
    ("Bad_Name", (), "feature name 'Bad_Name' must be lowercase"),
    ("loyalty\n", (), "feature name 'loyalty\\n' must be lowercase"),
    ("loyalty", ("--vendor", "two\nlines"), "vendor must be one line"),
])
def test_bad_registrations_are_one_line_exit_2_and_register_nothing(hq_dir, capsys, name, extra, message):
    args = {"--description": "Points", "--vendor": "Acme", **dict(zip(extra[::2], extra[1::2]))}
    assert kit(hq_dir, "features", "register", name, *[x for kv in args.items() for x in kv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert kit(hq_dir, "features", "list", "--json") == 0
    assert all(f["source"] == "tier" for f in json.loads(capsys.readouterr().out))


def test_a_feature_is_registered_once(hq_dir, capsys):
    assert kit(hq_dir, "features", "register", "loyalty", "--description", "Points", "--vendor", "Acme") == 0
    assert kit(hq_dir, "features", "register", "loyalty", "--description", "Other", "--vendor", "Other") == 2
    assert "already known" in capsys.readouterr().err


def test_the_api_registers_lists_and_refuses_like_the_cli(sqlite_hq):
    def admin(method: str, path: str, **kw):  # type: ignore[no-untyped-def]
        return http.request(method, f"{sqlite_hq.url}/v1/admin{path}", headers=sqlite_hq.admin_headers(), **kw)

    body = {"name": "loyalty", "description": "Points per yuan", "vendor": "Acme Plugins"}
    assert http.post(f"{sqlite_hq.url}/v1/admin/features", json=body).status_code == 401
    created = admin("POST", "/features", json=body)
    assert created.status_code == 201 and created.json()["registered_by"]
    assert admin("POST", "/features", json=body).json()["error"] == "feature_exists"
    assert admin("POST", "/features", json={**body, "name": "-x"}).status_code == 422
    assert admin("POST", "/features", json={**body, "extra": 1}).status_code == 422
    assert {f["name"] for f in admin("GET", "/features").json()} >= {"storefront", "coupons", "loyalty"}
    issued = admin("POST", "/licences", json={"site": "loyal", "tier": "pro", "categories": ["game"],
                                              "features": ["storefront", "loyalty"]})
    assert issued.status_code == 200, issued.text
    assert "loyalty" in verify_licence(issued.json()["token"], load_jwks(sqlite_hq.keys_path)).claims.features
    refused = admin("POST", "/licences", json={"site": "other", "tier": "pro", "categories": ["game"],
                                               "features": ["points"]})
    assert refused.status_code == 422 and "unknown feature 'points'" in refused.json()["detail"]


def test_upgrade_validates_features_against_the_registry_like_issue(hq_dir, capsys):
    """`licence upgrade --features` took any word as a feature; it goes through the same registry check."""
    assert _issue(hq_dir, "storefront") == 0
    capsys.readouterr()
    upgrade = ("licence", "upgrade", "loyal", "--features")
    assert kit(hq_dir, *upgrade, "storefront,loyalty") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown feature 'loyalty'" in err and len(err.strip().splitlines()) == 1
    assert kit(hq_dir, "features", "register", "loyalty", "--description", "Points per yuan", "--vendor", "Acme") == 0
    capsys.readouterr()
    assert kit(hq_dir, *upgrade, "storefront,loyalty", "--json") == 0
    (upgraded,) = json.loads(capsys.readouterr().out)
    assert upgraded["features"] == ["storefront", "loyalty"]
