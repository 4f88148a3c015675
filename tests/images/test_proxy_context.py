"""The proxy image's build context carries the shop's static files under the names pages link."""

from __future__ import annotations

from pathlib import Path

from kitctl.images.checkout import assemble_context
from kitcore.assets import versioned

REPO = Path(__file__).resolve().parents[2]


def test_the_proxy_context_holds_each_static_file_under_its_versioned_name(tmp_path: Path) -> None:
    static = REPO / "storefront" / "static"
    ctx = assemble_context(REPO, "proxy", None, tmp_path)
    names = versioned(static)
    assert sorted(p.name for p in (ctx / "static").iterdir()) == sorted(names.values())
    for plain, hashed in names.items():
        assert (ctx / "static" / hashed).read_bytes() == (static / plain).read_bytes()
    assert "COPY static /srv/static" in (ctx / "Dockerfile").read_text()
    assert not (assemble_context(REPO, "db", None, tmp_path) / "static").exists()
