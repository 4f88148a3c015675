"""kitcore: the ground floor every part of the kit stands on.

It holds what the CLI, HQ, the agent, the storefront and the plugins share —
licence and command tokens, errors, the version, and the contracts between
the parts (site.json, the site-directory layout) — and imports none of them.
Kept import-free so that `kitctl --version` stays fast.
"""

__version__ = "0.1.0"
