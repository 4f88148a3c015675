"""`kitctl upgrade --to VERSION`: the kit's images at another tag, through the same gated path.

Only images of the kit (`…/kitctl/<name>:<tag>`) change tag; on success the
site's compose.yaml is updated in place so the next `up` keeps the version.
"""

from __future__ import annotations

import re
from pathlib import Path

from kitctl.deploy.compose import Project
from kitcore.errors import InvalidInput
from kitcore.images import IMAGE_TAG, KIT_IMAGE



def upgraded_images(project: Project, version: str) -> dict[str, str]:
    """service → new image ref, for every service running one of the kit's images."""
    if not IMAGE_TAG.match(version):
        raise InvalidInput(f"--to {version!r} is not an image tag (letters, digits, '.', '-', '_')")
    found = {}
    for name, svc in project.services.items():
        match = KIT_IMAGE.match(svc.image)
        if match and match["tag"] != version:
            found[name] = f"{match['repo']}:{version}"
    return found


def record_images(compose_file: Path, project: Project, new_images: dict[str, str]) -> None:
    """Rewrite the `image:` values in compose.yaml (text edit: keeps the renderer's layout)."""
    text = compose_file.read_text(encoding="utf-8")
    for name, image in new_images.items():
        old = project.services[name].image
        text = re.sub(rf"(image:\s*[\"']?){re.escape(old)}([\"']?\s*$)", lambda m: m.group(1) + image + m.group(2),
                      text, flags=re.MULTILINE)
    tmp = compose_file.with_suffix(".yaml.kitctl-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(compose_file.stat().st_mode & 0o777)
    tmp.replace(compose_file)
