"""plugins.toml and the secrets files: what is written reads back identically, secrets stay 0600."""

from __future__ import annotations

import stat

from hypothesis import example, given, settings
from hypothesis import strategies as st

from plugins.site_config import SiteChoice, read_choice, read_secrets, write_choice, write_secrets

scalars = st.one_of(
    st.text(max_size=30), st.integers(-10**12, 10**12), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3), max_leaves=8)
names = st.from_regex(r"[a-z][a-z0-9-]{1,15}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    disabled=st.lists(names, max_size=4, unique=True),
    plugin_settings=st.dictionaries(names, st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=4), max_size=3),
)
@example(disabled=[], plugin_settings={"a0": {"0\n": []}})  # a key ending in a newline was written bare
def test_plugins_toml_round_trips_any_settings(tmp_path_factory, disabled, plugin_settings):
    site = tmp_path_factory.mktemp("site")
    write_choice(site, SiteChoice(disabled=disabled, settings=plugin_settings))
    back = read_choice(site)
    assert back.disabled == sorted(disabled)
    assert back.settings == {k: v for k, v in plugin_settings.items() if v}


def test_secrets_are_written_0600_in_a_0700_directory_and_read_back(tmp_path):
    write_secrets(tmp_path, "notify", {"webhook_secret": "s3cr3t\"\n"})
    path = tmp_path / "secrets" / "plugins" / "notify.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_secrets(tmp_path, "notify") == {"webhook_secret": "s3cr3t\"\n"}
    assert not list(path.parent.glob(".*.tmp"))
