"""UI text lookup shared by the shop and HQ's fleet page: one mechanism, each part its own messages.

A part keeps `MESSAGES = {locale: {key: text}}` with `str.format` placeholders; `translator`
gives the `t(key, **params)` its templates call. A key missing in a locale falls back to the
default locale's text, then to the key itself (so a gap shows, rather than breaking the page).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

Messages = Mapping[str, Mapping[str, str]]


def translator(messages: Messages, locale: str, default: str) -> Callable[..., str]:
    """`t(key, **params)` for `locale` (unknown locales read `default`)."""
    table = messages.get(locale, messages[default])
    fallback = messages[default]

    def t(key: str, **params: Any) -> str:
        text = table.get(key) or fallback.get(key) or key
        return text.format(**params) if params else text

    return t
