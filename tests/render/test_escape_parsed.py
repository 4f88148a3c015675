"""Escaping read back by real parsers, strictly: CSS by tinycss2 (CSS Syntax 3), YAML by both loaders.

A lenient decoder of our own would agree with our own encoder; a parser that
follows the specification is what a browser or Compose does with the text.
"""

from __future__ import annotations

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kitctl.render.escape import (
    RenderError,
    caddy_token,
    compose_escape,
    compose_unescape,
    compose_value,
    css_colour,
    css_string,
    yaml_inline,
    yaml_quote,
)
from tests.render.css import parse_rules, string_value

# CSS turns NUL and surrogates into U+FFFD by definition; names never hold them (inputs refuse control characters)
css_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
TRICKY = ["星辰 游戏", "a\n b", "x\t y", "\\", '";}</style><script>', "a\\000041", "*/ :root { --x: 1 }", "0 1", "\r\n",
          "é f", "A B C", "'", "\f"]


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_css_strings_are_one_string_token_with_exactly_the_value(value):
    assert string_value(css_string(value)) == value


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(css_text, st.lists(st.sampled_from(TRICKY) | css_text, max_size=5).map("".join)))
@example(value="星辰 游戏")
def test_any_css_string_is_one_string_token_with_exactly_the_value(value):
    assert string_value(css_string(value)) == value


@pytest.mark.parametrize("value", TRICKY)
def test_a_css_string_in_a_declaration_leaves_the_rule_as_it_was(value):
    css = f":root {{\n  --kit-site-name: {css_string(value)};\n  --kit-primary: {css_colour('#A1B2C3')};\n}}\n.x {{ color: red; }}\n"
    assert parse_rules(css) == [
        (":root", [("--kit-site-name", [("string", value)]), ("--kit-primary", [("hash", "A1B2C3")])]),
        (".x", [("color", [("ident", "red")])]),
    ]


LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.mark.parametrize("value", ["星辰 游戏", "a: b", "- x", "#c", "'", '"', "\\", "\u2028", "\x85", "\x00", "\t",
                                   "\U0001F600", "\ufeff", "\ud7ff", "\ue000", "\ufffd", "null", "true", "1", "${X}"])
def test_a_yaml_scalar_reads_back_exactly_as_a_string(value):
    for loader in LOADERS:
        assert yaml.load("k: " + yaml_quote(value), Loader=loader) == {"k": value}
        assert yaml.load("k: " + compose_value(value), Loader=loader) == {"k": value.replace("$", "$$")}


# -- exact output: the renders are byte-stable, so the spelling of each escape is part of the contract ---------

@pytest.mark.parametrize("code, spelled", [
    (0x00, "\\0"), (0x09, "\\t"), (0x0A, "\\n"), (0x0D, "\\r"), (0x1F, "\\x1F"), (0x20, " "), (0x22, '\\"'),
    (0x5C, "\\\\"), (0x7E, "~"), (0x7F, "\\x7F"), (0x85, "\\x85"), (0x9F, "\\x9F"), (0xA0, "\u00a0"),
    (0xFF, "\u00ff"), (0x100, "\u0100"), (0x2027, "\u2027"), (0x2028, "\\u2028"), (0x2029, "\\u2029"),
    (0x202A, "\u202a"), (0xD7FF, "\ud7ff"), (0xE000, "\ue000"), (0xFEFE, "\ufefe"), (0xFEFF, "\\uFEFF"),
    (0xFF00, "\uff00"), (0xFFFD, "\ufffd"), (0xFFFE, "\\uFFFE"), (0xFFFF, "\\uFFFF"), (0x10000, "\\U00010000"),
    (0x1F600, "\\U0001F600"),
])
def test_yaml_spells_each_character_one_way(code, spelled):
    assert yaml_quote(chr(code)) == f'"{spelled}"'
    for loader in LOADERS:
        assert yaml.load("k: " + yaml_quote(chr(code)), Loader=loader) == {"k": chr(code)}


@pytest.mark.parametrize("code", [0xD800, 0xDBFF, 0xDC00, 0xDFFF])
def test_yaml_refuses_every_surrogate(code):
    with pytest.raises(RenderError, match="^refusing to render an unpaired surrogate into YAML$"):
        yaml_quote(chr(code))


def test_yaml_inline_spells_scalars_and_collections():
    assert [yaml_inline(v) for v in (None, True, False, 0, -7, "x")] == ["null", "true", "false", "0", "-7", '"x"']
    assert yaml_inline(["a", 1, None, {"k": [True]}]) == '["a", 1, null, {"k": [true]}]'
    assert yaml_inline({1: "a"}) == '{"1": "a"}'
    with pytest.raises(RenderError, match="^cannot render a float into YAML$"):
        yaml_inline(1.5)


def test_compose_interpolation_is_escaped_all_the_way_down():
    value = ["$a", {"$k": "$v", "n": [1, "$$"]}, 3, None]
    escaped = compose_escape(value)
    assert escaped == ["$$a", {"$$k": "$$v", "n": [1, "$$$$"]}, 3, None]
    assert compose_unescape(escaped) == value
    assert compose_value({"$k": ["$v"]}) == '{"$$k": ["$$v"]}'


def test_css_strings_keep_safe_characters_and_spell_the_rest_in_six_digits():
    assert css_string("Ab9_.,-") == '"Ab9_.,-"'
    assert css_string('星 "') == '"\\00661F\\000020\\000022"'
    assert css_string(5) == '"5"'


def test_refusals_say_what_and_where():
    with pytest.raises(RenderError, match=r"^refusing to put 'a b' into the Caddyfile$"):
        caddy_token("a b")
    assert caddy_token("shop.example.cn:443") == "shop.example.cn:443"
    with pytest.raises(RenderError, match=r"^refusing to put 'red' into CSS as a colour$"):
        css_colour("red")
