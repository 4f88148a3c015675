"""The kit's own plugins speak English (field labels, refusals); the shop shows their words in the page's language.

A plugin's message is matched against the phrases the kit's plugins use; a label
or message a site owner wrote (a plugin setting) matches none and is shown as written.
"""

from __future__ import annotations

import re
from typing import Any, Callable

CODE = r"(?P<code>[A-Z0-9_-]{1,32})"
PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern), key) for pattern, key in (
    (r"^Coupon code\Z", "plugin.field.coupon"),
    (rf"^coupon {CODE} is not valid\Z", "coupon.invalid"),
    (rf"^coupon {CODE} is not valid yet\Z", "coupon.not_yet"),
    (rf"^coupon {CODE} has expired\Z", "coupon.expired"),
    (rf"^coupon {CODE} does not apply to this category\Z", "coupon.category"),
    (rf"^coupon {CODE} has been used up\Z", "coupon.used_up"),
    (rf"^coupon {CODE} needs an order of at least (?P<amount>[0-9]{{1,12}}\.[0-9]{{2}})\Z", "coupon.minimum"),
))


def plugin_text(t: Callable[..., str], text: Any) -> str:
    """`text` in the page's language when it is one of the kit's plugin phrases; else as the plugin gave it."""
    text = str(text)
    for pattern, key in PHRASES:
        found = pattern.match(text)
        if found:
            return t(key, **found.groupdict())
    return text


def localised_fields(t: Callable[..., str], fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plugins' checkout fields with their labels in the page's language."""
    return [{**spec, "label": plugin_text(t, spec.get("label", spec.get("name", "")))} for spec in fields]
