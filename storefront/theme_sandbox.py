"""The Jinja sandbox a custom theme renders in: the page's data and nothing behind it.

On top of Jinja's immutable sandbox (no `_` attributes, no mutating the page's
data), attributes are read only from the page's own data types: the catalog and
order views, the site's config, builtins. The request, the app and the shop
behind it (keys, sessions, the database) are out of reach even if a theme names
them; render's check (`kitcore.theme`) refuses such a theme before this runs.
"""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

PAGE_DATA = frozenset({"builtins", "datetime", "markupsafe", "storefront.state", "storefront.orders", "kitcore.site",
                       "jinja2.runtime", "jinja2.utils"})


READ_ONLY = frozenset({"storefront.payment"})  # their values (a name, a flag) but none of their methods


class ThemeSandbox(ImmutableSandboxedEnvironment):
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        module = type(obj).__module__
        readable = module in PAGE_DATA or (module in READ_ONLY and not callable(value))
        return readable and super().is_safe_attribute(obj, attr, value)
