"""`up --bundle` is offline: the bundle's images stand for the rendered references, and no registry is asked.

The engine is faked at docker-py's boundary (tags, lookups, pulls); the bundle
loader (checksums, `docker load`) is tested on the real engine in
tests/images/test_images_bundle.py and end to end in tests/e2e/test_deploy_paths.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from kitcore.errors import KitError

REGISTRY = "127.0.0.1:59999"  # what the licence grants; nothing listens there
LOADED = ["kitctl/storefront:1.0", "kitctl/agent:1.0", "kitctl/db:1.0", "kitctl/proxy:1.0"]


class FakeAPI:
    def __init__(self, present: dict[str, str]) -> None:
        self.images = dict(present)
        self.pulls: list[str] = []

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.images[f"{repository}:{tag}"] = self.images[image]

    def inspect_image(self, ref: str) -> dict:
        from docker.errors import ImageNotFound

        if ref not in self.images:
            raise ImageNotFound(ref)
        return {"Id": self.images[ref]}

    def pull(self, repo: str, **_: object) -> list:
        self.pulls.append(repo)
        raise AssertionError(f"a registry was asked for {repo}")


class Quiet:
    def note(self, text: str) -> None: ...
    def step(self, service: str, text: str) -> None: ...
    def warn(self, text: str) -> None: ...


def project(refs: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(services={name: SimpleNamespace(image=ref) for name, ref in refs.items()})


@pytest.fixture
def bundle_loaded(monkeypatch):
    """A client whose engine has just loaded the bundle's images (what `kitctl bundle load` leaves)."""
    api = FakeAPI({ref: f"sha256:{i}" for i, ref in enumerate(LOADED)})
    monkeypatch.setattr("kitctl.deploy.pull.load_bundle", lambda client, bundle, reporter: list(LOADED))
    return SimpleNamespace(api=api)


def no_licence():
    raise AssertionError("the licence's registry grant must not be consulted offline")


def test_up_with_a_bundle_takes_the_rendered_references_from_it_and_pulls_nothing(bundle_loaded) -> None:
    from kitctl.deploy.up import UpOptions, _images

    refs = {s: f"{REGISTRY}/kitctl/{s}:1.0" for s in ("storefront", "agent", "db", "proxy")}
    options = UpOptions(site_dir=Path("site"), bundle=Path("kit.bundle"))
    ids = _images(bundle_loaded, project(refs), options, no_licence, Quiet())
    assert ids == {ref: bundle_loaded.api.images[f"kitctl/{s}:1.0"] for s, ref in refs.items()}
    assert bundle_loaded.api.pulls == []


def test_an_image_the_bundle_lacks_is_refused_in_one_line_without_a_pull(bundle_loaded) -> None:
    from kitctl.deploy.up import UpOptions, _images

    refs = {"db": f"{REGISTRY}/kitctl/db:1.0", "extra": f"{REGISTRY}/kitctl/plugin-x:1.0"}
    with pytest.raises(KitError, match=r"has no image for 127.0.0.1:59999/kitctl/plugin-x:1.0 \(with --bundle nothing"):
        _images(bundle_loaded, project(refs), UpOptions(site_dir=Path("s"), bundle=Path("b")), no_licence, Quiet())
    assert bundle_loaded.api.pulls == []


def test_a_licensee_bundle_carries_the_site_images_and_not_hq(monkeypatch, tmp_path: Path) -> None:
    from kitctl.cli import run

    saved: list[list[str]] = []
    monkeypatch.setattr("kitctl.engine.connect", lambda *a, **k: object())
    monkeypatch.setattr("kitctl.images.bundle.save_bundle",
                        lambda client, out, version, services, on_line=None: saved.append(services) or [])
    assert run(["bundle", "save", "-o", str(tmp_path / "site.bundle")]) == 0
    assert run(["bundle", "save", "-o", str(tmp_path / "hq.bundle"), "--service", "hq"]) == 0
    assert saved == [["storefront", "agent", "db", "proxy"], ["hq"]]
