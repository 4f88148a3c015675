"""Reading CSS the way a browser does (tinycss2 follows CSS Syntax Level 3), for tests of escaping."""

from __future__ import annotations

import tinycss2


def parse_rules(css: str) -> list[tuple[str, list[tuple[str, list[tuple[str, str]]]]]]:
    """Each rule as (prelude, [(declaration name, value tokens)]); fails on any parse error."""
    rules = []
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        assert rule.type == "qualified-rule", f"not a plain rule: {rule.type} {getattr(rule, 'message', '')}"
        declarations = []
        for decl in tinycss2.parse_blocks_contents(rule.content, skip_comments=True, skip_whitespace=True):
            assert decl.type == "declaration", f"not a declaration: {decl.type} {getattr(decl, 'message', '')}"
            declarations.append((decl.name, tokens(decl.value)))
        rules.append((tinycss2.serialize(rule.prelude).strip(), declarations))
    return rules


def tokens(values: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """(type, value) of each token but whitespace; a bad string or url shows up as its own type."""
    return [(t.type, getattr(t, "value", None) if t.type in ("string", "ident", "hash") else t.serialize())
            for t in values if t.type not in ("whitespace", "comment")]


def string_value(css_text: str) -> str:
    """The one CSS string `css_text` is; fails if it is anything else or more."""
    parsed = tokens(tinycss2.parse_component_value_list(css_text))
    assert len(parsed) == 1 and parsed[0][0] == "string", parsed
    return parsed[0][1]
