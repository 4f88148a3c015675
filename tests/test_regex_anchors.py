"""Input patterns end at the end of the input: Python's `$` also matches before a final newline.

`re.match(r"^[a-z]+$", "abc\\n")` succeeds, so a value checked that way could carry a line break into
a TOML file, a compose file or a header. Patterns end in `\\Z`; one that is also handed to pydantic
(whose Rust engine has no `\\Z` and whose `$` is the very end) keeps `$` and is used with fullmatch,
which that line says.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kitcore", "kitctl", "hq", "agent", "storefront", "sitedb", "plugins", "demo")


def _patterns_ending_in_dollar(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                and node.func.attr in ("compile", "match", "search") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and node.args[0].value.endswith("$")):
            lines.append(node.args[0].end_lineno)
    return lines


def test_no_input_pattern_ends_in_a_dollar_that_lets_a_newline_through():
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            text_lines = source.splitlines()
            for line in _patterns_ending_in_dollar(source):
                if "fullmatch" not in text_lines[line - 1]:
                    offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == [], f"end these patterns with \\Z (or use fullmatch and say so): {offenders}"


def test_the_check_itself_finds_a_dollar_pattern():
    assert _patterns_ending_in_dollar('import re\nNAME = re.compile(r"^[a-z]+$")\n') == [2]
    assert _patterns_ending_in_dollar('import re\nNAME = re.compile(r"^[a-z]+\\Z")\n') == []


@pytest.mark.parametrize("check", [
    lambda v: __import__("plugins.contract", fromlist=["NAME_RE"]).NAME_RE.match(v),
    lambda v: __import__("plugins.checks", fromlist=["FIELD_NAME"]).FIELD_NAME.match(v),
    lambda v: __import__("kitcore.licence.token", fromlist=["SITE_ID"]).SITE_ID.fullmatch(v),
    lambda v: __import__("kitcore.errorbody", fromlist=["CODE"]).CODE.fullmatch(v),
])
def test_a_name_with_a_trailing_newline_is_refused(check):
    assert check("coupons") and not check("coupons\n")


def test_plugins_toml_keys_with_a_trailing_newline_are_quoted(tmp_path):
    from plugins.site_config import SiteChoice, read_choice, write_choice

    write_choice(tmp_path, SiteChoice(disabled=[], settings={"a0": {"0\n": 1}}))
    assert read_choice(tmp_path).settings == {"a0": {"0\n": 1}}
