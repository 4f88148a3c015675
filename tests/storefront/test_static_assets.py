"""Static files under versioned names: pages link `/static/<name>.<hash>.<ext>`, answered immutable.

The proxy serves the same names from its image (tests/render/test_caddyfile.py, tests/e2e/test_up.py);
here the storefront itself, through the real server.
"""

from __future__ import annotations

import re

import httpx

from kitcore.assets import IMMUTABLE, hashed_name
from tests.storefront.support import versioned_url


def test_a_versioned_name_carries_the_content_hash() -> None:
    assert hashed_name("app.css", b"a") == "app.ca978112ca1b.css"  # sha256("a") starts ca978112ca1b
    assert hashed_name("app.css", b"b") != hashed_name("app.css", b"a")


def test_pages_link_the_versioned_stylesheet_which_is_served_immutable(module_site) -> None:
    with httpx.Client(base_url=module_site.base, timeout=30) as client:
        page = client.get("/").text
        linked = re.search(r'<link rel="stylesheet" href="(/static/[^"]+)"', page)
        assert linked and linked.group(1) == versioned_url("app.css")
        versioned, plain = client.get(linked.group(1)), client.get("/static/app.css")
        assert versioned.status_code == 200 and versioned.content == plain.content
        assert versioned.headers["cache-control"] == IMMUTABLE
        assert "immutable" not in plain.headers.get("cache-control", "")  # an old link may see a new file
        head = client.head(linked.group(1))
        assert head.status_code == 200 and head.content == b"" and head.headers["cache-control"] == IMMUTABLE
        wrong_hash = linked.group(1).replace(linked.group(1).split(".")[1], "0" * 12)
        assert client.get(wrong_hash).status_code == 404
