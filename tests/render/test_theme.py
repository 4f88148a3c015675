"""A custom shop theme at render: a flagship licence's, checked file by file, refused in one line when hostile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir
from kitcore.theme import load_theme
from kitctl.render import render_site

HOME = ('{% extends "base.html" %}{% block content %}<section class="my-shelf"><h1>{{ t("home.title") }}</h1>'
        '{% for item in items %}<a class="tile" href="/p/{{ item.sku | urlencode }}">{{ item.name }}</a>{% endfor %}'
        '</section>{% endblock %}\n')


def _theme(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def flagship(flags: dict[str, Any], make_licence) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {**flags, "licence": f"@{make_licence('flagship')}"}


def test_a_flagship_site_renders_its_theme_into_the_site_and_the_storefront_mounts_it(tmp_path, flagship):
    theme = _theme(tmp_path / "theme", {"templates/home.html": HOME, "theme.css": ".my-shelf{display:grid}\n"})
    result = render_site({**flagship, "theme": str(theme)})
    site = SiteDir(result.site_dir)
    assert (site.root / "theme" / "templates" / "home.html").read_text() == HOME
    assert ".my-shelf{display:grid}" in site.theme_css.read_text()  # after the colours
    compose = (site.root / "compose.yaml").read_text()
    assert 'KIT_THEME_DIR: "/srv/theme"' in compose and "source: ./theme" in compose
    render_site({"site_dir": flagship["site_dir"]})  # the next render keeps it (recorded as the site's copy)
    assert "KIT_THEME_DIR" in (site.root / "compose.yaml").read_text()


def test_other_tiers_keep_colours_and_logo_only(tmp_path, flags):
    theme = _theme(tmp_path / "theme", {"templates/home.html": HOME})
    with pytest.raises(InvalidInput) as refused:
        render_site({**flags, "theme": str(theme)})
    assert "does not grant custom-theme" in str(refused.value) and "\n" not in str(refused.value)
    assert "KIT_THEME_DIR" not in (SiteDir(render_site(flags).site_dir).root / "compose.yaml").read_text()


@pytest.mark.parametrize("name, text, why", [
    ("templates/home.html", "<p>hi</p><script>fetch('/admin')</script>", "line 1: <script> is not allowed"),
    ("templates/home.html", "<p>\n<img src=/x onerror=alert(1)></p>", "line 2: event handler attributes"),
    ("templates/home.html", '<a href="javascript:alert(1)">x</a>', "javascript: URLs are not allowed"),
    ("templates/home.html", '<img src="https://tracker.example/p.gif">', "external URLs are not allowed"),
    ("templates/home.html", '<link rel="stylesheet" href="/x.css">', "<link> is not allowed"),
    ("templates/home.html", "{{ request.app.state.shop.__class__ }}", "names starting with _"),
    ("templates/home.html", "{{ cycler.__init__.__globals__['os'] }}", "names starting with _"),
    ("templates/home.html", "{{ site|attr('_x') }}", "names starting with _"),
    ("templates/home.html", "<p>{{ request.app.state.shop.site_key }}</p>", "request is not available to a theme"),
    ("templates/home.html", "{% set n = namespace(x=1) %}", "namespace is not available to a theme"),
    ("templates/home.html", "{% include 'admin/users.html' %}", "include may only name the shop's own templates"),
    ("templates/home.html", "{{ item.name | safe }}", "|safe, |attr and Markup are not allowed"),
    ("templates/home.html", "{% for x in items %}", "line 1: Unexpected end of template"),
    ("templates/admin_base.html", "<p>x</p>", "not a theme file"),
    ("static/app.js", "alert(1)", "only templates/ and theme.css"),
    ("theme.css", "@import url(https://fonts.example/x.css);", "@import is not allowed"),
    ("theme.css", "body{background:url(https://tracker.example/p.gif)}", "url() may only name /branding/ or /static/"),
    ("theme.css", "x{behavior:url(/branding/x.htc)}", "behavior: is not allowed"),
    ("theme.css", "</style><script>alert(1)</script>", "markup is not allowed in CSS"),
])
def test_a_hostile_theme_is_refused_with_one_line_naming_the_file(tmp_path, flagship, name, text, why):
    theme = _theme(tmp_path / "theme", {name: text})
    with pytest.raises(InvalidInput) as refused:
        render_site({**flagship, "theme": str(theme)})
    message = str(refused.value)
    assert why in message and f"theme: {name.split('/')[0] if name.startswith('static') else name}" in message, message
    assert "\n" not in message
    assert not (Path(flagship["site_dir"]) / "theme").exists()  # nothing written


def test_a_symlink_or_oversized_file_is_refused(tmp_path):
    theme = _theme(tmp_path / "t1", {"theme.css": "a{}"})
    (theme / "templates").mkdir()
    (theme / "templates" / "home.html").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic links are not allowed"):
        load_theme(theme)
    big = _theme(tmp_path / "t2", {"theme.css": "a{}" * 30_000})
    with pytest.raises(InvalidInput, match="larger than 64 KiB"):
        load_theme(big)
