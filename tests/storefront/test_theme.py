"""A custom theme in the storefront: used for the shop's pages while the licence grants custom-theme, in a sandbox
that reaches only the page's data, under the same CSP; the admin never themed."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from kitcore.theme import Theme, load_theme
from storefront.headers import CSP
from tests.storefront.support import seed, update_site_state
from tests.storefront.test_app_inprocess import _app, _submit

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")

HOME = ('{% extends "base.html" %}{% block content %}<section class="my-shelf"><h1>{{ t("home.title") }}</h1>'
        '{% for item in items %}<a class="tile" href="/p/{{ item.sku | urlencode }}">{{ item.name }}</a>{% endfor %}'
        '</section>{% endblock %}\n')


@pytest.fixture
def themed(tmp_path):  # type: ignore[no-untyped-def]
    theme = tmp_path / "theme"
    (theme / "templates").mkdir(parents=True)
    (theme / "templates" / "home.html").write_text(HOME)
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    update_site_state(url, tier="flagship", features=["storefront", "custom-theme"])
    client, shop = _app(tmp_path / "site", url, theme_dir=str(theme))
    return url, client, shop


def test_a_licensed_theme_renders_the_shop_under_the_same_csp_and_leaves_the_admin_alone(themed):
    url, client, _ = themed
    home = client.get("/")
    assert home.status_code == 200 and 'class="my-shelf"' in home.text and 'href="/p/G-QQ-100"' in home.text
    assert home.headers["content-security-policy"] == CSP
    product = client.get("/p/G-QQ-100")
    assert product.status_code == 200 and 'id="place-order"' in product.text  # the kit's pages, in the sandbox
    placed = _submit(client, "G-QQ-100")
    assert placed.status_code == 303
    assert client.get(placed.headers["location"]).status_code == 200
    assert client.get("/order").status_code == 200 and client.get("/p/NO-SUCH").status_code == 404
    assert 'class="my-shelf"' not in client.get("/admin/login").text


def test_without_the_feature_the_theme_is_not_used(themed):
    url, client, _ = themed
    update_site_state(url, tier="pro", features=["storefront", "coupons"])
    page = client.get("/").text
    assert 'class="my-shelf"' not in page and "热门商品" in page


def test_without_the_proxy_the_themes_css_follows_the_colours_while_licensed(tmp_path):
    """The dev server (no proxy, no rendered theme.css in the branding directory) serves the theme's CSS too."""
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "theme.css").write_text(".my-shelf { border: 2px solid var(--kit-accent); }\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    update_site_state(url, tier="flagship", features=["storefront", "custom-theme"])
    client, _ = _app(tmp_path / "site", url, theme_dir=str(theme))
    css = client.get("/branding/theme.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.text.index("--kit-primary:") < css.text.index(".my-shelf { border: 2px solid var(--kit-accent); }")
    update_site_state(url, tier="pro", features=["storefront", "coupons"])
    assert ".my-shelf" not in client.get("/branding/theme.css").text and "--kit-primary:" in css.text


def test_what_escapes_the_check_is_still_escaped_and_reaches_no_internals(tmp_path):
    """The sandbox on its own (a theme built past render's check): output escaped, the request and `_` out of reach."""
    from storefront.app import HERE, make_templates
    from storefront.static_assets import VersionedStatic

    env = make_templates(VersionedStatic(HERE / "static"), theme=Theme(templates={
        "home.html": "{{ name }}", "leak.html": "{{ request.app }}", "dunder.html": "{{ name.__class__ }}"}))
    assert env.get_template("home.html").render(name="<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"

    class Request:  # any object that is not the page's data
        app = "the app, its shop and keys"

    with pytest.raises(SecurityError):
        env.get_template("leak.html").render(request=Request())
    with pytest.raises(SecurityError):
        env.get_template("dunder.html").render(name="x")


def test_a_theme_with_a_script_never_reaches_the_storefront(tmp_path):
    from kitcore.errors import InvalidInput

    theme = tmp_path / "theme"
    (theme / "templates").mkdir(parents=True)
    (theme / "templates" / "home.html").write_text('<p>hi</p><script src="/static/order.js"></script>')
    with pytest.raises(InvalidInput, match="<script> is not allowed"):
        load_theme(Path(theme))
