"""Property tests: no text input can change the structure of what is rendered.

For every text input, hypothesis generates values (random Unicode plus the
fragments that break YAML, Compose interpolation, Caddyfile, CSS and HTML).
Each value is either refused with one line, or rendered so that every output
parses, has exactly the baseline's structure, and reads back as the value.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitcore.errors import InvalidInput
from kitctl.render.escape import compose_unescape
from kitctl.render.site_files import RenderedSite, build_site
from kitctl.site.load import load_site_inputs
from kitctl.site.resolve import resolve_site
from tests.render.css import parse_rules

NASTY = [
    '"', "'", "\n", "\r\n", "\t", "\x00", "\x1b[31m", "\u2028", "\u2029", "\x85", "\u202e", "\ufeff",
    "${X}", "${X:-y}", "$X", "$$", "$", "{{ x }}", "{% raw %}", "{#", "&anchor ", "*anchor", "!!python/object:os.system",
    ": ", " #", "#", "---", "...", "- ", "? ", "[", "]", "{", "}", ",", "|", ">", "%", "@", "`",
    "\n  privileged: true", "\nservices:\n  evil:\n    image: x", "\n    privileged: true",
    "<script>alert(1)</script>", "</h1>", "<!--", "&amp;", "\\", "\\n", "*/", "/*", "@import url(x);", "}\n:root{",
    "import", "tls off", "reverse_proxy evil:1", "星辰", "游戏", "😀", "ß", "İ", "\u0301", "\ud7ff",
]

fragments = st.one_of(st.sampled_from(NASTY), st.text(max_size=6))
nasty_text = st.one_of(st.text(max_size=90), st.lists(fragments, max_size=10).map("".join))
label = st.one_of(
    st.text(alphabet=st.sampled_from("abcxyz09-商店星辰ßü_$"), min_size=1, max_size=12),
    st.sampled_from(["xn--czrs0t", "localhost", "-a", "a-", "${x}", "{a}", "a b", "例え"]),
)
domains = st.one_of(nasty_text, st.lists(label, min_size=1, max_size=4).map(".".join))


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A YAML loader that refuses duplicate keys (a duplicate could silently override a value)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    assert len(keys) == len(set(map(repr, keys))), f"duplicate key in {keys}"
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(k for k, _ in attrs)))
        self._open.append(tag if tag != "span" else "contact")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self.text[self._open[-1]] = self.text.get(self._open[-1], "") + data


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def key_prefix(line: str) -> str:
    """A compose line up to its value: indentation, `- `, and the key."""
    stripped = line.lstrip(" -")
    key = stripped.split(": ", 1)[0] if ": " in stripped or stripped.endswith(":") else ""
    return line[: len(line) - len(stripped)] + key


def html_of(rendered: RenderedSite) -> _Html:
    parser = _Html()
    parser.feed(rendered.files["branding/offline.html"].decode("utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def base(tmp_path_factory, hq_keys_file, pro_licence) -> dict[str, Any]:
    site_dir = tmp_path_factory.mktemp("prop") / "site"
    return {"licence": f"@{pro_licence}", "hq_keys": str(hq_keys_file), "name": "星辰游戏",
            "domain": "shop.example.cn", "contact": "QQ 1", "site_dir": str(site_dir)}


def render(flags: dict[str, Any]) -> RenderedSite:
    return build_site(resolve_site(load_site_inputs(flags)))


SAFE = {
    "name": "星辰游戏", "contact": "QQ 1", "domain": "shop.example.cn", "hq_url": "https://hq.example.cn/api",
    "hq_network": "kit-hq", "registry": "127.0.0.1:5000", "image_tag": "v1", "data_dir": "/srv/kit",
    "currency": "CNY", "primary_colour": "#112233", "accent_colour": "#445566", "bind_address": "127.0.0.1",
    "docker_host": "unix:///var/run/docker.sock",
}


class Checker:
    """Renders one value for one field and checks it, against a baseline with a safe value."""

    def __init__(self, base: dict[str, Any], field: str) -> None:
        self.base, self.field = base, field
        self.baseline = render({**base, field: SAFE[field]})
        self.stats = {"rendered": 0, "refused": 0}

    def check(self, value: str) -> None:
        try:
            rendered = render({**self.base, self.field: value})
        except InvalidInput as exc:
            message = str(exc)
            assert message and "\n" not in message and "\r" not in message, repr(message)
            self.stats["refused"] += 1
            return
        self.stats["rendered"] += 1
        self._same_structure(rendered)
        self._round_trip(rendered)

    def _same_structure(self, rendered: RenderedSite) -> None:
        text = rendered.files["compose.yaml"].decode("utf-8")
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
        assert doc == rendered.compose
        assert shape(doc) == shape(self.baseline.compose)
        base_lines = self.baseline.files["compose.yaml"].decode("utf-8").split("\n")
        lines = text.split("\n")
        assert [key_prefix(l) for l in lines] == [key_prefix(l) for l in base_lines]
        assert "privileged" not in json.dumps(list(_keys(doc)))
        config = json.loads(rendered.files["site.json"])
        assert shape(config) == shape(json.loads(self.baseline.files["site.json"]))
        assert set(rendered.files) == set(self.baseline.files)
        # A local domain adds `tls internal` and its default name; apart from that only the site addresses may differ.
        caddy, base_caddy = (
            [l for l in r.files["Caddyfile"].decode().split("\n") if l != "\ttls internal" and not l.startswith("\tdefault_sni ")]
            for r in (rendered, self.baseline))
        assert len(caddy) == len(base_caddy)
        differing = [a for a, b in zip(caddy, base_caddy) if a != b]  # the site's and the redirect's address lines
        assert len(differing) <= 2 and all(line.endswith(" {") and "\t" not in line for line in differing)
        rules, base_rules = (parse_rules(r.files["theme.css"].decode()) for r in (rendered, self.baseline))
        assert [(sel, [d for d, _ in decls]) for sel, decls in rules] == [
            (sel, [d for d, _ in decls]) for sel, decls in base_rules]  # same rules, same declarations
        assert [decls for _, decls in rules][1:] == [decls for _, decls in base_rules][1:]
        tags, base_tags = html_of(rendered).tags, html_of(self.baseline).tags
        if not config["contact"]:  # the contact paragraph is left out when there is no contact
            base_tags = [t for t in base_tags if t not in (("p", ()), ("span", ("class",)))][:len(tags)]
            tags = [t for t in tags if t not in (("p", ()), ("span", ("class",)))]
        assert tags == base_tags

    def _round_trip(self, rendered: RenderedSite) -> None:
        doc = compose_unescape(rendered.compose)
        config = json.loads(rendered.files["site.json"])
        services = doc["services"]
        html = html_of(rendered)
        root = dict(parse_rules(rendered.files["theme.css"].decode())[0][1])
        name = config["name"]
        assert services["proxy"]["labels"]["com.kitctl.site-name"] == name
        assert html.text["h1"] == name and html.text["title"] == name
        assert root["--kit-site-name"] == [("string", name)]
        assert services["proxy"]["labels"]["com.kitctl.domain"] == config["domain"]
        caddy_sites = [l for l in rendered.files["Caddyfile"].decode().splitlines() if l.endswith(" {") and not l.startswith(("\t", "http://:"))]
        assert caddy_sites[-1].removesuffix(" {").split(", ")[0].removeprefix("http://") == config["domain_ascii"]  # first address of the site block
        if config["contact"]:
            assert html.text["contact"] == config["contact"]
        field, value = self.field, None
        if field == "name":
            value = name
        elif field == "contact":
            value = config["contact"]
        elif field == "hq_url":
            value = services["agent"]["environment"]["KIT_HQ_URL"]
        elif field == "hq_network":
            value = doc["networks"]["hq"]["name"]
        elif field == "registry":
            value = services["db"]["image"].split("/kitctl/")[0]
        elif field == "image_tag":
            value = services["db"]["image"].rsplit(":", 1)[1]
        elif field == "data_dir":
            value = doc["volumes"]["db-data"]["driver_opts"]["device"].removesuffix("/db-data")
        elif field == "currency":
            value = config["currency"]
        if value is not None:
            self.expect(value)

    def expect(self, value: str) -> None:
        self.last = value


def _keys(value: Any):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)


COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _literal(field: str, typed: str, checker: Checker) -> None:
    """An accepted value is rendered as typed (names/contacts: NFC and outer whitespace aside)."""
    import unicodedata

    if getattr(checker, "last", None) is None:
        return
    expected = unicodedata.normalize("NFC", typed).strip() if field in ("name", "contact") else typed
    if field == "data_dir":
        expected = str(Path(typed).absolute()).rstrip("/")
    assert checker.last == expected, (checker.last, expected)
    checker.last = None


def _property(base: dict[str, Any], field: str, values: Any, examples: int) -> None:
    """Every generated value renders exactly or is refused in one line, and both happened often enough
    for the property to mean something (counted for this test alone, so it holds in any order)."""
    _CHECKERS.pop(field, None)

    @settings(max_examples=examples, **COMMON)
    @given(value=values)
    def inner(value: str) -> None:
        _run(base, field, value)

    inner()
    stats = _CHECKERS[field].stats
    assert stats["rendered"] >= 20 and stats["refused"] >= 20, (field, stats)


def test_name(base):
    _property(base, "name", nasty_text, 800)


def test_contact(base):
    _property(base, "contact", nasty_text, 500)


def test_domain(base):
    _property(base, "domain", domains, 500)


@pytest.mark.parametrize("field", ["hq_url", "hq_network", "registry", "image_tag", "data_dir", "currency",
                                   "primary_colour", "accent_colour", "bind_address", "docker_host"])
def test_other_text_inputs(base, field):
    prefix = {"hq_url": "https://", "data_dir": "/srv/", "primary_colour": "#", "accent_colour": "#"}.get(field, "")

    @settings(max_examples=120, **COMMON)
    @given(value=st.one_of(nasty_text, nasty_text.map(lambda v: prefix + v)))
    def inner(value: str) -> None:
        _run(base, field, value)

    inner()


_CHECKERS: dict[str, Checker] = {}


def _run(base: dict[str, Any], field: str, value: str) -> None:
    checker = _CHECKERS.get(field)
    if checker is None or checker.base is not base:
        checker = _CHECKERS[field] = Checker(base, field)
    checker.last = None
    checker.check(value)
    _literal(field, value, checker)


@pytest.mark.parametrize("name", ["星辰 游戏", 'Shop "A";} :root{--x:1}', "</style><script>x</script>", "a\\b", "a */ b /* c",
                                  "'single'"])
def test_named_site_names_render_exactly(base, name):
    """Fixed examples beside the generated ones: each renders, and every output reads back as the name."""
    checker = Checker(base, "name")
    checker.check(name)
    assert checker.stats == {"rendered": 1, "refused": 0}
