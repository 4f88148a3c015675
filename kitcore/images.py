"""How the kit's container images are named: `[registry/]kitctl/<service>:<tag>`.

Render writes these references, `kitctl upgrade` retags them, and the plugin
rules allow plugins nothing outside the `kitctl/` namespace; the patterns are
spelled once, here.
"""

from __future__ import annotations

import re

# An image tag the kit accepts for a version (`kitctl upgrade --to`, image builds).
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
# A reference to one of the kit's images, with the registry part kept in `repo`.
KIT_IMAGE = re.compile(r"^(?P<repo>(?:[^/]+/)*kitctl/[a-z0-9_-]+):(?P<tag>[A-Za-z0-9_.-]+)\Z")
