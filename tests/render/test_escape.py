"""The format escapers on their own: each value reads back exactly, in every parser we care about."""

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
    css_colour,
    css_string,
    yaml_inline,
)
from tests.render.css import string_value

no_surrogates = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@settings(max_examples=200, deadline=None)
@given(value=st.recursive(no_surrogates | st.integers() | st.booleans() | st.none(),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(no_surrogates, inner, max_size=4),
                          max_leaves=12))
@example(value={"\u2028": None})  # found by hypothesis: YAML reads U+2028/9 as line breaks inside quotes
@example(value="a\u2029b\x85")
def test_yaml_inline_round_trips_in_pure_python_and_libyaml(value):
    text = yaml_inline(value)
    assert "\n" not in text and "\r" not in text
    for loader in LOADERS:
        assert yaml.load("k: " + text, Loader=loader) == {"k": value}


@settings(max_examples=200, deadline=None)
@given(value=no_surrogates)
def test_compose_escape_round_trips(value):
    assert compose_unescape(compose_escape(value)) == value
    assert "$" not in compose_escape(value).replace("$$", "")


def test_surrogates_are_refused():
    with pytest.raises(RenderError):
        yaml_inline("\ud800")


@settings(max_examples=200, deadline=None)
@given(value=no_surrogates)
def test_css_string_round_trips_and_never_closes_the_string(value):
    text = css_string(value)
    assert string_value(text) == value.replace("\x00", "\ufffd")  # CSS reads NUL as U+FFFD, by definition
    inner = text[1:-1]
    assert not set(inner) & set("\"'\n\r;{}<>/*")


@pytest.mark.parametrize("bad", ["a b", "a{", "}", "#x", "a\nb", '"x"', "{$X}"])
def test_caddy_tokens_refuse_anything_structural(bad):
    with pytest.raises(RenderError):
        caddy_token(bad)


def test_css_colours_only():
    assert css_colour("#A1B2C3") == "#A1B2C3"
    for bad in ("red", "#a1b2c3;}", "#FFF"):
        with pytest.raises(RenderError):
            css_colour(bad)
