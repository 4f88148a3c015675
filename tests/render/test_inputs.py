"""Site inputs: precedence, formats and one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitcore.errors import InvalidInput
from kitctl.site.domain import parse_domain
from kitctl.site.load import load_site_inputs


def test_defaults(tmp_path):
    i = load_site_inputs({"site_dir": str(tmp_path)})
    assert (i.locale, i.currency, i.bind_address, i.http_port, i.https_port, i.tls) == ("zh-CN", "CNY", "127.0.0.1", 80, 443, "auto")
    assert i.docker_host == "unix:///var/run/docker.sock" and i.plugins == []


def test_precedence_flags_over_env_over_site_toml_over_defaults(tmp_path, monkeypatch):
    (tmp_path / "site.toml").write_text(
        'name = "from toml"\ncontact = "toml contact"\ncurrency = "USD"\nlocale = "en"\nlogo = "brand/logo.png"\n'
    )
    monkeypatch.setenv("KITCTL_CONTACT", "env contact")
    monkeypatch.setenv("KITCTL_CURRENCY", "HKD")
    i = load_site_inputs({"site_dir": str(tmp_path), "currency": "EUR", "name": None})
    assert i.name == "from toml"  # only in toml
    assert i.contact == "env contact"  # env beats toml
    assert i.currency == "EUR"  # flag beats env
    assert i.locale == "en"
    assert i.primary_colour == "#1F6FEB"  # default
    assert i.logo == tmp_path / "brand/logo.png"  # relative to the site dir


def test_site_dir_from_env(tmp_path, monkeypatch):
    (tmp_path / "site.toml").write_text('name = "via env dir"\n')
    monkeypatch.setenv("KITCTL_SITE_DIR", str(tmp_path))
    assert load_site_inputs({}).name == "via env dir"


def test_env_lists_are_comma_separated(tmp_path, monkeypatch):
    monkeypatch.setenv("KITCTL_PLUGINS", "notify, coupons")
    assert load_site_inputs({"site_dir": str(tmp_path)}).plugins == ["coupons", "notify"]


@pytest.mark.parametrize(
    "toml, message",
    [
        ("nmae = 'typo'\n", "unknown setting 'nmae'"),
        ("name = \n", "is not valid TOML"),
        ("http_port = 'eighty'\n", "invalid --http-port"),
    ],
)
def test_bad_site_toml_is_refused_in_one_line(tmp_path, toml, message):
    (tmp_path / "site.toml").write_text(toml)
    with pytest.raises(InvalidInput) as err:
        load_site_inputs({"site_dir": str(tmp_path)})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "a\nb", "control"),
        ("name", "", "must not be empty"),
        ("name", "x" * 81, "longer than 80"),
        ("name", "evil\u202eexe", "invisible"),
        ("contact", "a\x00b", "control"),
        ("domain", "a..b", "domain"),
        ("domain", "exa mple.com", "domain"),
        ("domain", "a${X}.com", "domain"),
        ("primary_colour", "red", "#RRGGBB"),
        ("accent_colour", "#12345", "#RRGGBB"),
        ("locale", "fr", "--locale"),
        ("currency", "cny", "ISO 4217"),
        ("time_zone", "Mars/Olympus", "zone database"),
        ("time_zone", "Asia/Shanghai; rm -rf /", "IANA name"),
        ("bind_address", "0.0.0.0; rm -rf /", "not an IP"),
        ("http_port", 70000, "--http-port"),
        ("tls", "maybe", "--tls"),
        ("docker_host", "tcp://1.2.3.4:2375", "unix:///path or ssh://"),
        ("docker_host", "ssh://root@host;id", "unix:///path or ssh://"),
        ("plugins", ["Bad Name"], "plugin/category name"),
        ("hq_network", "net work", "Docker network"),
        ("registry", "Registry.example.com", "host[:port]"),
        ("image_tag", "-bad", "Docker tag"),
        ("hq_url", "ftp://hq", "http(s)"),
        ("hq_url", "http://hq/${X}", "http(s)"),
    ],
)
def test_bad_values_are_refused_with_one_line(tmp_path, field, value, message):
    with pytest.raises(InvalidInput) as err:
        load_site_inputs({"site_dir": str(tmp_path), field: value})
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_ports_must_differ(tmp_path):
    with pytest.raises(InvalidInput, match="ports must differ"):
        load_site_inputs({"site_dir": str(tmp_path), "http_port": 8080, "https_port": 8080})
    assert load_site_inputs({"site_dir": str(tmp_path), "http_port": 8080, "https_port": 8080, "tls": "off"}).tls == "off"


@pytest.mark.parametrize(
    "typed, ascii_form, local",
    [
        ("商店.example.cn", "xn--czrs0t.example.cn", False),
        ("Shop.Example.CN.", "shop.example.cn", False),
        ("localhost", "localhost", True),
        ("shop.localhost", "shop.localhost", True),
        ("127.0.0.1", "127.0.0.1", True),
        ("bücher.de", "xn--bcher-kva.de", False),
    ],
)
def test_domains(typed, ascii_form, local):
    d = parse_domain(typed)
    assert d.ascii == ascii_form and d.is_local is local


def test_tls_auto_picks_acme_for_real_domains_and_internal_for_local(tmp_path):
    assert load_site_inputs({"site_dir": str(tmp_path), "domain": "shop.example.cn"}).effective_tls == "acme"
    assert load_site_inputs({"site_dir": str(tmp_path), "domain": "localhost"}).effective_tls == "internal"
    assert load_site_inputs({"site_dir": str(tmp_path), "domain": "shop.example.cn", "tls": "internal"}).effective_tls == "internal"


def test_docker_host_forms(tmp_path):
    for host in ("unix:///var/run/docker.sock", "ssh://kit@127.0.0.1:2222", "ssh://deploy@host.example.cn"):
        assert load_site_inputs({"site_dir": str(tmp_path), "docker_host": host}).docker_host == host


def test_ipv6_bind_address_is_bracketed_in_ports(tmp_path, flags):
    from kitctl.render import load_compose, render_site

    render_site({**flags, "bind_address": "::1"})
    assert load_compose(flags["site_dir"])["services"]["proxy"]["ports"][0] == "[::1]:8080:80"


def test_colour_settings_are_still_read_under_their_earlier_names(tmp_path, monkeypatch):
    """site.toml files, KITCTL_ variables and kitctl.lock inputs written as primary_color/accent_color keep working."""
    (tmp_path / "site.toml").write_text('primary_color = "#123456"\naccent_color = "#abcdef"\n')
    i = load_site_inputs({"site_dir": str(tmp_path)})
    assert (i.primary_colour, i.accent_colour) == ("#123456", "#ABCDEF")
    monkeypatch.setenv("KITCTL_PRIMARY_COLOR", "#111111")
    assert load_site_inputs({"site_dir": str(tmp_path)}).primary_colour == "#111111"  # env beats site.toml
    monkeypatch.setenv("KITCTL_PRIMARY_COLOUR", "#222222")
    assert load_site_inputs({"site_dir": str(tmp_path)}).primary_colour == "#222222"  # the current name wins
    assert load_site_inputs({"site_dir": str(tmp_path), "primary_color": "#333333"}).primary_colour == "#333333"
    with pytest.raises(InvalidInput, match="invalid --primary-color: colour 'red'"):
        load_site_inputs({"site_dir": str(tmp_path), "primary_color": "red"})
