"""Escaping read back by real parsers, strictly: CSS by tinycss2 (CSS Syntax 3), YAML by both loaders.

A lenient decoder of our own would agree with our own encoder; a parser that
follows the specification is what a browser or Compose does with the text.
"""

from __future__ import annotations

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kitctl.render.escape import compose_value, css_colour, css_string, yaml_quote
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
